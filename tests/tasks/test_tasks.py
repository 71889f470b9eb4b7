"""The Prefect tasks are thin: called through ``.fn()`` each does what its use case does, plus
what only Prefect shows (artifacts), with settings read where the flow runs."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prefect.exceptions import TerminationSignal

import tasks
from backends import attempt_once
from qhybrid.core import (
    YOUNG_COLLECTION_THRESHOLD,
    ExecutionError,
    InvalidInputError,
    PromotionDecision,
    RunOptions,
    Settings,
    TransportError,
    load_spec,
)
from qhybrid_usecases import RunHandle, Services, StepOutcome


def test_read_settings_refuses_a_bad_variable_naming_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QHYBRID_SUBMISSION_RETRIES", "many")
    with pytest.raises(InvalidInputError) as info:
        tasks.read_settings()
    assert info.value.field == "QHYBRID_SUBMISSION_RETRIES" and "integer" in info.value.message


def test_flow_services_read_the_environment_where_the_flow_runs(configure, tmp_path: Path) -> None:
    configure(state_url=f"sqlite:///{tmp_path}/elsewhere.db", submission_retries=7)
    services = tasks.flow_services(runner=attempt_once)
    assert services.settings.submission_retries == 7
    assert services.store.url == f"sqlite:///{tmp_path}/elsewhere.db"
    assert services.runner is attempt_once
    assert tasks.flow_services().runner is not attempt_once  # Prefect's submit-job runner


_COLLECTOR_PROBE = """
import gc, json, sys
if len(sys.argv) > 1:
    gc.set_threshold(int(sys.argv[1]), 5, 5)
