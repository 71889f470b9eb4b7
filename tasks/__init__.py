"""Prefect tasks: thin wrappers around the use cases (retries, artifacts, names, tags)."""

from tasks.cluster import dask_task_runner, in_order, on_cluster, sweep_chunk, sweep_on_cluster
from tasks.gates import (
    apply_promotion,
    baseline_gate,
    decide_promotion,
    fail_records,
    finish_run,
    guard_records,
    hardware_gate,
    ideal_gate,
    open_records,
    record_evidence,
    run_on_backend,
    statistical_gate,
)
from tasks.recovery import mark_crashed
from tasks.settings import flow_services, read_settings, resolve_ibm_token, settings_overrides
from tasks.stops import keeping_stops, raise_if_stopped, stopped
from tasks.submission import prefect_runner, raise_if_cancelled, retry_if_transient, submit_job
from tasks.sweep import finish_sweep, sweep_points, sweep_tags

__all__ = [
    "apply_promotion",
    "baseline_gate",
    "dask_task_runner",
    "decide_promotion",
    "fail_records",
    "finish_run",
    "finish_sweep",
    "flow_services",
    "guard_records",
    "hardware_gate",
    "ideal_gate",
    "in_order",
    "keeping_stops",
    "mark_crashed",
    "on_cluster",
    "open_records",
    "prefect_runner",
    "raise_if_cancelled",
    "raise_if_stopped",
    "read_settings",
    "record_evidence",
    "resolve_ibm_token",
    "retry_if_transient",
    "run_on_backend",
    "settings_overrides",
    "statistical_gate",
    "stopped",
    "submit_job",
    "sweep_chunk",
    "sweep_on_cluster",
    "sweep_points",
    "sweep_tags",
]
