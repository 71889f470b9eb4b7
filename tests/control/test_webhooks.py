"""Webhook signing, verification, backoff and delivery, against a real receiver: a FastAPI app
served by uvicorn on loopback, which verifies each request with ``verify`` as a customer's
receiver would."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from qhybrid.core import InvalidInputError
from qhybrid_control._webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TRACE_ID_HEADER,
    WebhookAttempt,
    WebhookSignatureError,
    backoff_delay,
    deliver,
    sign,
    signature_header,
    verify,
)

SECRET = b"whsec_receiver_test_secret"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
BODY = b'{"job_id":"job-1","state":"succeeded"}'
# conftest's autouse fixture only isolates QHYBRID_* variables, which nothing here reads, so
# sharing it across a property's examples is harmless.
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _rng(seed: int) -> random.Random:
    """A seeded source for backoff jitter, which spreads load and is no secret."""
    return random.Random(seed)  # noqa: S311 - jitter needs reproducibility, not secrecy


# --- the receiver ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    verdict: str


@dataclass
class Receiver:
    base_url: str = ""
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release_slow: threading.Event = field(default_factory=threading.Event)

    def record(self, request: Request, body: bytes, verdict: str) -> None:
        with self.lock:
            self.seen.append(Seen(request.url.path, dict(request.headers), body, verdict))

    def seen_for(self, event_id: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.headers.get(EVENT_ID_HEADER.lower()) == event_id]


def _app(receiver: Receiver) -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        try:
            verify(SECRET, request.headers.get(SIGNATURE_HEADER, ""), body, now=time.time())
        except WebhookSignatureError as exc:
            receiver.record(request, body, str(exc))
            return Response(status_code=401)
        receiver.record(request, body, "ok")
        return Response(status_code=204)

    @app.post("/fail")
    async def fail(request: Request) -> Response:
        receiver.record(request, await request.body(), "fail")
        return Response(status_code=500)

    @app.post("/redirect")
    async def redirect(request: Request) -> Response:
        receiver.record(request, await request.body(), "redirect")
        # 307 keeps the method and body: a client that followed it would POST to /hook.
        return RedirectResponse("/hook", status_code=307)

    @app.post("/slow")
    def slow() -> Response:  # a sync handler runs in a worker thread, so it may block
        receiver.release_slow.wait(30)
        return Response(status_code=204)

    return app


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    # Bind first so the port is known before the server starts and no one else can take it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app(rec), log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15  # readiness only; no assertion depends on timing
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the webhook receiver did not start")
        time.sleep(0.01)
    rec.base_url = f"http://127.0.0.1:{port}"
    yield rec
    rec.release_slow.set()
    server.should_exit = True
    thread.join(15)
    sock.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def _event_id(request: pytest.FixtureRequest) -> str:
    return f"evt-{request.node.name}"[:255].replace("[", "-").replace("]", "-")


# --- delivery against the real receiver -------------------------------------------------------

def test_a_signed_delivery_is_accepted_with_every_header(
        receiver: Receiver, client: httpx.Client, request: pytest.FixtureRequest) -> None:
    event_id = _event_id(request)
    result = deliver(client, f"{receiver.base_url}/hook", BODY, secret=SECRET, attempt=1,
                     trace_id=TRACE_ID, event_id=event_id)

    assert result.delivered is True
    assert result.status_code == 204
    assert result.error is None
    assert result.attempt == 1
    [seen] = receiver.seen_for(event_id)
    assert seen.verdict == "ok"
    assert seen.body == BODY
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers[TRACE_ID_HEADER.lower()] == TRACE_ID
    assert re.fullmatch(rf"00-{TRACE_ID}-[0-9a-f]{{16}}-01", seen.headers["traceparent"])
    assert seen.headers["traceparent"].split("-")[2] != "0" * 16
    timestamp = int(seen.headers[SIGNATURE_HEADER.lower()].split(",")[0].removeprefix("t="))
    assert abs(timestamp - result.at) < 1


def test_retries_share_the_event_id_and_get_new_span_ids(
        receiver: Receiver, client: httpx.Client, request: pytest.FixtureRequest) -> None:
    event_id = _event_id(request)
    for attempt in (1, 2):
        result = deliver(client, f"{receiver.base_url}/hook", BODY, secret=SECRET,
                         attempt=attempt, trace_id=TRACE_ID, event_id=event_id)
        assert result.delivered and result.attempt == attempt

    first, second = receiver.seen_for(event_id)
    assert first.headers["traceparent"] != second.headers["traceparent"]


def test_a_wrong_secret_is_refused_and_recorded_as_failed(
        receiver: Receiver, client: httpx.Client, request: pytest.FixtureRequest) -> None:
    event_id = _event_id(request)
    result = deliver(client, f"{receiver.base_url}/hook", BODY, secret=b"not-the-secret",
                     attempt=1, trace_id=TRACE_ID, event_id=event_id)

    assert (result.delivered, result.status_code, result.error) == (False, 401, "HTTP 401")
    [seen] = receiver.seen_for(event_id)
    assert "does not match" in seen.verdict


def test_an_old_timestamp_is_refused(
        receiver: Receiver, client: httpx.Client, request: pytest.FixtureRequest) -> None:
    event_id = _event_id(request)
    an_hour_ago = time.time() - 3600
    result = deliver(client, f"{receiver.base_url}/hook", BODY, secret=SECRET, attempt=3,
                     trace_id=TRACE_ID, event_id=event_id, now=lambda: an_hour_ago)

    assert (result.delivered, result.status_code) == (False, 401)
    assert result.at == an_hour_ago
    [seen] = receiver.seen_for(event_id)
    assert "tolerance" in seen.verdict


def test_a_server_error_is_a_failed_attempt(
        receiver: Receiver, client: httpx.Client, request: pytest.FixtureRequest) -> None:
    event_id = _event_id(request)
    result = deliver(client, f"{receiver.base_url}/fail", BODY, secret=SECRET, attempt=2,
                     trace_id=TRACE_ID, event_id=event_id)

    assert (result.delivered, result.status_code, result.error) == (False, 500, "HTTP 500")
    assert len(receiver.seen_for(event_id)) == 1


def test_redirects_are_never_followed(receiver: Receiver, request: pytest.FixtureRequest) -> None:
    event_id = _event_id(request)
    # Even a client configured to follow redirects must not carry the signed body on.
    with httpx.Client(timeout=10, follow_redirects=True) as following:
        result = deliver(following, f"{receiver.base_url}/redirect", BODY, secret=SECRET,
                         attempt=1, trace_id=TRACE_ID, event_id=event_id)

    assert (result.delivered, result.status_code) == (False, 307)
    assert result.error == "HTTP 307, redirect not followed"
    assert [s.path for s in receiver.seen_for(event_id)] == ["/redirect"]


def test_a_closed_port_is_a_failed_attempt_not_an_exception(
        client: httpx.Client, request: pytest.FixtureRequest) -> None:
    # A bound socket that does not listen refuses connections, and holds the port meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        result = deliver(client, f"http://127.0.0.1:{port}/hook", BODY, secret=SECRET,
                         attempt=1, trace_id=TRACE_ID, event_id=_event_id(request))

    assert result.delivered is False
    assert result.status_code is None
    assert result.error is not None and result.error.startswith("ConnectError")


def test_a_timeout_is_a_failed_attempt(receiver: Receiver, request: pytest.FixtureRequest) -> None:
    with httpx.Client(timeout=httpx.Timeout(10, read=0.2)) as impatient:
        result = deliver(impatient, f"{receiver.base_url}/slow", BODY, secret=SECRET,
                         attempt=1, trace_id=TRACE_ID, event_id=_event_id(request))
    receiver.release_slow.set()

    assert (result.delivered, result.status_code) == (False, None)
    assert result.error is not None and result.error.startswith("ReadTimeout")


@pytest.mark.parametrize(("name", "value"), [
    ("trace_id", "4BF92F3577B34DA6A3CE929D0E0E4736"),
    ("trace_id", "0" * 32),
    ("trace_id", TRACE_ID[:-1]),
    ("event_id", ""),
    ("event_id", "evt\r\nX-Injected: 1"),
    ("event_id", "évènement"),
    ("attempt", 0),
    ("secret", b""),
])
def test_bad_arguments_are_refused_before_anything_is_sent(
        receiver: Receiver, client: httpx.Client, name: str, value: object) -> None:
    arguments: dict[str, object] = {"secret": SECRET, "attempt": 1, "trace_id": TRACE_ID,
                                    "event_id": "evt-bad-argument"}
    arguments[name] = value
    before = len(receiver.seen)
    with pytest.raises(InvalidInputError) as raised:
        deliver(client, f"{receiver.base_url}/hook", BODY, **arguments)  # type: ignore[arg-type]

    assert raised.value.field == name
    assert len(receiver.seen) == before


# --- sign and verify --------------------------------------------------------------------------

def test_sign_matches_a_known_answer() -> None:
    # Computed outside Python: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    assert sign(b"whsec_test", 1_700_000_000, b'{"a":1}') == (
        "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789")
    assert signature_header(b"whsec_test", 1_700_000_000, b'{"a":1}') == (
        "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789")


def test_verify_accepts_a_fresh_signature_at_the_tolerance_edges() -> None:
    header = signature_header(SECRET, 1_000_000, BODY)
    verify(SECRET, header, BODY, now=1_000_000)
    verify(SECRET, header, BODY, now=1_000_300)
    verify(SECRET, header, BODY, now=999_700)
    verify(SECRET, header, BODY, now=1_000_010, tolerance_seconds=10)


@pytest.mark.parametrize("now", [1_000_301, 999_699, float("nan")])
def test_verify_refuses_a_timestamp_beyond_the_tolerance(now: float) -> None:
    header = signature_header(SECRET, 1_000_000, BODY)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify(SECRET, header, BODY, now=now)


def test_verify_refuses_a_tampered_body() -> None:
    header = signature_header(SECRET, 1_000_000, BODY)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(SECRET, header, BODY.replace(b"succeeded", b"failed"), now=1_000_000)


def test_verify_refuses_a_tampered_timestamp() -> None:
    header = signature_header(SECRET, 1_000_000, BODY)
    moved = header.replace("t=1000000", "t=1000001")
    assert moved != header
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(SECRET, moved, BODY, now=1_000_000)


def test_verify_refuses_another_secret() -> None:
    header = signature_header(b"another secret", 1_000_000, BODY)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify(SECRET, header, BODY, now=1_000_000)


def test_verify_accepts_any_matching_v1_and_ignores_unknown_keys() -> None:
    good = sign(SECRET, 1_000_000, BODY)
    header = f"t=1000000,v1={'0' * 64},v2=future-scheme,v1={good}"
    verify(SECRET, header, BODY, now=1_000_000)


@pytest.mark.parametrize("header", [
    "",
    "t=1000000",
    "v1=" + "a" * 64,
    "t=1000000,v1=",
    "t=1000000,v1=" + "A" * 64,
    "t=1000000,v1=" + "é" * 64,
    "t=abc,v1=" + "a" * 64,
    "t=-5,v1=" + "a" * 64,
    "t=1,t=2,v1=" + "a" * 64,
    "t=" + "9" * 5000 + ",v1=" + "a" * 64,
    "t=1000000;v1=" + "a" * 64,
])
def test_verify_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(WebhookSignatureError):
        verify(SECRET, header, BODY, now=1_000_000)


def _header_like() -> st.SearchStrategy[str]:
    """Text that is often close to a real header: pieces of one, joined in any order."""
    piece = st.one_of(
        st.text(max_size=20),
        st.builds(lambda v: f"t={v}", st.one_of(st.integers(), st.text(max_size=12))),
        st.builds(lambda v: f"v1={v}", st.one_of(st.text(max_size=70),
                                                 st.text("0123456789abcdef", min_size=64,
                                                         max_size=64))),
    )
    return st.one_of(st.text(), st.lists(piece, max_size=5).map(",".join))


@PROPERTY
@given(header=_header_like(), body=st.binary(max_size=64))
def test_arbitrary_headers_raise_only_the_signature_error(header: str, body: bytes) -> None:
    # The secret is unknown to the generator, so no generated header can verify.
    with pytest.raises(WebhookSignatureError):
        verify(SECRET, header, body, now=1_000_000)


@PROPERTY
@given(secret=st.binary(min_size=1, max_size=64), timestamp=st.integers(0, 10**12),
       body=st.binary(max_size=256), flip=st.integers(0, 255))
def test_any_signed_body_verifies_and_any_changed_byte_does_not(
        secret: bytes, timestamp: int, body: bytes, flip: int) -> None:
    header = signature_header(secret, timestamp, body)
    verify(secret, header, body, now=timestamp)
    changed = body + b"x" if not body else (
        body[: flip % len(body)] + bytes([body[flip % len(body)] ^ 0x01])
        + body[flip % len(body) + 1:])
    with pytest.raises(WebhookSignatureError):
        verify(secret, header, changed, now=timestamp)


# --- backoff ----------------------------------------------------------------------------------

@PROPERTY
@given(attempt=st.integers(0, 3000), seed=st.integers(0, 2**32),
       base=st.floats(0.001, 60), cap=st.floats(0, 3600))
def test_backoff_stays_within_its_ceiling_and_repeats_for_a_seed(
        attempt: int, seed: int, base: float, cap: float) -> None:
    def draws() -> list[float]:
        rng = _rng(seed)
        return [backoff_delay(attempt, base=base, cap=cap, rng=rng) for _ in range(3)]

    first, again = draws(), draws()

    assert first == again
    for delay in first:
        # Exact arithmetic: base * 2**attempt overflows a float long before 3000.
        assert 0 <= delay <= cap
        assert Fraction(delay) <= Fraction(base) * 2**attempt


def test_backoff_jitters_over_the_whole_window_and_grows_with_the_attempt() -> None:
    rng = _rng(7)
    draws = {n: [backoff_delay(n, base=1.0, cap=1000.0, rng=rng) for _ in range(500)]
             for n in (0, 5, 20)}

    # Full jitter: spread from near 0 to near the ceiling, not a fixed or halved delay.
    assert min(draws[5]) < 0.05 * 32 and max(draws[5]) > 0.95 * 32
    assert max(draws[0]) <= 1.0 < max(draws[5])
    # Capped: attempt 20 would be 2**20 s uncapped.
    assert max(draws[20]) <= 1000.0 and max(draws[20]) > 950.0


def test_backoff_differs_between_seeds() -> None:
    def schedule(seed: int) -> list[float]:
        rng = _rng(seed)
        return [backoff_delay(n, base=0.5, cap=60.0, rng=rng) for n in range(8)]

    assert schedule(1) == schedule(1)
    assert schedule(1) != schedule(2)


@pytest.mark.parametrize(("attempt", "base", "cap", "name"), [
    (-1, 1.0, 10.0, "attempt"),
    (0, 0.0, 10.0, "base"),
    (0, float("nan"), 10.0, "base"),
    (0, float("inf"), 10.0, "base"),
    (0, 1.0, -1.0, "cap"),
    (0, 1.0, float("inf"), "cap"),
])
def test_backoff_refuses_bad_parameters(attempt: int, base: float, cap: float,
                                        name: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        backoff_delay(attempt, base=base, cap=cap, rng=_rng(0))
    assert raised.value.field == name


# --- the attempt record -----------------------------------------------------------------------

def test_attempt_round_trips_through_json_and_is_frozen() -> None:
    attempt = WebhookAttempt(attempt=2, at=1_700_000_000.5, status_code=None,
                             error="ConnectError: refused", duration_seconds=0.01,
                             delivered=False)
    assert WebhookAttempt.model_validate_json(attempt.model_dump_json()) == attempt
    with pytest.raises(ValidationError):
        attempt.delivered = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        WebhookAttempt.model_validate({**attempt.model_dump(), "span_id": "x"})


@pytest.mark.parametrize(("status_code", "error", "delivered"), [
    (500, None, False),
    (204, "HTTP 204", True),
    (500, "HTTP 500", True),
    (None, None, True),
    (204, None, False),
])
def test_attempt_refuses_an_inconsistent_outcome(status_code: int | None, error: str | None,
                                                 delivered: bool) -> None:
    with pytest.raises(ValidationError):
        WebhookAttempt(attempt=1, at=0.0, status_code=status_code, error=error,
                       duration_seconds=0.0, delivered=delivered)
