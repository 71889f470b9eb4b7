"""Prefect flows: orchestration wiring only."""

from flows.promotion import promote_experiment
from flows.run import run_experiment
from flows.service import serve_jobs
from flows.sweep import sweep_experiment

__all__ = ["promote_experiment", "run_experiment", "serve_jobs", "sweep_experiment"]
