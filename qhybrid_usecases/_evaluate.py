"""Evaluate a promoted experiment on new inputs: sampling and scoring as a service.

The caller names ``experiment@alias``; the registry's version leads to its run's manifest (the
spec, the promoted parameters, the seeds and the pinned data). Jobs that ask the same version
on the same backend and instance share one PUB: every parameter set of every job in one call.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends import ReportsQueue
from qhybrid.core import (
    DataError,
    EvaluateJobRequest,
    ExperimentSpec,
    InvalidInputError,
    QhybridError,
    RunManifest,
    parse_backend_name,
    spec_from_mapping,
)
from qhybrid.experiments import (
    Counts,
    Workload,
    build_workload,
    load_instance,
    parse_instance,
)
from qhybrid_control import JobStore, SlaPolicy
from qhybrid_usecases._inputs import read_family
from qhybrid_usecases._jobs import JobWork, fail_job, source_of
from qhybrid_usecases._run import retry_policy
from qhybrid_usecases._services import Services
from registry import file_md5, read_manifest, shared_manifest


@dataclass(frozen=True)
class PromotedExperiment:
    """What an alias points at."""

    name: str
    alias: str
    version: str
    manifest: RunManifest
    spec: ExperimentSpec


def resolve_model(services: Services, ref: str) -> PromotedExperiment:
    """The registered version ``name@alias`` holds, with its run's manifest.

    Raises:
        InvalidInputError: No such model or alias, or its run kept no manifest (field model).
    """
    name, alias = ref.split("@", 1)
    version = services.tracker.version_by_alias(name, alias)
    if version is None or version.run_id is None:
        raise InvalidInputError(f"no registered experiment version holds {ref}", field="model")
    # The shared state store first: a service on another machine has no local manifest files.
    manifest = shared_manifest(services.store.engine, version.run_id)
    if manifest is None:
        run = services.tracker.get_run(version.run_id)
        path = run.tags.get("qhybrid.manifest")
        if not path or not Path(path).is_file():
            raise InvalidInputError(f"{ref}: run {version.run_id} kept no manifest this "
                                    "service can read", field="model")
        manifest = read_manifest(Path(path))
    return PromotedExperiment(name=name, alias=alias, version=version.version,
                              manifest=manifest,
                              spec=spec_from_mapping(manifest.spec, source=f"{ref} manifest"))


def _workload(services: Services, model: PromotedExperiment,
              instance: dict[str, object] | None) -> Workload:
    root = services.settings.project_root
    # With an instance of the caller's, a promoted file of observables is still the family's.
    paths = model.spec.input_paths()
    needed = set(model.manifest.data) if instance is None else {
        paths[f] for f in ("family.observables_path",) if f in paths}
    for rel, pin in model.manifest.data.items():
        if rel in needed and file_md5(root / rel) != pin.md5:
            raise DataError(f"{rel} is not the data {model.name} v{model.version} was promoted "
                            f"on (md5 {pin.md5}); run `dvc pull`", field="model")
    family = read_family(model.spec, root)
    if instance is not None:
        return build_workload(family, parse_instance(instance, source="instance",
                                                     field="instance"))
    return build_workload(family, load_instance(root / model.spec.dataset.path))


def circuit_points(workload: Workload, rows: np.ndarray) -> np.ndarray:
    """The circuit parameters of ``rows`` (one parameter set each).

    Raises:
        InvalidInputError: A row of the wrong length (field parameter_sets).
    """
    try:
        return workload.circuit_points(rows)
    except (QhybridError, ValueError) as exc:
        raise InvalidInputError(
            f"each parameter set needs {len(workload.parameter_names)} values "
            f"({', '.join(workload.parameter_names)})", field="parameter_sets") from exc


def _sampled_metrics(workload: Workload, counts: Counts) -> dict[str, float]:
    """The family's metrics from the counts alone, each with its ``.stderr``; empty when an
    observable is not diagonal in the measured basis (the counts cannot estimate it)."""
    estimates = workload.sampled_estimates(counts)
    if estimates is None:
        return {}
    return workload.analyse(counts, estimates) | {"shots": float(sum(counts.values()))}


def _group_key(request: EvaluateJobRequest) -> tuple[str, str | None, str, int | None, str]:
    instance = ("" if request.instance is None else hashlib.sha256(
        json.dumps(request.instance, sort_keys=True).encode()).hexdigest())
    return request.model, request.backend, request.output, request.shots, instance


def evaluate_jobs(services: Services, jobs: JobStore, works: Sequence[JobWork], *,
                  flow_run_id: str | None, policies: Mapping[str, SlaPolicy]) -> None:
    """Evaluate every job in ``works``: one PUB per group of jobs that can share it, one MLflow
    run per group. A group that fails fails its jobs with the error's class and layer.

    Behind a long hardware queue (more than ``max_hardware_queue`` jobs), a class's
    ``on_long_queue`` decides: ``simulator`` (interactive) answers from the ideal simulator,
    ``asynchronous`` queues the jobs again under the class's ``asynchronous_class``, ``wait``
    waits for the device; the job says which (``downgrade``), and so does a simulator result.
    """
    groups: dict[tuple[str, str | None, str, int | None, str], list[JobWork]] = defaultdict(list)
    for work in works:
        assert work.evaluate is not None
        groups[_group_key(work.evaluate)].append(work)
    for group in groups.values():
        try:
            _evaluate_group(services, jobs, group, flow_run_id=flow_run_id,
                            policy=policies[group[0].sla])
        except QhybridError as exc:
            for work in group:
                fail_job(jobs, work.job_id, exc)


@dataclass(frozen=True)
class Route:
    """Where an evaluation goes: a backend now, or (``hand_over_to``) another SLA class later.

    Attributes:
        backend: The backend to run on now.
        downgrade: Why it is not the backend asked for now, if it is not.
        hand_over_to: The class to queue the job under instead of running it now.
    """

    backend: str
    downgrade: str | None = None
    hand_over_to: str | None = None


def route(services: Services, requested: str, policy: SlaPolicy, *,
          transpiler_seed: int) -> Route:
    """Where ``requested`` goes under ``policy``, and why if it is not there now.

    Behind more than ``max_hardware_queue`` jobs on an IBM device, a class that does not
    ``wait`` is answered from the simulator path (``aer``) or handed over to its
    ``asynchronous_class``.

    Raises:
        BackendNameError: The backend names no device.
        TransportError: The device's queue could not be read.
    """
    if policy.on_long_queue == "wait" or parse_backend_name(requested).kind != "ibm":
        return Route(requested)
    device = services.backend(requested, transpiler_seed=transpiler_seed)
    depth = (device.queue_depth() if isinstance(device, ReportsQueue) else None) or 0
    if depth <= policy.max_hardware_queue:
        return Route(requested)
    why = (f"{requested} has {depth} jobs queued, more than this class waits behind "
           f"({policy.max_hardware_queue})")
    if policy.on_long_queue == "asynchronous":
        assert policy.asynchronous_class is not None  # SlaPolicy validates it
        return Route(requested, hand_over_to=policy.asynchronous_class, downgrade=(
            f"delivered asynchronously ({policy.asynchronous_class}): {why}"))
    return Route("aer", downgrade=f"answered from the simulator path (aer): {why}")


def _evaluate_group(services: Services, jobs: JobStore, group: list[JobWork], *,
                    flow_run_id: str | None, policy: SlaPolicy) -> None:
    first = group[0].evaluate
    assert first is not None
    model = resolve_model(services, first.model)
    workload = _workload(services, model, first.instance)
    requested = first.backend or model.spec.gates.ideal.backend
    for work in group:
        jobs.transition(work.job_id, "waiting-backend", sub_status=requested)
    routed = route(services, requested, policy, transpiler_seed=model.spec.seeds.transpiler)
    if routed.hand_over_to is not None:
        for work in group:
            jobs.hand_over(work.job_id, routed.hand_over_to, reason=routed.downgrade or "")
        return
    backend, downgrade = routed.backend, routed.downgrade
    executor = services.executor(backend, transpiler_seed=model.spec.seeds.transpiler,
                                 flow_run_id=flow_run_id, field="backend",
                                 mitigation=first.mitigation,
                                 traces=[(w.trace_id, w.job_id) for w in group])
    sets = []
    for work in group:
        assert work.evaluate is not None
        rows = work.evaluate.parameter_sets or [list(model.manifest.parameters)]
        sets.append(np.asarray(rows, dtype=float))
    points = circuit_points(workload, np.vstack(sets))
    run_id = services.tracker.start_run(f"evaluate:{model.name}@{model.alias}", tags={
        "qhybrid.kind": "evaluate", "qhybrid.experiment": model.name,
        "qhybrid.registered_version": model.version, "qhybrid.backend": backend,
        "qhybrid.prefect_flow_run_id": flow_run_id or "none",
        "qhybrid.job_ids": ",".join(w.job_id for w in group)[:5000],
        "qhybrid.trace_ids": ",".join(sorted({w.trace_id for w in group}))[:5000],
        "qhybrid.retry_policy": retry_policy(services.settings, group[0].sla)})
    for work in group:
        jobs.transition(work.job_id, "running", sub_status=f"{len(points)} parameter sets on "
                        f"{backend}", mlflow_run_id=run_id, downgrade=downgrade)
    seed = model.spec.seeds.simulator
    shots = first.shots or model.spec.shots
    before = services.log.record()  # the flow run's log: this group's share is what it adds
    try:
        if first.output == "values":
            values = executor.estimate(workload.ansatz, workload.observable, points, seed=seed)
            samples = None
        else:
            samples = executor.sample(workload.measured, points, shots=shots, seed=seed)
            values = None
    except BaseException:
        services.tracker.end_run(run_id, "FAILED")
        raise
    services.tracker.log_metrics(run_id, {"parameter_sets": float(len(points)),
                                          "jobs": float(len(group))})
    after = services.log.record()
    provider_jobs = after.job_ids[len(before.job_ids):]
    qpu = after.qpu_seconds_estimate - before.qpu_seconds_estimate
    retries = {k: n - before.retries_by_class.get(k, 0)
               for k, n in after.retries_by_class.items()
               if n > before.retries_by_class.get(k, 0)}
    services.tracker.end_run(run_id)
    source = source_of(backend)
    start = 0
    for work, block in zip(group, sets, strict=True):
        jobs.transition(work.job_id, "post-processing")
        end = start + len(block)
        result: dict[str, object] = {
            "job_id": work.job_id, "kind": "evaluate", "source": source, "backend": backend,
            "downgrade": downgrade or work.downgrade,
            "parameter_names": list(workload.parameter_names),
            "shots": None}
        if values is not None:
            result["values"] = [float(v) for v in values[start:end]]
        if samples is not None:
            result["samples"] = [dict(c) for c in samples[start:end]]
            result["metrics"] = [_sampled_metrics(workload, c) for c in samples[start:end]]
            result["shots"] = shots
        start = end
        # The group shared one PUB: each job carries its share of the QPU estimate.
        jobs.transition(work.job_id, "succeeded", result=result, provider_job_ids=provider_jobs,
                        metrics={"backend": backend, "parameter_sets": len(block),
                                 "qpu_seconds": qpu * len(block) / len(points),
                                 "retries_by_class": retries if work is group[0] else {}})
