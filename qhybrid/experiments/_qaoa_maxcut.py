"""QAOA for MaxCut (``kind: qaoa-maxcut``) on a weighted graph read from data."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from qiskit.circuit.library import qaoa_ansatz
from qiskit.quantum_info import PauliList, SparsePauliOp

from qhybrid.core import BaselineResult, FamilySpec, QaoaMaxcutFamily
from qhybrid.experiments._baselines import brute_force_maxcut, cut_values, one_exchange_maxcut
from qhybrid.experiments._executor import Counts
from qhybrid.experiments._family import (
    Estimate,
    Workload,
    counts_to_bits,
    measured,
    register,
    stderr_of,
)
from qhybrid.experiments._problems import GraphInstance, Instance


def _graph(instance: Instance) -> GraphInstance:
    assert isinstance(instance, GraphInstance), instance.kind  # build_workload checked the kind
    return instance


def optimum_projector(graph: GraphInstance, max_cut: float) -> SparsePauliOp:
    """The projector onto every maximum cut, as a sum of ``Z`` strings.

    Its diagonal d(x) = [cut(x) = max_cut] has the Walsh-Hadamard expansion
    ``sum_z c_z Z^z`` with ``c_z = 2^-n sum_x d(x) (-1)^(z.x)``; every ``c_z`` is a multiple of
    2^-n, so the nonzero ones are exact. Exponential in the nodes: fine for small graphs.
    """
    n = graph.num_nodes
    index = np.arange(1 << n)
    bits = (index[:, None] >> np.arange(n)[None, :]) & 1
    coeffs = np.isclose(cut_values(graph.weights, bits), max_cut).astype(float)
    half = 1
    while half < coeffs.size:  # in-place fast Walsh-Hadamard transform
        blocks = coeffs.reshape(-1, 2, half)
        blocks[:, 0], blocks[:, 1] = blocks[:, 0] + blocks[:, 1], blocks[:, 0] - blocks[:, 1]
        half *= 2
    coeffs /= coeffs.size
    keep = np.flatnonzero(coeffs)
    paulis = PauliList.from_symplectic(bits[keep].astype(bool), np.zeros((keep.size, n), bool))
    return SparsePauliOp(paulis, coeffs[keep])


class QaoaMaxcut:
    """QAOA (Farhi, Goldstone & Gutmann 2014) for weighted MaxCut.

    Parameters are ``gamma[0..p-1]`` then ``beta[0..p-1]``; the objective is the approximation
    ratio (expected cut over the maximum cut), maximised. Named observables: ``expected_cut``
    (the cut operator) and ``optimum_probability`` (the projector onto the maximum cuts).
    """

    kind = "qaoa-maxcut"
    instance_kind = "graph"
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
        max_cut = brute_force_maxcut(graph)[0]
        return Workload(
            family=self,
            instance=graph,
            ansatz=ansatz,
            measured=measured(ansatz),
            observable=cut.simplify(),
            sign=-1.0,
            observables={"expected_cut": cut.simplify(),
                         "optimum_probability": optimum_projector(graph, max_cut)},
            parameter_names=names,
            to_circuit=order,
            bounds=((0.0, float(np.pi)),) * reps + ((0.0, float(np.pi / 2)),) * reps,
            objective="approximation_ratio",
            direction="maximise",
            reference=max_cut,
        )

    def analyse(
        self, workload: Workload, counts: Counts, estimates: Mapping[str, Estimate]
    ) -> dict[str, float]:
        """expected_cut, approximation_ratio and optimum_probability (with their ``.stderr``)
        from the estimates; best_sampled_cut and best_sampled_ratio from the counts; max_cut."""
        graph = _graph(workload.instance)
        bits, _ = counts_to_bits(counts, graph.num_nodes)
        best = float(cut_values(graph.weights, bits).max())
        max_cut = workload.reference
        cut, optimum = estimates["expected_cut"], estimates["optimum_probability"]
        return {
            "expected_cut": cut.value,
            "expected_cut.stderr": cut.stderr,
            "approximation_ratio": cut.value / max_cut,
            "approximation_ratio.stderr": cut.stderr / max_cut,
            "optimum_probability": optimum.value,
            "optimum_probability.stderr": optimum.stderr,
            "best_sampled_cut": best,
            "best_sampled_ratio": best / max_cut,
            "max_cut": max_cut,
        }

    def quality(self, metrics: Mapping[str, float]) -> Estimate:
        """The approximation ratio."""
        return Estimate(metrics["approximation_ratio"],
                        stderr_of(metrics, "approximation_ratio"))

    def degradation(self, ideal: Mapping[str, float], other: Mapping[str, float]) -> Estimate:
        """The relative drop of the approximation ratio, ``1 - other / ideal``; its error to
        first order in both sides' standard errors."""
        a, b = ideal["approximation_ratio"], other["approximation_ratio"]
        sa, sb = stderr_of(ideal, "approximation_ratio"), stderr_of(other, "approximation_ratio")
        return Estimate((a - b) / a, float(np.hypot(sb / a, b * sa / a**2)))

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
