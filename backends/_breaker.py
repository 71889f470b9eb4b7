"""A circuit breaker per backend, kept in the state store so every process sees it.

closed --(N consecutive provider failures, or a maintenance signal)--> open
open --(cool-down elapsed)--> half-open: one submission, the probe, is let through
half-open --probe succeeds--> closed;  --probe fails--> open again
(a probe silent for a whole cool-down, e.g. its process died, is replaced by a new one)

Only a new submission that went through the breaker can close it: a re-attachment to an
existing job says nothing about the backend taking new work.

Counted as failures: transport errors and provider rejections, the signs of a sick backend.
Not counted: submissions refused as formed (the caller's fault) and jobs that fail while
running (the job's fault).
"""

from __future__ import annotations

import time

from backends._store import StateStore
from qhybrid.core import BackendRejectedError, BreakerOpenError, QhybridError, TransportError


def is_maintenance(exc: QhybridError) -> bool:
    """Whether the provider said it is down for maintenance."""
    text = f"{exc.provider_status or ''} {exc.message}".lower()
    return isinstance(exc, BackendRejectedError) and "maintenance" in text


class CircuitBreaker:
    """One backend's breaker.

    Args:
        store: The shared state store.
        backend: The backend's name.
        threshold: Consecutive failures that open it.
        cooldown: Seconds it stays open before a probe is let through.
    """

    def __init__(self, store: StateStore, backend: str, *, threshold: int, cooldown: float) -> None:
        self.store, self.backend = store, backend
        self.threshold, self.cooldown = threshold, cooldown

    def allow(self) -> None:
        """Let a new submission through, or fail fast.

        Raises:
            BreakerOpenError: The breaker is open and the cool-down has not ended, or another
                submission is the half-open probe.
        """
        state, failures, since, _trips = self.store.breaker(self.backend)
        if state == "closed":
            return
        now = time.time()
        remaining = (since or 0.0) + self.cooldown - now
        if remaining <= 0 and self.store.take_breaker(self.backend, state, since, "half-open", now):
            return  # this submission is the probe
        what = "a probe is in flight" if state == "half-open" else (
            f"failing fast for another {max(remaining, 0):.0f} s")
        raise BreakerOpenError(
            f"{self.backend}: circuit breaker {state} after {failures} failures; {what}",
            provider_status="BREAKER_OPEN",
        )

    def success(self) -> None:
        """A submission went through: close the breaker."""
        state, failures, _opened, trips = self.store.breaker(self.backend)
        if state != "closed" or failures:
            self.store.set_breaker(self.backend, "closed", 0, None, trips)

    def failure(self, exc: QhybridError) -> bool:
        """Count a failure; returns True if this one tripped the breaker open."""
        if not isinstance(exc, TransportError | BackendRejectedError):
            return False
        state, failures, opened_at, trips = self.store.breaker(self.backend)
        failures += 1
        trip = state == "half-open" or failures >= self.threshold or is_maintenance(exc)
        if trip and state != "open":
            self.store.set_breaker(self.backend, "open", failures, time.time(), trips + 1,
                                   exc.message)
            return True
        self.store.set_breaker(self.backend, state, failures, opened_at, trips, exc.message)
        return False

    @property
    def state(self) -> str:
        """closed, open or half-open."""
        return self.store.breaker(self.backend)[0]
