"""The dispatcher process: queued jobs to flow runs, dead flow runs' jobs back to the queue,
callbacks delivered. ``python -m qhybrid_entrypoints.dispatcher`` (``qhybrid serve`` starts
and restarts it).

Any number may run: claims are atomic in the job store, and Prefect's idempotency key (the
dispatch id) makes a retried launch return the same flow run.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time

import httpx

import qhybrid_usecases as usecases
from qhybrid.core import QhybridError, Settings, load_settings
from qhybrid_control import policies_from
from qhybrid_entrypoints._launcher import PrefectLauncher
from qhybrid_entrypoints._logs import json_logging

log = logging.getLogger("qhybrid.dispatcher")
TICK_SECONDS = 0.2
"""How often the job store is asked for due work (an interactive job waits at most this)."""
REAP_SECONDS = 30.0
"""How often runs whose process was killed (with its worker) are ended and their leases
released."""


def run(settings: Settings, stop: threading.Event) -> None:
    """Dispatch and deliver until ``stop`` is set."""
    jobs = usecases.job_store(settings)
    policies = policies_from(settings.sla_policies)
    launcher = PrefectLauncher()
    rng = random.Random()  # noqa: S311 - jitter of retry delays, not a secret
    services = usecases.Services.open(settings)
    reaped_at = 0.0
    with httpx.Client(timeout=10.0) as client:
        while not stop.is_set():
            if time.monotonic() - reaped_at > REAP_SECONDS:
                reaped_at = time.monotonic()
                try:
                    for run in usecases.reap_abandoned(services):
                        log.warning("ended an abandoned run", extra={"fields": {
                            "mlflow_run_id": run.mlflow_run_id, "pid": run.pid,
                            "leases_released": run.leases_released}})
                except QhybridError as exc:
                    log.error("reaping failed", extra={"fields": {"error": str(exc)}})
            try:
                report = usecases.dispatch_once(jobs, launcher, policies, now=time.time())
                for flow_run_id, n in report.started:
                    log.info("dispatched", extra={"fields": {"flow_run_id": flow_run_id,
                                                             "jobs": n}})
                for job_id in report.requeued:
                    log.warning("requeued", extra={"fields": {"job_id": job_id}})
                for error in report.launch_errors:
                    log.error("launch failed", extra={"fields": {"error": error}})
                for attempt in usecases.deliver_due(jobs, settings, client, rng):
                    log.info("webhook", extra={"fields": attempt.model_dump(mode="json")})
            except QhybridError as exc:  # a store or Prefect hiccup: the next tick tries again
                log.error("dispatch pass failed", extra={"fields": {"error": str(exc)}})
            stop.wait(TICK_SECONDS)


def main() -> None:
    """Run until SIGTERM or SIGINT."""
    json_logging()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = load_settings(os.environ)
    log.info("started", extra={"fields": {"pid": os.getpid()}})
    run(settings, stop)
    log.info("stopped", extra={"fields": {"pid": os.getpid()}})


if __name__ == "__main__":
    main()
