"""Signed webhook deliveries: sign, verify, back off, and make one POST attempt.

The scheme, for receivers
-------------------------
Every delivery is a ``POST`` of a JSON body with these headers:

``X-Qhybrid-Signature: t=<unix seconds>,v1=<hex>``
    ``v1`` is ``HMAC-SHA256(secret, f"{t}.".encode() + raw_body)`` in lowercase hex, as in
    Stripe's scheme. Sign the raw bytes you received, never a re-serialised JSON document.
    More than one ``v1`` may appear (a sender rotating secrets); one match is enough. Unknown
    keys are ignored, so a later scheme can be added beside ``v1``.
``X-Qhybrid-Event-Id``
    The delivery's stable id, the same on every retry: de-duplicate on it, since a delivery
    whose answer was lost is sent again.
``X-Qhybrid-Trace-Id`` and ``traceparent``
    The job's trace id (32 lowercase hex characters), also as a W3C Trace Context
    ``traceparent`` (``00-<trace id>-<span id>-01``) so a traced receiver joins the trace.

A receiver verifies in a few lines (this module needs only ``hmac``, ``hashlib`` and ``time``
if you would rather copy it than import it)::

    from qhybrid_control import WebhookSignatureError, verify

    try:
        verify(secret, request.headers["X-Qhybrid-Signature"], raw_body, now=time.time())
    except (KeyError, WebhookSignatureError):
        return Response(status_code=401)

The timestamp is part of the signed text, so a captured request cannot be replayed later than
``tolerance_seconds`` (five minutes by default) once it has been seen; the event id covers
replays inside that window.

Retry policy
------------
:func:`deliver` makes exactly one attempt and never raises for an HTTP failure: any status
outside 2xx, a redirect (never followed: a redirect could carry the signed body to another
host), a transport error or a timeout comes back as a :class:`WebhookAttempt` with
``delivered=False``. How many attempts to make, and how long to wait between them
(:func:`backoff_delay`), is the caller's policy. The control plane stores every attempt and
the delivery's state, so pending retries survive a restart of the service; this module holds
no state and touches no database.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import re
import secrets
import time
from collections.abc import Callable

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from qhybrid.core import InvalidInputError, is_trace_id

SIGNATURE_HEADER = "X-Qhybrid-Signature"
EVENT_ID_HEADER = "X-Qhybrid-Event-Id"
TRACE_ID_HEADER = "X-Qhybrid-Trace-Id"

# Ten digits hold unix seconds until the year 2286; the bound also keeps int() away from
# Python's limit on long digit strings (which raises ValueError, not our error).
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
# hmac.compare_digest refuses str with non-ASCII characters (TypeError), so a v1 value must
# look like a SHA-256 hex digest before it is compared.
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
# Visible ASCII only: a header value with a newline or a non-ASCII character would fail in
# the HTTP library on every retry, so it is refused before the first attempt.
_EVENT_ID = re.compile(r"[!-~]{1,255}")


class WebhookSignatureError(InvalidInputError):
    """A webhook's signature header is malformed, does not match the body, or is too old or
    too far in the future. Never transient: the same request will never verify."""


class WebhookAttempt(BaseModel):
    """The outcome of one delivery attempt, as the control plane stores it.

    Attributes:
        attempt: The attempt's number, from 1.
        at: When the attempt started (unix seconds, the clock passed to :func:`deliver`).
        status_code: The receiver's HTTP status, or None if no answer came back.
        error: Why the attempt failed; None exactly when it was delivered.
        duration_seconds: How long the attempt took (monotonic clock).
        delivered: Whether the receiver answered 2xx.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempt: int = Field(ge=1)
    at: float
    # Not range-checked: whatever three digits a receiver sends are recorded, never raised.
    status_code: int | None = None
    error: str | None = None
    duration_seconds: float = Field(ge=0)
    delivered: bool

    @model_validator(mode="after")
    def _outcome_is_consistent(self) -> WebhookAttempt:
        answered_2xx = self.status_code is not None and 200 <= self.status_code < 300
        if self.delivered != answered_2xx:
            raise ValueError("delivered must be true exactly when the status code is 2xx")
        if self.delivered != (self.error is None):
            raise ValueError("a failed attempt needs an error, a delivered one has none")
        return self


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature of ``body`` sent at ``timestamp``.

    Args:
        secret: The endpoint's shared secret.
        timestamp: Unix seconds, as written in the header's ``t=``.
        body: The raw request body.

    Returns:
        HMAC-SHA256 of ``f"{timestamp}.".encode() + body``, lowercase hex.

    Raises:
        InvalidInputError: If the secret is empty or the timestamp is negative.
    """
    if not secret:
        raise InvalidInputError("an empty secret authenticates nothing", field="secret")
    if timestamp < 0:
        raise InvalidInputError("must be unix seconds, not negative", field="timestamp")
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret, signed, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """The value of the ``X-Qhybrid-Signature`` header: ``t=<timestamp>,v1=<hex>``.

    Args:
        secret: The endpoint's shared secret.
        timestamp: Unix seconds at sending time.
        body: The raw request body.

    Returns:
        The header value.

    Raises:
        InvalidInputError: If the secret is empty or the timestamp is negative.
    """
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise WebhookSignatureError(f"malformed item {item[:40]!r}", field=SIGNATURE_HEADER)
        if key == "t":
            if timestamp is not None or not _TIMESTAMP.fullmatch(value):
                raise WebhookSignatureError("t= must appear once, as unix seconds",
                                            field=SIGNATURE_HEADER)
            timestamp = int(value)
        elif key == "v1":
            if not _HEX_DIGEST.fullmatch(value):
                raise WebhookSignatureError("v1= must be 64 lowercase hex characters",
                                            field=SIGNATURE_HEADER)
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookSignatureError("needs t= and at least one v1=", field=SIGNATURE_HEADER)
    return timestamp, candidates


def verify(secret: bytes, header: str, body: bytes, *, now: float,
           tolerance_seconds: float = 300) -> None:
    """Check a delivery's ``X-Qhybrid-Signature`` header against its raw body.

    The signature is checked first, so a timestamp error is reported only for an authentic
    request.

    Args:
        secret: The endpoint's shared secret.
        header: The ``X-Qhybrid-Signature`` header value.
        body: The raw request body, exactly as received.
        now: The receiver's clock, unix seconds.
        tolerance_seconds: How far the signed timestamp may be from ``now``, either way.

    Raises:
        WebhookSignatureError: If the header is malformed, no ``v1`` matches, or the
            timestamp is more than ``tolerance_seconds`` from ``now``.
        InvalidInputError: If the secret is empty (the receiver's configuration).
    """
    timestamp, candidates = _parse_header(header)
    expected = sign(secret, timestamp, body)
    # Compare every candidate, without stopping early, so timing says nothing about which.
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    if not any(matches):
        raise WebhookSignatureError("signature does not match the body",
                                    field=SIGNATURE_HEADER)
    if not abs(now - timestamp) <= tolerance_seconds:  # `not <=` also refuses a NaN clock
        raise WebhookSignatureError(
            f"timestamp is {now - timestamp:.0f} s from now, beyond the "
            f"{tolerance_seconds:g} s tolerance", field=SIGNATURE_HEADER)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before the next attempt: exponential backoff with full jitter
    (``uniform(0, min(cap, base * 2**attempt))``, as in AWS's "Exponential Backoff and
    Jitter"), so that receivers coming back up are not hit by every sender at once.

    Args:
        attempt: The number of the attempt that just failed (``WebhookAttempt.attempt``);
            0 is accepted and draws from ``[0, min(cap, base)]``.
        base: Seconds; the ceiling for attempt 0. Finite and positive.
        cap: Seconds; the largest ceiling. Finite and not negative.
        rng: The random source; seed it to make a schedule reproducible.

    Returns:
        A delay in ``[0, min(cap, base * 2**attempt)]`` seconds.

    Raises:
        InvalidInputError: If ``attempt`` is negative, ``base`` is not finite and positive,
            or ``cap`` is not finite and non-negative.
    """
    if attempt < 0:
        raise InvalidInputError("must be 0 or more", field="attempt")
    if not (math.isfinite(base) and base > 0):
        raise InvalidInputError("must be finite and positive", field="base")
    if not (math.isfinite(cap) and cap >= 0):
        raise InvalidInputError("must be finite and not negative", field="cap")
    try:
        ceiling = min(cap, math.ldexp(base, attempt))
    except OverflowError:  # base * 2**attempt exceeds any float, so the cap is the ceiling
        ceiling = cap
    return rng.uniform(0.0, ceiling)


def _span_id() -> str:
    # W3C Trace Context calls an all-zero span id invalid.
    while (span := secrets.token_hex(8)) == "0" * 16:
        pass
    return span


def deliver(client: httpx.Client, url: str, body: bytes, *, secret: bytes, attempt: int,
            trace_id: str, event_id: str,
            now: Callable[[], float] = time.time) -> WebhookAttempt:
    """Make one signed POST of ``body`` to ``url``.

    Redirects are never followed, whatever ``client`` is configured to do; the response
    body is never read. The client's timeout bounds the attempt.

    Args:
        client: The HTTP client (its timeout and transport are the caller's).
        url: The receiver's URL, already validated by the caller.
        body: The JSON body, as bytes; signed exactly as sent.
        secret: The endpoint's shared secret.
        attempt: This attempt's number, from 1.
        trace_id: The job's trace id, 32 lowercase hex characters, not all zero.
        event_id: The delivery's stable id, the same on every retry (visible ASCII).
        now: The wall clock, unix seconds; it stamps the signature and ``at``.

    Returns:
        The attempt's outcome; ``delivered`` is True exactly for a 2xx answer.

    Raises:
        InvalidInputError: If ``secret``, ``attempt``, ``trace_id`` or ``event_id`` is
            invalid; nothing is sent then, since no retry could succeed.
    """
    if attempt < 1:
        raise InvalidInputError("must be 1 or more", field="attempt")
    if not is_trace_id(trace_id):
        raise InvalidInputError("must be 32 lowercase hex characters, not all zero",
                                field="trace_id")
    if not _EVENT_ID.fullmatch(event_id):
        raise InvalidInputError("must be 1 to 255 visible ASCII characters", field="event_id")
    at = now()
    headers = {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature_header(secret, int(at), body),
        EVENT_ID_HEADER: event_id,
        TRACE_ID_HEADER: trace_id,
        "traceparent": f"00-{trace_id}-{_span_id()}-01",
    }
    request = client.build_request("POST", url, content=body, headers=headers)
    started = time.perf_counter()
    try:
        # stream=True: the status line is all we need, and a receiver's body (a huge page,
        # a bad content-encoding) can then neither slow the attempt nor fail it.
        response = client.send(request, stream=True, follow_redirects=False)
    except httpx.TransportError as exc:  # TimeoutException is a TransportError
        return WebhookAttempt(attempt=attempt, at=at, status_code=None,
                              error=f"{type(exc).__name__}: {exc}"[:500],
                              duration_seconds=time.perf_counter() - started, delivered=False)
    response.close()
    status = response.status_code
    delivered = 200 <= status < 300
    error = None
    if not delivered:
        error = (f"HTTP {status}, redirect not followed" if response.is_redirect
                 else f"HTTP {status}")
    return WebhookAttempt(attempt=attempt, at=at, status_code=status, error=error,
                          duration_seconds=time.perf_counter() - started, delivered=delivered)
