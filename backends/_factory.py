"""Open a backend by its one-string name, wired to the state store and the fault plan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backends._aer import AerBackend
from backends._devices import fake_device
from backends._faults import FaultyBackend
from backends._jobs import LocalJobs
from backends._protocol import Backend
from backends._store import QpuBudget, StateStore
from backends._submit import BackendExecutor, ExecutionLog, Runner, Submitter, attempt_once
from qhybrid.core import MitigationSpec, NoiseSpec, Settings, SpecError, parse_backend_name

if TYPE_CHECKING:  # qiskit-ibm-runtime is imported when an IBM backend is opened
    from backends._ibm import IbmBackend


def open_engine(
    text: str, settings: Settings, *, transpiler_seed: int, field: str = "backend",
    noise: NoiseSpec | None = None,
) -> AerBackend | IbmBackend:
    """The provider-side object for ``text``, without job service, store or faults.

    Args:
        text: The backend name.
        settings: Token and channel of real devices.
        transpiler_seed: Seed of the device transpilation.
        field: The field to name in errors (``<gate>.backend``: its noise is ``<gate>.noise``).
        noise: The noise an Aer backend simulates (a spec's ``noise`` section).

    Raises:
        BackendNameError: Unknown backend or device, or a real device without a token.
        SpecError: A noise section for an IBM backend, or one that cannot be built.
    """
    name = parse_backend_name(text, field=field)
    noise_field = f"{field.removesuffix('.backend')}.noise" if field.endswith(".backend") \
        else "noise"
    if name.is_fake:
        fake_device(name.device, field=field)
    if noise is not None and name.kind == "ibm":
        raise SpecError(f"{noise_field}: {text} brings its own noise; a noise section applies "
                        "only to Aer backends", field=noise_field)
    if name.kind == "ibm":
        from backends._ibm import IbmBackend

        return IbmBackend(
            name,
            transpiler_seed=transpiler_seed,
            token=settings.ibm_token,
            channel=settings.ibm_channel,
            instance=settings.ibm_instance,
        )
    return AerBackend(name, transpiler_seed=transpiler_seed, noise=noise, field=noise_field)


def open_backend(
    text: str, settings: Settings, *, transpiler_seed: int, store: StateStore | None = None,
    field: str = "backend", noise: NoiseSpec | None = None,
) -> Backend:
    """The backend named ``text``: ``aer``, ``aer-noisy:<fake device>`` or ``ibm:<device>``.

    Local providers (Aer, IBM fake devices) keep their jobs in ``store`` (an in-memory store
    when None); real IBM devices keep theirs at IBM. With ``settings.faults`` set, the backend
    comes wrapped in a :class:`FaultyBackend`. ``noise`` is an Aer backend's noise section.

    Raises:
        BackendNameError: Unknown backend or device, or a real device without a token.
        SpecError: A noise section for an IBM backend, or one that cannot be built.
    """
    engine = open_engine(text, settings, transpiler_seed=transpiler_seed, field=field,
                         noise=noise)
    # Only IBM devices are remote; Aer and IBM's local testing mode run as local jobs.
    backend: Backend
    if not isinstance(engine, AerBackend) and engine.remote:
        backend = engine
    else:
        backend = LocalJobs(engine, store or memory_store())
    plan = settings.fault_plan
    return FaultyBackend(backend, plan) if plan.applies_to(backend.name) else backend


def open_executor(
    text: str, settings: Settings, *, transpiler_seed: int, store: StateStore | None = None,
    log: ExecutionLog | None = None, runner: Runner = attempt_once, flow_run_id: str | None = None,
    precision: float | None = None, mitigation: MitigationSpec | None = None,
    job_tags: tuple[str, ...] = (), field: str = "backend", noise: NoiseSpec | None = None,
) -> BackendExecutor:
    """An executor (estimate/sample) for the domain, submitting idempotently to ``text``.

    Args:
        text: The backend name.
        settings: Token, fault plan and breaker policy.
        transpiler_seed: Seed of the device transpilation.
        store: The state store; an in-memory one (no sharing, no re-attach) when None.
        log: Where to count submissions, retries and trips.
        runner: How each part is run (a Prefect task with retries in flows).
        flow_run_id: The flow run that owns any lease.
        precision: Target standard error of estimates.
        mitigation: Error mitigation for every estimate.
        job_tags: Tags for every provider job (``qhybrid.core.provider_job_tags``: the trace
            and job ids of the requests the executor serves); recorded on the ledger too.
        field: The field to name in errors.
        noise: The noise an Aer backend simulates (a spec's ``noise`` section).

    Raises:
        BackendNameError: Unknown backend or device, or a real device without a token.
        SpecError: A noise section for an IBM backend, or one that cannot be built.
    """
    store = store or memory_store()
    backend = open_backend(text, settings, transpiler_seed=transpiler_seed, store=store,
                           field=field, noise=noise)
    submitter = Submitter(backend, store, log or ExecutionLog(), flow_run_id=flow_run_id,
                          breaker_threshold=settings.breaker_threshold,
                          breaker_cooldown=settings.breaker_cooldown_seconds,
                          budget=qpu_budget(settings))
    return BackendExecutor(submitter, runner, precision=precision, mitigation=mitigation,
                           job_tags=job_tags)


def qpu_budget(settings: Settings) -> QpuBudget | None:
    """The QPU budget the settings set (``QHYBRID_QPU_BUDGET_*``), or None for no limit."""
    if settings.qpu_budget_seconds is None:
        return None
    return QpuBudget(settings.qpu_budget_seconds, settings.qpu_budget_window_seconds)


def memory_store() -> StateStore:
    """This process's in-memory state store (nothing shared, nothing survives the process)."""
    return StateStore("sqlite://")
