"""HM's error shapes, as the simulator answers them."""

from __future__ import annotations

import uuid


class TokenError(Exception):
    """OAuth token endpoint error: ``400 {"error", "error_description"}``."""

    def __init__(self, description: str, error: str = "invalid_request", status: int = 400):
        self.error = error
        self.description = description
        self.status = status
        super().__init__(description)

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class ApiError(Exception):
    """Every other error: ``{"errors": [{title, detail, source}]}`` (+ request_id for data)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        source: str | None = None,
        *,
        request_id: bool = False,
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        item = {"title": title}
        if detail is not None:
            item["detail"] = detail
        if source is not None:
            item["source"] = source
        self.errors = [item]
        self.request_id = uuid.uuid4().hex if request_id else None
        self.headers = headers or {}
        super().__init__(detail or title)

    def body(self) -> dict:
        body: dict = {"errors": self.errors}
        if self.request_id:
            body["request_id"] = self.request_id
        return body


NOT_AUTHORIZED_DETAIL = (
    "Missing or invalid authorization header. The token must be obtained through the OAuth2 API "
    'and sent as a header with the format "Authorization: Bearer <token>"'
)


def not_authorized(detail: str = NOT_AUTHORIZED_DETAIL, *, request_id: bool = False) -> ApiError:
    return ApiError(401, "Not authorized", detail, "Authorization", request_id=request_id)
