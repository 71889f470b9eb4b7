"""QAOA for MaxCut (``kind: qaoa-maxcut``) on a weighted graph read from data."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from qiskit.circuit.library import qaoa_ansatz
from qiskit.quantum_info import SparsePauliOp

from qhybrid.core import BaselineResult, FamilySpec, QaoaMaxcutFamily
from qhybrid.experiments._baselines import brute_force_maxcut, cut_values, one_exchange_maxcut
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import Workload, counts_to_bits, measured, register
from qhybrid.experiments._problems import GraphInstance, Instance


def _graph(instance: Instance) -> GraphInstance:
    assert isinstance(instance, GraphInstance), instance.kind  # build_workload checked the kind
    return instance


class QaoaMaxcut:
    """QAOA (Farhi, Goldstone & Gutmann 2014) for weighted MaxCut.

    Parameters are ``gamma[0..p-1]`` then ``beta[0..p-1]``; the objective is the approximation
    ratio (expected cut over the maximum cut), maximised.
    """

    kind = "qaoa-maxcut"
    instance_kind = "graph"
    needs_energy = False
    axis_label = "expected cut"

    def build(self, options: FamilySpec, instance: Instance) -> Workload:
        """The QAOA circuit of depth ``options.reps`` for the graph's cut function."""
        assert isinstance(options, QaoaMaxcutFamily)
        graph = _graph(instance)
        n = graph.num_nodes
        zz = [("ZZ", [i, j], w / 2) for i, j, w in graph.edges]
        total = sum(w for _, _, w in graph.edges) / 2
        # C = sum_ij w_ij (1 - Z_i Z_j) / 2 counts the cut weight.
        cut = SparsePauliOp.from_sparse_list([("", [], total)] + [(p, q, -c) for p, q, c in zz], n)
        # The ansatz evolves exp(-i gamma H) with H = -(1/2) sum w Z Z, which is exp(-i gamma C)
        # up to a global phase, so gamma and beta follow Farhi, Goldstone & Gutmann exactly.
        cost = SparsePauliOp.from_sparse_list([(p, q, -c) for p, q, c in zz], n)
        reps = options.reps
        ansatz = qaoa_ansatz(cost, reps=reps)
        # qaoa_ansatz names its vectors β and γ; we document gamma first, then beta.
        names = tuple(f"gamma[{k}]" for k in range(reps)) + tuple(f"beta[{k}]" for k in range(reps))
        ours = {f"γ[{k}]": f"gamma[{k}]" for k in range(reps)}
        ours |= {f"β[{k}]": f"beta[{k}]" for k in range(reps)}
        index = {name: i for i, name in enumerate(names)}
        order = np.array([index[ours[p.name]] for p in ansatz.parameters])
        return Workload(
            family=self,
            instance=graph,
            ansatz=ansatz,
            measured=measured(ansatz),
            observable=cut.simplify(),
            sign=-1.0,
            parameter_names=names,
            to_circuit=order,
            bounds=((0.0, float(np.pi)),) * reps + ((0.0, float(np.pi / 2)),) * reps,
            objective="approximation_ratio",
            direction="maximise",
            reference=brute_force_maxcut(graph)[0],
        )

    def analyse(self, workload: Workload, counts: Counts, energy: float | None) -> dict[str, float]:
        """expected_cut, best_sampled_cut, max_cut, approximation_ratio, best_sampled_ratio and
        optimum_probability, from the counts."""
        graph = _graph(workload.instance)
        bits, weights = counts_to_bits(counts, graph.num_nodes)
        values = cut_values(graph.weights, bits)
        max_cut = workload.reference
        shots = weights.sum()
        expected = float(values @ weights / shots)
        return {
            "expected_cut": expected,
            "best_sampled_cut": float(values.max()),
            "max_cut": max_cut,
            "approximation_ratio": expected / max_cut,
            "best_sampled_ratio": float(values.max()) / max_cut,
            "optimum_probability": float(weights[np.isclose(values, max_cut)].sum() / shots),
        }

    def quality(self, metrics: Mapping[str, float]) -> float:
        """The approximation ratio."""
        return metrics["approximation_ratio"]

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> float:
        """The relative drop of the approximation ratio."""
        return (ideal["approximation_ratio"] - other["approximation_ratio"]) / ideal[
            "approximation_ratio"]

    def baselines(
        self, instance: Instance, solvers: Sequence[str], seed: int
    ) -> list[BaselineResult]:
        """``brute-force`` (exact) and ``one-exchange`` (networkx local search); quality is the
        cut over the exact optimum."""
        graph = _graph(instance)
        start = time.perf_counter()
        optimum, _ = brute_force_maxcut(graph)
        exact_seconds = time.perf_counter() - start
        results: list[BaselineResult] = []
        for solver in solvers:
            if solver == "brute-force":
                results.append(BaselineResult(solver=solver, objective=optimum, quality=1.0,
                                              seconds=exact_seconds, exact=True))
            elif solver == "one-exchange":
                start = time.perf_counter()
                value = one_exchange_maxcut(graph, seed)
                results.append(BaselineResult(solver=solver, objective=value,
                                              quality=value / optimum,
                                              seconds=time.perf_counter() - start, exact=False))
        return results


QAOA_MAXCUT = register(QaoaMaxcut())
