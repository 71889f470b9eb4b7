"""What a person reads in the Prefect UI: flow runs tagged after their experiment, a refused
promotion's own state, and a table of how the execution plane behaved.

Flow-run tags: ``experiment:<name>``, ``version:<version>``, ``kind:run|promote`` and
``backend:<name>`` (a run's backend; a promotion's hardware target), so that the runs list
filters by any of them. They are written on the flow run's record, not entered as a tags
context: task runs would inherit a context's tags, and every task of the flow would then hold
a slot of the backend's tag concurrency limit (:mod:`tasks.submission`).
"""

from __future__ import annotations

from typing import Literal, TypeVar, cast
from uuid import UUID

from prefect import State, get_client
from prefect.states import Completed
from prefect.utilities.annotations import quote

from qhybrid.core import ExecutionRecord, ExperimentSpec, RunOptions, RunReport

FlowKind = Literal["run", "promote"]
"""The job kinds' words, as the service's ``kind:`` tag spells them."""

T = TypeVar("T")

REFUSED = "Refused"
"""The name of a refused promotion's final state (of type COMPLETED: the flow worked)."""


def as_data(value: T) -> T:
    """``value`` passed to a task as data: Prefect does not walk it for upstream results.

    Prefect looks for futures and results inside a task's arguments (the UI's dependency
    arrows), into every entry of a trial's counts, twice per task run. Its ``quote`` does
    the same as this, typed as the value it wraps.
    """
    return cast(T, quote(value))


def run_tags(spec: ExperimentSpec, options: RunOptions, kind: FlowKind) -> list[str]:
    """The tags a run or promotion's flow run carries, e.g. ``experiment:vqe-h2``."""
    backend = (spec.gates.hardware.backend if kind == "promote"
               else options.backend or spec.gates.ideal.backend)
    return [f"experiment:{spec.name}", f"version:{spec.version}", f"kind:{kind}",
            f"backend:{backend}"]


def tag_flow_run(flow_run_id: str | None, tags: list[str]) -> None:
    """Add ``tags`` to the flow run's record (keeping those it was created with).

    A plain function, not a task: a task run would be one more row in the run's graph for
    what is only a label.
    """
    if not flow_run_id:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(flow_run_id)).tags or []
        client.update_flow_run(UUID(flow_run_id),
                               tags=[*current, *(t for t in tags if t not in current)])


def refused(report: RunReport) -> State:
    """The final state of a promotion the decision refused: COMPLETED, named ``Refused``,
    with the report as its result, so that the runs list does not show it as promoted."""
    reasons = "; ".join(report.decision.reasons) if report.decision else ""
    return Completed(name=REFUSED, data=report, message=f"promotion refused: {reasons}")


def execution_rows(execution: ExecutionRecord) -> list[dict[str, str]]:
    """The execution summary as table rows (``metric``, ``value``), one row per counted
    thing, the way a provider lists a job's metrics; retries and failures one row per class."""
    rows = [("provider submissions", str(execution.provider_submissions)),
            ("distinct jobs", str(execution.distinct_jobs)),
            ("re-attachments", str(execution.reattachments))]
    rows += [(f"retries: {cls}", str(n)) for cls, n in sorted(execution.retries_by_class.items())]
    if not execution.retries_by_class:
        rows.append(("retries", "0"))
    rows += [(f"failures: {cls}", str(n))
             for cls, n in sorted(execution.failures_by_class.items())]
    rows += [("breaker trips", str(execution.breaker_trips)),
             ("fallbacks", "; ".join(f"{f.role}: {f.requested} -> {f.used}"
                                      for f in execution.fallbacks) or "0"),
             ("leases opened / closed", f"{execution.leases_opened} / {execution.leases_closed}"),
             ("QPU seconds (estimate)", f"{execution.qpu_seconds_estimate:.3f}")]
    if (m := execution.mitigation) is not None:
        rows.append((f"mitigation: {', '.join(m.techniques)}",
                     f"improvement {m.improvement:.4g} [{m.improvement_low:.4g}, "
                     f"{m.improvement_high:.4g}] at {m.confidence:.0%}"))
    return [{"metric": name, "value": value} for name, value in rows]
