"""A token bucket per account: at most `rate` operations per second, bursts up to `burst`.

Sans-IO: the caller passes a monotonic `now` in seconds.
"""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate < 0:
            raise ValueError("rate must not be negative")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._at: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.rate == 0

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if they are there; False (and nothing taken) if not."""
        if self.unlimited:
            return True
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        if self._at is None or now > self._at:
            self._at = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False
