"""Pacing requests: at most `sending.rate_limit` a second, whichever thread makes them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

PACE = 0.975  # share of sending.rate_limit actually used


class RateLimiter:
    """At most `rate` requests per second, evenly spaced; safe to share between threads.

    Each caller books the next free slot under a lock, then sleeps until it: the pace holds
    wherever the caller stands, and time lost to a slow caller is not made up in a burst.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # 2.5 % under the limit: network jitter must never put rate + 1 requests in a second
        self.interval = 1.0 / (rate * PACE) if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self.next = clock()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            slot = max(self.next, now)
            self.next = slot + self.interval
        if slot > now:
            self.sleep(slot - now)
