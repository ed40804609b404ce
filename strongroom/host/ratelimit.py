"""Rate limits and retries for host requests: Retry-After, jittered exponential back-off."""
from __future__ import annotations

import logging
import math
import random
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping

import requests

from ..errors import HostUnavailable

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
# A wait longer than this is not slept through inside a request: the caller gets RateLimited with
# retry_after and reschedules (a worker must not sit idle for the rest of a rolling hour window).
MAX_INLINE_WAIT_SECONDS = 60.0
TRANSIENT_NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout,
                            requests.exceptions.ChunkedEncodingError)


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Return the wait a ``Retry-After`` header asks for (delta-seconds or HTTP-date), if any."""
    raw = (headers.get("Retry-After") or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff_seconds(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Return an exponential delay for retry ``attempt`` (0-based) with jitter in [50%, 100%]."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2 ** attempt))
    # Jitter keeps the workers of many tenants from retrying in lock-step after a shared outage.
    return ceiling * (0.5 + rand() / 2)


def is_retryable(status: int) -> bool:
    """429 and 5xx may pass if asked again later."""
    return status == 429 or status >= 500


def send_with_retries(call: Callable[[], requests.Response], *, max_retries: int,
                      sleep: Callable[[float], None], clock: Callable[[], float]) -> requests.Response:
    """Run ``call`` until it answers neither 429 nor 5xx (or retries run out); return the last answer.

    Network failures are retried the same way and end as HostUnavailable.
    """
    for attempt in range(max_retries + 1):
        last = attempt == max_retries
        try:
            response = call()
        except TRANSIENT_NETWORK_ERRORS as exc:
            if last:
                raise HostUnavailable(f"cannot reach the host ({type(exc).__name__})") from exc
            sleep(backoff_seconds(attempt))
            continue
        if not is_retryable(response.status_code):
            return response
        delay = retry_after_seconds(response.headers, clock())
        delay = backoff_seconds(attempt) if delay is None else delay
        if last or delay > MAX_INLINE_WAIT_SECONDS:
            return response
        log.info("host answered %s; retrying in %.1fs", response.status_code, delay)
        sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises
