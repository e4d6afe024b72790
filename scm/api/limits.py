"""The API's rate limit per token (Flask-Limiter), counted where ``RATELIMIT_STORAGE_URI`` says.

Memory counts per process (one machine, one worker); Redis makes every worker of every node count
together. The key is the token's hash, known without a database lookup, so a flood is refused
before it costs a query; requests without a bearer token are counted by client address.
Each app gets its own limiter (its own storage), so two apps never share counts by accident.
"""

import time

from flask import request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import MemoryStorage

from scm.api.problems import bearer_token, problem_response
from scm.api.services import hash_token


def rate_limit_key():
    token = bearer_token()
    return "token:" + hash_token(token) if token else "address:" + (request.remote_addr or "-")


class SweptMemoryStorage(MemoryStorage):
    """``memory://`` without a thread per request. limits' memory storage starts a timer thread to
    drop expired counters whenever the last one has finished (10 ms), which at stamping rates is on
    almost every request: a third of the limiter's cost. A fixed window's counter is dropped anyway
    when it is read after its expiry (``get``); the ones never read again are swept here, in the
    request, at most once a minute. The same counting, the same answers."""

    STORAGE_SCHEME = ["scm-memory"]
    SWEEP_SECONDS = 60

    def __init__(self, uri=None, **options):
        super().__init__(uri, **options)
        self.swept_at = time.monotonic()

    def _MemoryStorage__schedule_expiry(self):  # replaces MemoryStorage.__schedule_expiry (limits 5.8)
        now = time.monotonic()
        if now - self.swept_at >= self.SWEEP_SECONDS:
            self.swept_at = now
            self._MemoryStorage__expire_events()


def init_limits(app, blueprint):
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)  # X-RateLimit-* on every answer, Retry-After on 429
    app.config.setdefault("RATELIMIT_HEADER_RETRY_AFTER_VALUE", "delta-seconds")
    app.config.setdefault("RATELIMIT_STRATEGY", "fixed-window")  # the cheapest per request; a burst at a window edge may reach twice the rate
    # Redis down: count in memory meanwhile rather than refuse stamping at a national peak.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    storage = app.config["RATELIMIT_STORAGE_URI"]
    if storage.startswith("memory://"):  # counted in our memory storage; the setting stays as the operator wrote it
        storage = storage.replace("memory://", "scm-memory://", 1)
    limiter = Limiter(rate_limit_key, app=app, storage_uri=storage)
    # The limit as a string, parsed once (a callable would be called and parsed on every request).
    limiter.limit(app.config["API_RATE_LIMIT"], key_func=rate_limit_key)(blueprint)

    @app.errorhandler(RateLimitExceeded)
    def too_many_requests(error):
        if not request.path.startswith("/api/"):
            return error
        return problem_response(429, "rate_limited", "Too many requests",
                                f"This token may make {error.limit.limit} requests; wait for Retry-After seconds.")
