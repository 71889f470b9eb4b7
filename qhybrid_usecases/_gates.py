"""The ideal, statistical and baseline gates, and a plain run on one backend."""

from __future__ import annotations

import json
import time

import registry
from backends import BackendExecutor
from qhybrid.core import TrialResult
from qhybrid.experiments import (
    Workload,
    baseline_verdict,
    derive_seed,
    ideal_verdict,
    optimise_and_measure,
    run_baselines,
    statistical_verdict,
    stderr_of,
)
from qhybrid_usecases._drawing import render
from qhybrid_usecases._run import (
    RunHandle,
    StepOutcome,
    TrialOutcome,
    draw_trial,
    gate_run,
    log_plots,
    report_progress,
    run_executor,
)
from qhybrid_usecases._services import Services


def _trial(run: RunHandle, workload: Workload, executor: BackendExecutor, *,
           optimiser_seed: int, simulator_seed: int) -> TrialResult:
    """Optimise (or take the spec's parameters) and sample, with the given seeds."""
    spec = run.spec
    return optimise_and_measure(
        workload, executor, optimiser=spec.optimiser, fixed=spec.parameters, shots=spec.shots,
        optimiser_seed=optimiser_seed, simulator_seed=simulator_seed)


def run_on_backend(run: RunHandle, services: Services) -> TrialOutcome:
    """One optimisation and sampling on the run's backend, without gates."""
    spec = run.spec
    report_progress(run, services, "running",
                    f"on {run.options.backend or spec.gates.ideal.backend}")
    executor = run_executor(run, services, run.options.backend or spec.gates.ideal.backend,
                            field="--backend")
    trial = _trial(run, run.workload(services), executor, optimiser_seed=spec.seeds.optimiser,
                   simulator_seed=spec.seeds.simulator)
    return TrialOutcome(trial=trial, backends={"run": executor.describe()})


def ideal_gate(run: RunHandle, services: Services) -> TrialOutcome:
    """Gate 1: optimise on the ideal simulator; the objective must beat the threshold."""
    report_progress(run, services, "running", "gate ideal")
    spec = run.spec
    workload = run.workload(services)
    start = time.perf_counter()
    executor = run_executor(run, services, spec.gates.ideal.backend, field="gates.ideal.backend")
    trial = _trial(run, workload, executor, optimiser_seed=spec.seeds.optimiser,
                   simulator_seed=spec.seeds.simulator)
    result = ideal_verdict(workload.objective, trial.metrics[workload.objective],
                           spec.gates.statistical_policy.threshold, workload.direction,
                           spec.gates.ideal.backend,
                           stderr=stderr_of(trial.metrics, workload.objective))
    result = result.model_copy(update={"metrics": trial.metrics,
                                       "seconds": time.perf_counter() - start})
    title = f"{spec.name} {spec.version}: ideal"
    with gate_run(run, services, result, trial=(workload, trial)) as run_id:
        log_plots(services, run_id, lambda folder: draw_trial(workload, trial, folder, title))
    return TrialOutcome(gate=result.model_copy(update={"mlflow_run_id": run_id}), trial=trial,
                       backends={"ideal": executor.describe()})


def statistical_gate(run: RunHandle, services: Services) -> StepOutcome:
    """Gate 2: repeat the ideal optimisation with independent seeds; the interval of the
    objective must beat the threshold and be narrow enough."""
    report_progress(run, services, "running", "gate statistical")
    spec = run.spec
    policy = spec.gates.statistical_policy
    workload = run.workload(services)
    executor = run_executor(run, services, spec.gates.ideal.backend, field="gates.ideal.backend")
    start = time.perf_counter()
    values: list[float] = []
    seeds: list[dict[str, int]] = []
    for k in range(policy.repeats):
        trial = _trial(run, workload, executor,
                       optimiser_seed=derive_seed(spec.seeds.optimiser, k + 1),
                       simulator_seed=derive_seed(spec.seeds.simulator, k + 1))
        values.append(trial.metrics[workload.objective])
        seeds.append(trial.seeds)
    result = statistical_verdict(workload.objective, values, policy, workload.direction,
                                 spec.gates.ideal.backend)
    result = result.model_copy(update={"seconds": time.perf_counter() - start})
    mean, low, high = (result.metrics[f"{workload.objective}_{k}"]
                       for k in ("mean", "ci_low", "ci_high"))
    with gate_run(run, services, result, {"qhybrid.repeat_seeds": json.dumps(seeds)},
                  series={"repeat_objective": values}) as run_id:
        log_plots(services, run_id, lambda folder: render(registry.repeats_png,
            values, (mean, low, high), folder / "repeats.png",
            threshold=policy.threshold, confidence=policy.confidence,
            title=f"{spec.name} {spec.version}: statistical ({policy.repeats} repeats)",
            ylabel=workload.family.axis_label))
    return StepOutcome(gate=result.model_copy(update={"mlflow_run_id": run_id}))


def baseline_gate(run: RunHandle, services: Services, hardware: TrialResult) -> StepOutcome:
    """Gate 4: classical solvers on the same instance, against the hardware result's quality."""
    report_progress(run, services, "running", "gate baseline")
    spec = run.spec
    workload = run.workload(services)
    start = time.perf_counter()
    baselines = run_baselines(workload, spec.gates.baseline_policy.solvers, spec.seeds.optimiser)
    result = baseline_verdict(workload.family.quality(hardware.metrics), baselines,
                              spec.gates.baseline_policy)
    result = result.model_copy(update={"seconds": time.perf_counter() - start})
    with gate_run(run, services, result) as run_id:
        pass
    return StepOutcome(gate=result.model_copy(update={"mlflow_run_id": run_id}),
                       baselines=tuple(baselines))
