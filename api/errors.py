"""The API's one error shape: ``{"error": {"code", "message", "details"}}``.

``code`` is for programs (stable, snake_case, listed in docs/api.md), ``message`` for the person
reading the log, in the words the pages use; ``details`` lists per-field problems where any.
"""

from __future__ import annotations

from typing import Any

# code -> HTTP status; the complete list, documented in docs/api.md.
CODES: dict[str, int] = {
    "invalid_request": 400,
    "unauthenticated": 401,
    "insufficient_scope": 403,
    "not_found": 404,
    "idempotency_key_reused": 422,
    "too_many_items": 422,
    "no_hm_application": 422,
    "rate_limited": 429,
}


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = CODES[code]
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


UNAUTHENTICATED = (
    "Send a valid API token as “Authorization: Bearer <token>”. This one is missing, unknown, "
    "revoked or expired; an owner can create a new one on the API tokens page."
)
READ_ONLY = (
    "This API token may only read. An owner can create a token with the “Read and write” scope "
    "on the API tokens page."
)
NO_SUCH_VEHICLE = "No vehicle with this VIN in your fleet."
