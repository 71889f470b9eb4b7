"""Open a backend by its one-string name."""

from __future__ import annotations

from backends._aer import AerBackend
from backends._devices import fake_device
from backends._faults import FaultyBackend
from backends._ibm import IbmBackend
from qhybrid.core import Settings, parse_backend_name


def open_backend(
    text: str, settings: Settings, *, transpiler_seed: int, field: str = "backend"
) -> AerBackend | IbmBackend | FaultyBackend:
    """Open the backend named ``text``.

    Args:
        text: ``aer``, ``aer-noisy:<fake device>`` or ``ibm:<device>``.
        settings: Supplies the IBM token and channel for real devices.
        transpiler_seed: Seed of the device transpilation, recorded with the run.
        field: The field to name in errors.

    With ``settings.faults`` set, the backend comes wrapped in a :class:`FaultyBackend`.

    Raises:
        BackendNameError: Unknown backend or device, or a real device without a token.
    """
    backend = _open(text, settings, transpiler_seed=transpiler_seed, field=field)
    plan = settings.fault_plan
    return FaultyBackend(backend, plan) if plan.active else backend


def _open(text: str, settings: Settings, *, transpiler_seed: int, field: str) -> AerBackend | IbmBackend:
    name = parse_backend_name(text, field=field)
    if name.is_fake:
        fake_device(name.device, field=field)  # type: ignore[arg-type]
    if name.kind == "ibm":
        return IbmBackend(
            name,
            transpiler_seed=transpiler_seed,
            token=settings.ibm_token,
            channel=settings.ibm_channel,
            instance=settings.ibm_instance,
        )
    return AerBackend(name, transpiler_seed=transpiler_seed)
