"""Fault plans: which failures to inject on purpose, and how often (``QHYBRID_FAULTS``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from qhybrid.core._errors import InvalidInputError


class FaultPlan(BaseModel):
    """Per-call probabilities of each injected failure class, and the seed that draws them.

    Parsed from text like ``transport=0.3,timeout=0.05,rejection=0.05,execution=0.02,seed=7``.
    Each fault strikes where its real counterpart does:

    - ``transport``: the submit request is lost before the provider sees it (TransportError).
    - ``rejection``: the provider refuses the submission, over quota (BackendRejectedError).
    - ``maintenance``: the provider refuses it for maintenance (BackendRejectedError, and a
      signal that opens the circuit breaker at once).
    - ``timeout``: the job was accepted, but waiting for its result times out (TransportError);
      a retry must re-attach to the job, not submit it again.
    - ``execution``: the job was accepted and fails on the provider (ExecutionError, final).

    All but ``execution`` are transient. ``target`` limits the faults to backends whose name
    starts with it (e.g. ``target=ibm:`` leaves the simulators healthy). ``crash=N`` kills the
    process (SIGKILL) while it waits for the result of the N-th job it submitted, after the job
    id is recorded: run the same command again to see it re-attach instead of paying twice.
    ``queue=N`` makes the device report N jobs queued ahead (a long hardware queue).
    ``dropped_sigterm=N`` sends the process SIGTERM at the N-th job's result from inside a
    finalizer, where Python drops what the signal's handler raises: a stop the flow engine
    never sees, which the command must still honour; ``dropped_sigint=N`` does the same
    with a Ctrl-C (SIGINT).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    transport: float = Field(default=0.0, ge=0, le=1)
    timeout: float = Field(default=0.0, ge=0, le=1)
    rejection: float = Field(default=0.0, ge=0, le=1)
    maintenance: float = Field(default=0.0, ge=0, le=1)
    execution: float = Field(default=0.0, ge=0, le=1)
    crash: int = Field(default=0, ge=0, description="SIGKILL at the N-th job's result; 0 never.")
    dropped_sigterm: int = Field(default=0, ge=0, description="SIGTERM, raised where its error "
                                 "is dropped, at the N-th job's result; 0 never.")
    dropped_sigint: int = Field(default=0, ge=0, description="SIGINT (Ctrl-C), raised where its "
                                "error is dropped, at the N-th job's result; 0 never.")
    queue: int = Field(default=0, ge=0, le=1_000_000,
                       description="Report this many jobs queued ahead on the device; 0 reports "
                       "the device's own queue.")
    seed: int = Field(default=0, ge=0)
    target: str = Field(default="", description="Backend-name prefix the faults apply to.")

    def applies_to(self, backend: str) -> bool:
        """Whether faults are injected into ``backend``."""
        return self.active and backend.startswith(self.target)

    @property
    def active(self) -> bool:
        """Whether any fault can be injected."""
        return (self.total > 0 or self.queue > 0
                or max(self.crash, self.dropped_sigterm, self.dropped_sigint) > 0)

    @property
    def total(self) -> float:
        """Probability that a call fails."""
        return self.transport + self.timeout + self.rejection + self.maintenance + self.execution


def parse_faults(text: str, *, field: str = "QHYBRID_FAULTS") -> FaultPlan:
    """Parse a fault plan.

    Raises:
        InvalidInputError: Unknown keys, non-numbers, rates outside [0, 1] or summing above 1.
    """
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(f"'{item}' is not key=value", field=field)
        values[key.strip()] = value.strip()
    try:
        plan = FaultPlan.model_validate(values)
    except ValueError as exc:
        raise InvalidInputError(f"invalid fault plan '{text}': {exc}", field=field) from exc
    if plan.total > 1:
        raise InvalidInputError(f"fault rates sum to {plan.total:.3g} > 1", field=field)
    return plan
