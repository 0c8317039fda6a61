"""Requests per token per minute, counted in the cache (Redis in production).

A fixed one-minute window per token: ``API_RATE_LIMIT_PER_MINUTE`` requests (0 turns the limit
off); the next one gets 429 with ``Retry-After`` (seconds until the window ends).
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache

from api.errors import ApiError
from api.models import ApiToken

WINDOW_SECONDS = 60


def check(token: ApiToken) -> None:
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"api-rate:{token.public_id}:{window}"
    cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=WINDOW_SECONDS * 2)
        count = 1
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
        raise ApiError(
            "rate_limited",
            f"This token sent more than {limit} requests in a minute. Wait {retry_after} "
            "seconds (Retry-After) and slow down.",
            headers={"Retry-After": str(retry_after)},
        )