import tasks
from backends import attempt_once
seen = [gc.get_threshold(), gc.get_freeze_count()]
tasks.flow_services(runner=attempt_once)
seen += [gc.get_threshold(), gc.get_freeze_count()]
kept = [[i] for i in range(1000)]  # new objects: a second freeze would take them too
tasks.flow_services(runner=attempt_once)
seen += [gc.get_threshold(), gc.get_freeze_count()]
print(json.dumps(seen))
"""


@pytest.mark.parametrize("chosen", [None, 700, 200_000])
def test_the_first_flow_of_a_process_settles_the_collector_once(chosen: int | None) -> None:
    args = [sys.executable, "-c", _COLLECTOR_PROBE] + ([str(chosen)] if chosen else [])
    done = subprocess.run(args, capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    before, frozen_before, first, frozen_first, second, frozen_second = json.loads(done.stdout)
    assert frozen_before == 0 and frozen_first > 0  # what was loaded is frozen ...
    assert frozen_second == frozen_first            # ... once: later flows freeze nothing
    young = max(before[0], YOUNG_COLLECTION_THRESHOLD)
    assert first == second == [young, *before[1:]]  # raised, never lowered; ratios kept


def test_a_class_retry_policy_reaches_the_submission_runner(prefect_server, configure) -> None:
    from prefect import flow
    from qiskit.circuit import Parameter, QuantumCircuit

    # Seed 111 draws 0.15, 0.17, 0.51, ...: the first two submission attempts of this test are
    # lost in transport, the third gets through (one generator per plan, in this process).
    configure(faults="transport=0.5,seed=111", submission_retries=2, retry_backoff_seconds=0,
              sla_policies=json.dumps({
                  "interactive": {"submission_retries": 0},
                  "batch-research": {"submission_retries": 3, "retry_backoff_seconds": 0}}))
    theta = Parameter("theta")
    circuit = QuantumCircuit(1, 1)
    circuit.ry(theta, 0)
    circuit.measure(0, 0)

    @flow(name="one-submission")
    def one_submission(sla: str, angle: float) -> dict[str, int]:
        services = tasks.flow_services(sla=sla)  # where the flow runs, as serve-jobs does
        executor = services.executor("aer", transpiler_seed=1, flow_run_id=None)
        counts = executor.sample(circuit, np.array([[angle]]), shots=16, seed=1)[0]
        assert services.log.record().retries_by_class == (
            {"TransportError": 1} if sla == "batch-research" else {})
        return dict(counts)

    # The settings' 2 retries would carry the interactive submission through; its class's 0
    # do not.
    with pytest.raises(TransportError):
        one_submission("interactive", 0.1)
    assert sum(one_submission("batch-research", 0.2).values()) == 16


def test_a_local_engines_submission_is_a_task_run_only_to_be_retried(
        prefect_server, configure, monkeypatch) -> None:
    from types import SimpleNamespace

    from prefect import flow
    from qiskit.circuit import Parameter, QuantumCircuit

    from tasks import submission

    configured: list[tuple[int, object]] = []  # each submit-job task made: retries, delays
    real = submission.submit_job.with_options

    def spied(**options: object) -> object:
        configured.append((options["retries"], options["retry_delay_seconds"]))
        return real(**options)

    monkeypatch.setattr(submission.submit_job, "with_options", spied)
    slept: list[float] = []  # the runner's own wait before it hands a submission over
    monkeypatch.setattr(submission, "time",
                        SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    theta = Parameter("theta")
    circuit = QuantumCircuit(1, 1)
    circuit.ry(theta, 0)
    circuit.measure(0, 0)

    @flow(name="local-submission")
    def one_submission(angle: float) -> tuple[int, dict[str, int]]:
        services = tasks.flow_services()
        executor = services.executor("aer", transpiler_seed=1, flow_run_id=None)
        # Another angle each time: a new submission, not one the ledger already holds.
        counts = executor.sample(circuit, np.array([[angle]]), shots=16, seed=1)[0]
        return sum(counts.values()), dict(services.log.record().retries_by_class)

    configure(faults="", submission_retries=3, retry_backoff_seconds=0.01)
    assert one_submission(0.1) == (16, {})
    assert configured == [] and slept == []  # it worked: no task run

    # Seed 202 draws 0.35, 0.44, 0.82: the first two attempts are lost in transport. The
    # first was made in the flow; the task run makes the other two, its retries the 2 left,
    # its delays the 2nd and 3rd of b, 2b, 4b.
    configure(faults="transport=0.5,seed=202", submission_retries=3, retry_backoff_seconds=0.01)
    assert one_submission(0.2) == (16, {"TransportError": 2})
    assert configured == [(2, [0.02, 0.04])]
    assert len(slept) == 1 and 0 < slept[0] <= 0.015  # the first delay, jittered by 50 %

    # No retries, or a failure no retry can mend: the first attempt's error, no task run.
    configured.clear()
    for angle, faults, retries, error in (
            (0.3, "transport=0.5,seed=400", 0, TransportError),
            (0.4, "execution=1.0,seed=400", 3, ExecutionError)):
        configure(faults=faults, submission_retries=retries, retry_backoff_seconds=0.01)
        with pytest.raises(error):
            one_submission(angle)
    assert configured == [] and len(slept) == 1


def test_run_tasks_through_fn(prefect_server, settings: Settings, repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    run = tasks.open_records.fn(spec, RunOptions(backend="aer"), "run", None, services)
    assert services.tracker.get_run(run.mlflow_run_id).status == "RUNNING"
    outcome = tasks.run_on_backend.fn(run, services)
    assert outcome.trial is not None and outcome.trial.backend == "aer"
    recorded = tasks.record_evidence.fn(run, services, outcome.trial, [outcome])
    report = tasks.finish_run.fn(run, services, recorded, outcome.trial, [outcome])
    assert report.kind == "run" and report.metrics["energy_error"] < 1e-6
    assert services.tracker.get_run(run.mlflow_run_id).status == "FINISHED"


def test_a_gate_task_publishes_its_verdict(prefect_server, settings: Settings, repo: Path) -> None:
    from prefect import flow, get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.runtime import flow_run

    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    run = tasks.open_records.fn(spec, RunOptions(), "promotion", None, services)

    @flow(name="one-gate")
    def one_gate() -> tuple[StepOutcome, str]:  # an artifact belongs to a flow run
        outcome = tasks.ideal_gate.fn(run, services)
        tasks.artifacts.settle()  # as apply-promotion and finish-run do
        return outcome, str(flow_run.get_id())

    outcome, flow_run_id = one_gate()
    assert outcome.gate is not None and outcome.gate.passed
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
    assert artifact.key == "vqe-h2-gate-ideal" and "gate `ideal` PASS" in str(artifact.data)
    tasks.fail_records(run, services, KeyboardInterrupt())
    assert services.tracker.get_run(run.mlflow_run_id).status == "KILLED"


def _unpublishable() -> None:
    raise ConnectionError("the Prefect API refused the artifact")


def test_no_promotion_is_applied_when_a_gates_artifact_was_not_published(
        settings: Settings, repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    run = tasks.open_records.fn(spec, RunOptions(), "promotion", None, services)
    tasks.artifacts.publish(_unpublishable)  # a gate's verdict Prefect could not take
    decision = PromotionDecision(promote=True, aliases=("challenger", "champion"),
                                 reasons=("every gate passed",), score=-1.1)
    with pytest.raises(ConnectionError, match="refused the artifact"):
        tasks.apply_promotion.fn(run, services, decision)
    assert services.tracker.registered() == []
    assert not settings.promotion_log_path.exists()


def test_a_failing_flow_ends_its_records_before_it_waits_for_its_artifacts(
        settings: Settings, repo: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import qhybrid_usecases as usecases

    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    run = tasks.open_records.fn(spec, RunOptions(), "promotion", None, services)
    ended = threading.Event()
    fail_run = usecases.fail_run

    def ending(*args: Any, **kwargs: Any) -> Any:
        try:
            return fail_run(*args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(usecases, "fail_run", ending)
    seen = []

    def publication() -> None:  # a gate's artifact, published once the records are ended
        ended.wait()
        seen.append(services.tracker.get_run(run.mlflow_run_id).status)
        _unpublishable()

    def body(_run: RunHandle) -> None:
        tasks.artifacts.publish(publication)
        raise ExecutionError("the gate failed")

    with caplog.at_level(logging.WARNING), pytest.raises(ExecutionError, match="gate failed"):
        tasks.guard_records(services, lambda: run, body, flow_run_id=None)
    # Had the guard waited first, it would have timed out and logged that instead.
    assert seen == ["FAILED"]
    assert "refused the artifact" in caplog.text
    tasks.artifacts.settle()  # nothing is left behind


def _raise_replaced_sigterm() -> None:
    """What Prefect raises when SIGTERM lands while it creates a task run."""
    try:
        raise TerminationSignal(signal=signal.SIGTERM)
    except TerminationSignal:
        raise ValueError("Task run is not set")  # noqa: B904 - Prefect's own, unchained


def test_a_sigterm_prefect_replaced_leaves_the_guard_as_a_sigterm(
        settings: Settings, repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    run = tasks.open_records.fn(spec, RunOptions(), "promotion", None, services)
    with pytest.raises(TerminationSignal):  # the flow run ends CRASHED, not FAILED
        tasks.guard_records(services, lambda: run, lambda _: _raise_replaced_sigterm(),
                            flow_run_id=None)
    parent = services.tracker.get_run(run.mlflow_run_id)
    assert parent.status == "KILLED" and parent.tags["qhybrid.failure"] == "flow terminated"


def test_a_stop_as_the_records_task_ends_still_ends_the_run_it_opened(
        settings: Settings, repo: Path) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    flow_run_id, other_flow_run_id = str(uuid.uuid4()), str(uuid.uuid4())
    other = tasks.open_records.fn(spec, RunOptions(), "promotion", other_flow_run_id, services)
    # The same flow run's run from an earlier process (an attempt before a restart).
    earlier = tasks.open_records.fn(spec, RunOptions(), "promotion", flow_run_id, services)
    services.tracker.set_tags(earlier.mlflow_run_id, {"qhybrid.pid": "1"})
    opened = []

    def opening() -> RunHandle:
        # As when SIGTERM lands while Prefect ends the open-records task run: the MLflow run
        # is open, and the flow never gets its handle.
        opened.append(tasks.open_records.fn(spec, RunOptions(), "promotion", flow_run_id,
                                            services))
        raise TerminationSignal(signal=signal.SIGTERM)

    def body(run: RunHandle) -> None:
        raise AssertionError("no work without a run")

    with pytest.raises(TerminationSignal):
        tasks.guard_records(services, opening, body, flow_run_id=flow_run_id)
    parent = services.tracker.get_run(opened[0].mlflow_run_id)
    assert parent.status == "KILLED" and parent.tags["qhybrid.failure"] == "flow terminated"
    assert not Path(opened[0].scratch).exists()
    # Another flow run's run, or another process's, is not this one's to end.
    for run in (other, earlier):
        assert services.tracker.get_run(run.mlflow_run_id).status == "RUNNING"
        assert Path(run.scratch).is_dir()


class _SignalInFinalizer:
    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)  # what its handler raises here, Python drops


def _prefect_bridge(signum: int, _frame: object) -> None:  # as Prefect's, during a flow run
    raise TerminationSignal(signal=signum)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drop
@pytest.mark.parametrize(("signum", "handler", "raised", "reason"), [
    (signal.SIGTERM, _prefect_bridge, TerminationSignal, "flow terminated"),
    (signal.SIGINT, signal.default_int_handler, KeyboardInterrupt, "flow interrupted")])
def test_a_signal_dropped_in_a_finalizer_stops_an_armed_flow_at_its_next_submission(
        settings: Settings, repo: Path, signum: int, handler: Callable[[int, object], None],
        raised: type[BaseException], reason: str) -> None:
    spec = load_spec(repo / "specs" / "vqe-h2.yaml")
    services = Services.open(settings)
    run = tasks.open_records.fn(spec, RunOptions(), "promotion", None, services)
    submitted = []

    def body() -> None:
        _SignalInFinalizer(signum)  # collected at once; the signal's error is dropped
        tasks.raise_if_stopped()  # where each submission starts
        submitted.append("after the stop")

    previous = signal.signal(signum, handler)
    try:
        with tasks.keeping_stops(), pytest.raises(raised):
            tasks.guard_records(services, lambda: run, lambda _: body(), flow_run_id=None)
        assert signal.getsignal(signum) is handler  # the guard's handler is gone
    finally:
        signal.signal(signum, previous)
    assert submitted == []
    assert not tasks.stopped(signum)  # and so is the note, once the command's block ends
    parent = services.tracker.get_run(run.mlflow_run_id)
    assert parent.status == "KILLED" and parent.tags["qhybrid.failure"] == reason


def _flow_run(client) -> str:
    from prefect import flow

    @flow(name="watched")
    def watched() -> None:
        """A flow run for the watch to ask about."""

    return str(client.create_flow_run(watched).id)


def test_a_cancel_watch_asks_prefect_off_the_submissions_path(prefect_server,
                                                              monkeypatch) -> None:
    import threading
    from uuid import UUID

    from prefect import get_client
    from prefect.states import Cancelling

    from qhybrid.core import RunCancelledError
    from tasks import submission

    asked: list[tuple[str, str | None]] = []  # (thread, what Prefect said)
    heard = threading.Event()
    original = submission._cancel_state

    def spied(client, flow_run_id: str) -> str | None:
        state = original(client, flow_run_id)
        asked.append((threading.current_thread().name, state))
        if state is not None:
            heard.set()
        return state

    monkeypatch.setattr(submission, "_cancel_state", spied)
    with get_client(sync_client=True) as client:
        flow_run_id = _flow_run(client)
        # The thread ends after a whole period without a check: a period far above the
        # checks' pace below, so that a stalled test process does not end it.
        watch = submission.CancelWatch(flow_run_id, every=0.5)
        watch.check()  # the first check asks Prefect and starts the thread
        assert asked == [(threading.current_thread().name, None)]
        client.set_flow_run_state(UUID(flow_run_id), Cancelling(), force=True)
    deadline = time.monotonic() + 60
    with pytest.raises(RunCancelledError, match="was cancelled"):
        while time.monotonic() < deadline:  # submissions keep coming, so the thread keeps
            watch.check()                   # asking; the check after it heard raises
            heard.wait(0.01)
    main = threading.current_thread().name
    assert [who for who, _ in asked].count(main) == 1, asked  # only the first check waited
    assert asked[-1] == (f"qhybrid-cancel-watch-{flow_run_id[:8]}", "Cancelling")


def test_a_cancel_watch_stops_asking_when_no_submission_comes(prefect_server) -> None:
    from prefect import get_client

    from tasks import submission

    with get_client(sync_client=True) as client:
        watch = submission.CancelWatch(_flow_run(client), every=0.01)
    watch.check()
    thread = watch._thread
    assert thread is not None
    thread.join(60)  # ends by itself after a period without a check
    assert not thread.is_alive() and watch._thread is None
    watch.check()  # and the next check starts a new one
    assert watch._thread is not None and watch._thread is not thread
