"""A closed-loop HTTP load generator for the endpoint: N callers, each sending its next request
as soon as the last one is answered, for a fixed number of requests or seconds.

Used by the reliability tests; also handy against a deployment::

    python -m tests.load http://127.0.0.1:8000/classify --concurrency 32 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One request's fate: its index, HTTP status (0: no whole answer), latency, Retry-After header and what went
    wrong."""

    index: int
    status: int
    latency_s: float
    retry_after: str | None = None
    problem: str | None = None  # the client-side exception when there was no answer, or an error answer's body


# How a client sees its connection closed before a whole answer came: no answer at all, or the headers
# of one whose body never followed (the server went away between writing the two).
CLOSED_EARLY = ("disconnected without sending a response", "peer closed connection without sending complete")


def closed_before_answering(reply: Reply) -> bool:
    """Whether ``reply`` is a connection closed before a whole answer: how HAProxy reports a dead server."""
    return reply.status == 0 and any(sign in (reply.problem or "") for sign in CLOSED_EARLY)


def numbered_request(index: int) -> dict:
    """A text-classification request that names its index, so that each request of a run is its own."""
    return {"inputs": f"request {index}: the service was quick and friendly"}


def run_load(
    url: str,
    make_body: Callable[[int], Any],
    *,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    timeout_s: float = 60.0,
    on_reply: Callable[[Reply], None] | None = None,
) -> list[Reply]:
    """POST ``make_body(i)`` as JSON to ``url`` from ``concurrency`` callers, for ``requests`` or ``duration_s``."""
    if requests is None and duration_s is None:
        raise ValueError("give requests or duration_s: load runs are always bounded")
    return asyncio.run(_run(url, make_body, concurrency, requests, duration_s, timeout_s, on_reply))


async def _run(url, make_body, concurrency, requests, duration_s, timeout_s, on_reply) -> list[Reply]:
    import httpx

    replies: list[Reply] = []
    counter = iter(range(requests if requests is not None else 10**12))
    stop_at = time.monotonic() + duration_s if duration_s is not None else float("inf")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def caller(client: httpx.AsyncClient) -> None:
        for index in counter:
            if time.monotonic() >= stop_at:
                return
            started = time.monotonic()
            try:
                response = await client.post(url, json=make_body(index))
                reply = Reply(
                    index,
                    response.status_code,
                    time.monotonic() - started,
                    response.headers.get("retry-after"),
                    None if response.is_success else response.text[:200],  # who answered, and why
                )
            except httpx.HTTPError as exc:
                reply = Reply(index, 0, time.monotonic() - started, problem=f"{type(exc).__name__}: {exc}")
            replies.append(reply)
            if on_reply is not None:
                on_reply(reply)

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        await asyncio.gather(*(caller(client) for _ in range(concurrency)))
    return sorted(replies, key=lambda reply: reply.index)


def summarize(replies: list[Reply], wall_s: float) -> dict[str, Any]:
    """Requests/s, latency percentiles of the answered-OK requests, and the count per status."""
    ok = sorted(r.latency_s for r in replies if r.status == 200)
    statuses: dict[int, int] = {}
    for reply in replies:
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
    return {
        "requests": len(replies),
        "ok_per_s": round(len(ok) / wall_s, 1) if wall_s else None,
        "p50_ms": round(1000 * statistics.median(ok), 1) if ok else None,
        "p99_ms": round(1000 * ok[min(len(ok) - 1, int(0.99 * len(ok)))], 1) if ok else None,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--inputs", default="a short text to annotate", help="the inputs of every request")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, help="stop after this many requests (default 1000)")
    parser.add_argument("--duration-s", type=float, help="or stop after this many seconds")
    parser.add_argument("--warmup", type=int, default=0, help="requests sent first, not counted")
    args = parser.parse_args()
    if args.requests is None and args.duration_s is None:
        args.requests = 1000
    body = {"inputs": args.inputs}
    if args.warmup:
        run_load(args.url, lambda _: body, concurrency=args.concurrency, requests=args.warmup)
    started = time.monotonic()
    replies = run_load(
        args.url, lambda _: body, concurrency=args.concurrency, requests=args.requests, duration_s=args.duration_s
    )
    print(json.dumps(summarize(replies, time.monotonic() - started)))


if __name__ == "__main__":
    main()
