"""The one-string backend names users type: ``aer[:<method>]``, ``aer-noisy:<device>``,
``ibm:<device>``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from qhybrid.core._errors import BackendNameError

BackendKind = Literal["aer", "aer-noisy", "ibm"]
_DEVICE = re.compile(r"^[a-z][a-z0-9_]*$")
AER_METHODS = ("automatic", "statevector", "density_matrix", "matrix_product_state",
               "stabilizer", "extended_stabilizer")
"""Simulation methods selectable for the ideal simulator, as ``aer:<method>``."""


class BackendName(BaseModel):
    """A parsed backend name.

    Attributes:
        kind: ``aer`` (ideal), ``aer-noisy`` (Aer with a fake device's noise model) or ``ibm``
            (qiskit-ibm-runtime: local testing mode for ``fake_*`` devices, real hardware else).
        device: The device after the colon, e.g. ``fake_manila``; None for ``aer``.
        method: For ``aer``, the Aer simulation method (``aer:<method>``); None for automatic.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BackendKind
    device: str | None = None
    method: str | None = None

    @property
    def is_fake(self) -> bool:
        """True when the device is a snapshot shipped with qiskit-ibm-runtime."""
        return self.device is not None and self.device.startswith("fake_")

    @property
    def is_real_hardware(self) -> bool:
        """True only for a real IBM device, which needs a token and costs QPU time."""
        return self.kind == "ibm" and not self.is_fake

    def __str__(self) -> str:
        suffix = self.device or self.method
        return self.kind if suffix is None else f"{self.kind}:{suffix}"


def parse_backend_name(text: str, *, field: str = "backend") -> BackendName:
    """Parse a backend string.

    Args:
        text: e.g. ``aer``, ``aer:matrix_product_state``, ``aer-noisy:fake_manila``,
            ``ibm:fake_manila``, ``ibm:ibm_torino``.
        field: The field name to report on error.

    Returns:
        The parsed name. Whether the device exists is checked by the backends layer.

    Raises:
        BackendNameError: The string does not follow the grammar.
    """
    kind, sep, device = text.strip().partition(":")
    if kind == "aer" and not sep:
        return BackendName(kind="aer")
    if kind == "aer":
        if device in AER_METHODS:
            return BackendName(kind="aer", method=device)
        raise BackendNameError(
            f"'{text}': unknown Aer method; expected one of {', '.join(AER_METHODS)}", field=field
        )
    if kind == "aer-noisy" and not device.startswith("fake_"):
        raise BackendNameError(
            f"'{text}': aer-noisy needs a fake device, e.g. aer-noisy:fake_manila", field=field
        )
    if kind in ("aer-noisy", "ibm") and _DEVICE.match(device):
        return BackendName.model_validate({"kind": kind, "device": device})
    raise BackendNameError(
        f"unknown backend '{text}'; expected aer[:<method>], aer-noisy:<fake device> or "
        "ibm:<device>",
        field=field,
    )


def check_backend_name(value: str | None) -> str | None:
    """A pydantic validator's body: ``value`` if it names a backend (or is None).

    Raises:
        ValueError: With the parser's message, for pydantic to attach to the field.
    """
    if value is not None:
        try:
            parse_backend_name(value)
        except BackendNameError as exc:
            raise ValueError(exc.message) from exc
    return value


def is_trace_id(value: str) -> bool:
    """Whether ``value`` is a W3C trace id: 32 lowercase hex digits, not all zero."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value) and value != "0" * 32
