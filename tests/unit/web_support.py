"""What the web tests share: a low scrypt cost (explicit, tests only), a loopback base URL (the
app answers only to its own Host names), and a clock the tests move."""

from __future__ import annotations

from mailferry.web import WebSettings
from mailferry.web.passwords import ScryptCost

FAST = ScryptCost(n=2**10)  # tests hash many times; the default cost is tested on its own
BASE = "http://127.0.0.1:8080"
SETTINGS = WebSettings(password_cost=FAST)


class Clock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
