"""Readout mitigation on Aer, compared: mthree (M3) against qiskit-ibm-runtime's TREX.

A 3-qubit GHZ state, its two neighbouring ZZ parities averaged (ideal 1), readout error
P(1|0)=0.03, P(0|1)=0.08 on every qubit (raw parity 0.7946), 4096 shots, ten seeds. Prints
each method's mean, how far it lands from 1 in its own standard errors, its wall time per
estimate, and the installed size of what it needs beyond qhybrid's other dependencies.

    python -m benchmarks.compare_readout_mitigation

docs/mitigation.md records the result and the choice it supports.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from importlib import metadata

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, ReadoutError
from qiskit_ibm_runtime.executor_estimator import Estimator

from backends import open_executor
from qhybrid.core import MitigationSpec, NoiseSpec, Settings

P10, P01 = 0.03, 0.08
SEEDS = range(10)


def _size_mb(*distributions: str) -> float:
    total = 0
    for name in distributions:
        for file in metadata.distribution(name).files or ():
            path = file.locate()
            total += path.stat().st_size if path.exists() else 0
    return total / 1e6


def main() -> None:
    """Print the comparison table (markdown)."""
    ghz = QuantumCircuit(3)
    ghz.h(0)
    ghz.cx(0, 1)
    ghz.cx(1, 2)
    parity = SparsePauliOp(["IZZ", "ZZI"], [0.5, 0.5])
    executor = open_executor("aer", Settings(), transpiler_seed=1,
                             noise=NoiseSpec(readout={"p1_given_0": P10, "p0_given_1": P01}))
    model = NoiseModel()
    model.add_all_qubit_readout_error(ReadoutError([[1 - P10, P10], [P01, 1 - P01]]))

    def trex(seed: int) -> tuple[float, float]:
        # The runtime's executor-based Estimator on the same noisy simulator, TREX only.
        options = {"resilience_level": 0, "default_precision": 1 / 64,
                   "resilience": {"measure_mitigation": True, "zne_mitigation": False},
                   "twirling": {"enable_gates": False, "enable_measure": True},
                   "simulator": {"seed_simulator": seed}}
        result = Estimator(mode=AerSimulator(noise_model=model), options=options).run(
            [(ghz, parity)]).result()[0]
        return float(result.data.evs), float(result.data.stds)

    def ours(mitigation: MitigationSpec | None) -> Callable[[int], tuple[float, float]]:
        def estimate(seed: int) -> tuple[float, float]:
            evs, stds, _ = executor.estimate_with_stds(ghz, parity, np.zeros((1, 0)),
                                                       seed=seed, mitigation=mitigation)
            return float(evs[0]), float(stds[0])
        return estimate

    methods = {"none (raw)": ours(None), "mthree (M3)": ours(MitigationSpec(readout=True)),
               "runtime TREX": trex}
    print(f"analytic raw parity: {((1 - 2 * P10) ** 2 + (1 - 2 * P01) ** 2) / 2:.4f}")
    print("| method | mean parity | mean abs(1-x)/se | max abs(1-x)/se | s per estimate |")
    print("|---|---|---|---|---|")
    for name, estimate in methods.items():
        values, distances, seconds = [], [], []
        for seed in SEEDS:
            start = time.perf_counter()
            value, std = estimate(seed)
            seconds.append(time.perf_counter() - start)
            values.append(value)
            distances.append(abs(1 - value) / std)
        print(f"| {name} | {statistics.fmean(values):.4f} | {np.nanmean(distances):.2f} | "
              f"{np.nanmax(distances):.2f} | {statistics.median(seconds):.3f} |")
    print(f"install: mthree + Cython + runningman {_size_mb('mthree', 'Cython', 'runningman'):.1f}"
          f" MB; qiskit-mitigation (TREX, already a qiskit-ibm-runtime dependency) "
          f"{_size_mb('qiskit-mitigation'):.1f} MB")


if __name__ == "__main__":
    main()
