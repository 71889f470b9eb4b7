"""Prefect flows: orchestration wiring only."""

from flows.promotion import promote_experiment
from flows.run import run_experiment
from flows.service import serve_jobs

__all__ = ["promote_experiment", "run_experiment", "serve_jobs"]
