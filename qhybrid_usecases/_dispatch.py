"""The dispatcher: queued jobs become flow runs, one per group; dead flow runs give their
jobs back to the queue.

Prefect creates flow runs at a few per second on SQLite, so the dispatcher never starts one
per request: it groups jobs by SLA class, kind, backend and experiment (see
:func:`qhybrid_control.plan_dispatch`) and starts one flow run per group on the class's work
queue. A job whose flow run ended (crashed worker, killed process) while the job had not is
dispatched again, up to its class's limit; the execution plane's ledger makes sure no provider
job is paid twice.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qhybrid.core import ErrorRecord, QhybridError
from qhybrid_control import DispatchGroup, JobStore, SlaPolicy, plan_dispatch
from qhybrid_usecases._jobs import JobWork

FINAL_FLOW_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
CLAIM_TIMEOUT_SECONDS = 60.0
"""A claimed job with no flow run after this long lost its dispatcher mid-dispatch."""


class Launcher(Protocol):
    """Starts and watches the flow runs that serve jobs (Prefect deployments in service)."""

    def launch(self, group: DispatchGroup, policy: SlaPolicy, dispatch_id: str) -> str:
        """Start one flow run for ``group`` on the policy's work queue; return its id."""
        ...

    def states(self, flow_run_ids: Sequence[str]) -> Mapping[str, str | None]:
        """The state type of each flow run (None: the orchestrator does not know it)."""
        ...

    def cancel(self, flow_run_id: str) -> None:
        """Ask the orchestrator to cancel a flow run."""
        ...


@dataclass
class DispatchReport:
    """What one pass of the dispatcher did."""

    started: list[tuple[str, int]] = field(default_factory=list)  # flow run, jobs
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    launch_errors: list[str] = field(default_factory=list)


def dispatch_once(jobs: JobStore, launcher: Launcher, policies: Mapping[str, SlaPolicy], *,
                  now: float) -> DispatchReport:
    """Re-queue the jobs of dead flow runs, then start a flow run for each group due now, as
    long as its class has a free slot (``concurrency`` live flow runs at most)."""
    report = DispatchReport()
    running = _reattach(jobs, launcher, policies, now=now, report=report)
    for group in plan_dispatch(jobs.queued(), policies, now=now):
        if running[group.sla] >= policies[group.sla].concurrency:
            # Every slot of the class is busy: the jobs wait here, where they can still join
            # one batch, rather than as flow runs in Prefect's queue, one process start each.
            continue
        dispatch_id = str(uuid.uuid4())
        won = jobs.claim(group.job_ids, dispatch_id)
        if not won:
            continue
        claimed = DispatchGroup(sla=group.sla, kind=group.kind, backend=group.backend,
                                family=group.family, experiment=group.experiment,
                                jobs=tuple(j for j in group.jobs if j.id in set(won)))
        try:
            flow_run_id = launcher.launch(claimed, policies[group.sla], dispatch_id)
        except QhybridError as exc:
            report.launch_errors.append(str(exc))
            for job_id in won:
                jobs.requeue(job_id, f"could not start a flow run: {exc.message}")
            continue
        jobs.started(dispatch_id, won, flow_run_id, sla=group.sla, kind=group.kind,
                     backend=group.backend, family=group.family)
        running[group.sla] += 1
        report.started.append((flow_run_id, len(won)))
    return report


def _reattach(jobs: JobStore, launcher: Launcher, policies: Mapping[str, SlaPolicy], *,
              now: float, report: DispatchReport) -> Counter[str]:
    """Re-queue or end the jobs of ended flow runs; return the live flow runs per class."""
    active = jobs.active()
    states = launcher.states(sorted({j.flow_run_id for j in active if j.flow_run_id}))
    live: dict[str, set[str]] = defaultdict(set)
    for job in active:
        if job.flow_run_id and states.get(job.flow_run_id) not in (None, *FINAL_FLOW_STATES):
            live[job.sla].add(job.flow_run_id)
    for job in active:
        if job.flow_run_id is None:
            if now - job.updated > CLAIM_TIMEOUT_SECONDS:
                jobs.requeue(job.id, "its dispatcher stopped before starting a flow run")
                report.requeued.append(job.id)
            continue
        state = states.get(job.flow_run_id)
        if state is not None and state not in FINAL_FLOW_STATES:
            continue
        why = f"flow run {job.flow_run_id} ended {state or 'unknown to Prefect'}"
        if job.cancel_requested or state == "CANCELLED":
            jobs.transition(job.id, "cancelled", sub_status=why)
        elif job.dispatch_attempts >= policies[job.sla].max_dispatch_attempts:
            jobs.transition(job.id, "failed", sub_status="orchestration", error=ErrorRecord(
                error="DispatchError", layer="orchestration", transient=False,
                message=f"{why}; gave up after {job.dispatch_attempts} flow runs"))
            report.failed.append(job.id)
        else:
            jobs.requeue(job.id, f"{why}; dispatched again")
            report.requeued.append(job.id)
    return Counter({sla: len(runs) for sla, runs in live.items()})



def claim_more(jobs: JobStore, work: JobWork, policies: Mapping[str, SlaPolicy], *,
               flow_run_id: str, now: float) -> list[str]:
    """Claim, for the flow run already serving ``work``'s class, the ``evaluate`` jobs of that
    class queued since: a warm flow run answers them without another process start.

    Returns:
        The jobs claimed (at most the class's ``max_batch``; none when that is 1), oldest
        first.
    """
    policy = policies[work.sla]
    if policy.max_batch == 1:  # one job per flow run, as the class asks
        return []
    waiting = [j for j in jobs.queued() if j.sla == work.sla and j.kind == "evaluate"]
    if not waiting:
        return []
    dispatch_id = str(uuid.uuid4())
    won = jobs.claim([j.id for j in waiting[:policy.max_batch]], dispatch_id)
    if won:
        jobs.started(dispatch_id, won, flow_run_id, sla=work.sla, kind="evaluate",
                     backend=None, family=None)
    return won
