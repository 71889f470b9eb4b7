"""The collaborators of a use case: the MLflow tracker, the state store, the execution log and
the retry policy, built once at the edge from :class:`~qhybrid.core.Settings`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from backends import (
    Backend,
    BackendExecutor,
    ExecutionLog,
    Runner,
    StateStore,
    attempt_once,
    open_backend,
    open_executor,
)
from qhybrid.core import MitigationSpec, NoiseSpec, Settings, provider_job_tags
from qhybrid.experiments import Workload
from qhybrid_usecases._drawing import PlotDrawer
from registry import Tracker


@dataclass(frozen=True)
class Services:
    """Explicit collaborators, shared by the steps of one run.

    Attributes:
        settings: Stores, token, fault plan, breaker and retry policy.
        tracker: The MLflow system of record.
        store: The execution state store (ledger, local jobs, breakers, leases).
        log: What the execution plane did for this run (thread-safe, accumulates).
        runner: How each provider submission is run: a single attempt here, a Prefect task
            with retries inside a flow.
        drawer: Draws and logs the run's plots in a worker thread (waited for before a
            promotion is applied and before the run ends).
        workloads: The workloads built for the run's steps, by spec and pins (see
            :meth:`RunHandle.workload`; each step still checks the pins).
    """

    settings: Settings
    tracker: Tracker
    store: StateStore
    log: ExecutionLog = field(default_factory=ExecutionLog)
    runner: Runner = attempt_once
    drawer: PlotDrawer = field(default_factory=PlotDrawer)
    workloads: dict[str, Workload] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, settings: Settings, *, runner: Runner = attempt_once) -> Services:
        """Collaborators on the stores ``settings`` name.

        Raises:
            InvalidInputError: The state store URL is unusable.
            TrackingError: The state store cannot be opened.
        """
        return cls(settings=settings, tracker=Tracker.for_settings(settings),
                   store=StateStore(settings.state_store_url), runner=runner)

    def executor(
        self, name: str, *, transpiler_seed: int, flow_run_id: str | None,
        field: str = "backend", mitigation: MitigationSpec | None = None,
        traces: Iterable[tuple[str | None, str | None]] = (), noise: NoiseSpec | None = None,
    ) -> BackendExecutor:
        """An executor on backend ``name``, submitting through this run's store, log and runner.

        Args:
            name: The backend.
            transpiler_seed: Seed of the device transpilation.
            flow_run_id: The flow run that owns any lease.
            field: The field to name in errors.
            mitigation: Error mitigation for every estimate.
            traces: ``(trace id, job id)`` of each request the executor serves; its provider
                jobs are tagged with them (:func:`~qhybrid.core.provider_job_tags`, which says
                what a large group drops), and so are their ledger rows.
            noise: The noise an Aer backend simulates (a spec's ``noise`` section).

        Raises:
            BackendNameError: Unknown backend or device, or a real device without a token.
            SpecError: A noise section for an IBM backend, or one that cannot be built.
        """
        return open_executor(
            name, self.settings, transpiler_seed=transpiler_seed, store=self.store, log=self.log,
            runner=self.runner, flow_run_id=flow_run_id, field=field, mitigation=mitigation,
            job_tags=provider_job_tags(traces), noise=noise,
        )

    def backend(self, name: str, *, transpiler_seed: int = 0) -> Backend:
        """Backend ``name`` on this run's store (e.g. to release a lease it holds).

        Raises:
            BackendNameError: Unknown backend or device, or a real device without a token.
        """
        return open_backend(name, self.settings, transpiler_seed=transpiler_seed,
                            store=self.store)
