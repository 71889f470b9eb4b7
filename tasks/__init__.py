"""Prefect tasks wrapping the work of each gate and of the records."""

from tasks.gates import (
    baseline_gate,
    close_records,
    decide_promotion,
    hardware_gate,
    ideal_gate,
    open_records,
    run_on_backend,
    statistical_gate,
)
from tasks.submission import prefect_runner, retry_if_transient, submit_job

__all__ = [
    "baseline_gate",
    "close_records",
    "decide_promotion",
    "hardware_gate",
    "ideal_gate",
    "open_records",
    "prefect_runner",
    "retry_if_transient",
    "run_on_backend",
    "statistical_gate",
    "submit_job",
]
