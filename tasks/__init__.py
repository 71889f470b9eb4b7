"""Prefect tasks wrapping the work of each gate and of the records."""

from tasks.gates import (
    baseline_gate,
    close_records,
    decide_promotion,
    hardware_gate,
    ideal_gate,
    open_records,
    retry_if_transient,
    run_on_backend,
    statistical_gate,
)

__all__ = [
    "baseline_gate",
    "close_records",
    "decide_promotion",
    "hardware_gate",
    "ideal_gate",
    "open_records",
    "retry_if_transient",
    "run_on_backend",
    "statistical_gate",
]
