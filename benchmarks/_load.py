"""A load generator for the accept path: N POSTs at concurrency C against one URL.

One ``httpx.AsyncClient`` whose pool holds C connections, and C coroutines that each send
the next POST as soon as their previous one is answered (a closed loop: C requests in flight
all the time). The body is encoded once. Every answered request's latency is kept; a 2xx
answer's JSON ``id`` is kept too. A request that gets no answer (the server was killed) is
counted as an error, not retried.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import numpy as np

TIMEOUT_SECONDS = 60.0
KEEPALIVE_SECONDS = 2.0  # below uvicorn's 5 s keep-alive timeout


@dataclass(frozen=True)
class LoadResult:
    """What one load run saw.

    ``seconds`` runs from the first request sent to the last answer (or error).
    """

    posts: int
    concurrency: int
    seconds: float
    latencies: tuple[float, ...]  # seconds, of every answered request, in completion order
    ids: tuple[str, ...]  # of the 2xx answers, in completion order
    non_2xx: int
    errors: int  # requests with no answer (connection refused or reset, timeout)
    error_classes: tuple[str, ...] = ()  # the httpx exception class of each error
    client_cpu_seconds: float = 0.0  # CPU time of this (the client's) process during the run

    @property
    def accepted(self) -> int:
        return len(self.ids)

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / self.seconds

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile (0-100) of the answered requests' latencies, in ms."""
        return float(np.percentile(np.asarray(self.latencies), q)) * 1000.0

    def summary(self) -> dict[str, object]:
        """The numbers a benchmark records in ``extra_info``."""
        return {
            "posts": self.posts, "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3), "accepted": self.accepted,
            "accepted_per_second": round(self.accepted_per_second, 1),
            "p50_ms": round(self.percentile_ms(50), 2),
            "p95_ms": round(self.percentile_ms(95), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(max(self.latencies) * 1000.0, 2),
            "non_2xx": self.non_2xx, "errors": self.errors,
            "error_classes": dict(Counter(self.error_classes)),
            "client_cpu_seconds": round(self.client_cpu_seconds, 3),
        }


async def post_load(url: str, body: Mapping[str, object], *, posts: int, concurrency: int,
                    on_accepted: Callable[[int], None] | None = None) -> LoadResult:
    """Send ``posts`` POSTs of ``body`` to ``url``, ``concurrency`` at a time.

    Args:
        url: The endpoint.
        body: The JSON body of every request.
        posts: How many requests.
        concurrency: How many in flight at once (and connections in the client's pool).
        on_accepted: Called with the number of 2xx answers so far, after each one (the
            durability test kills the server from it).
    """
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    # uvicorn closes a connection idle for 5 s (its --timeout-keep-alive), httpx keeps one for
    # 5 s too: a POST sent on a connection that the server is closing fails with no answer.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency,
                          keepalive_expiry=KEEPALIVE_SECONDS)
    tickets = itertools.count()
    latencies: list[float] = []
    ids: list[str] = []
    non_2xx = 0
    errors: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal non_2xx
        while next(tickets) < posts:
            sent = time.perf_counter()
            try:
                response = await client.post(url, content=content, headers=headers)
            except httpx.TransportError as exc:
                errors.append(type(exc).__name__)
                continue
            latencies.append(time.perf_counter() - sent)
            if response.is_success:
                ids.append(response.json()["id"])
                if on_accepted is not None:
                    on_accepted(len(ids))
            else:
                non_2xx += 1

    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT_SECONDS) as client:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return LoadResult(posts=posts, concurrency=concurrency, seconds=seconds,
                      latencies=tuple(latencies), ids=tuple(ids), non_2xx=non_2xx,
                      errors=len(errors), error_classes=tuple(errors), client_cpu_seconds=cpu)


def run_load(url: str, body: Mapping[str, object], *, posts: int, concurrency: int,
             on_accepted: Callable[[int], None] | None = None) -> LoadResult:
    """:func:`post_load` in a new event loop (for synchronous callers such as a benchmark)."""
    return asyncio.run(post_load(url, body, posts=posts, concurrency=concurrency,
                                 on_accepted=on_accepted))
