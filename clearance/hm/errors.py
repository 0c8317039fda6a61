"""One error hierarchy for everything the HM client can raise.

``TransientError``: worth retrying later (Celery does the retrying, never the client).
``PermanentError``: retrying the same call will not help; show the message to a person.
Every error keeps HM's ``errors[{title, detail, source}]`` and ``request_id``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True)
class HMErrorItem:
    title: str
    detail: str | None = None
    source: str | None = None

    def __str__(self) -> str:
        if self.detail and self.title and self.detail.strip() != self.title.strip():
            return f"{self.title}: {self.detail.strip()}"
        return (self.detail or self.title or "").strip()


class HMError(Exception):
    """Base class. ``message`` is a sentence a fleet manager can read."""

    default_message = "High Mobility returned an error."

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int | None = None,
        errors: list[HMErrorItem] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.errors: list[HMErrorItem] = list(errors or [])
        self.request_id = request_id
        self.message = message or self._message_from_errors() or self.default_message
        super().__init__(self.message)

    def _message_from_errors(self) -> str:
        parts = [str(item) for item in self.errors if str(item)]
        if not parts:
            return ""
        return f"{self.default_message.rstrip('.')}: {'; '.join(parts)}"

    @property
    def is_transient(self) -> bool:
        return isinstance(self, TransientError)

    @property
    def detail(self) -> str:
        """The details HM gave, joined (empty when HM said nothing)."""
        return "; ".join(
            item.detail or item.title for item in self.errors if item.detail or item.title
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, message={self.message!r}, "
            f"request_id={self.request_id!r})"
        )


class TransientError(HMError):
    default_message = "High Mobility is temporarily unavailable."


class HMTimeout(TransientError):
    default_message = "High Mobility did not answer in time."


class HMInterrupted(HMTimeout):
    """The call was cut short because the worker is stopping: HM may have received it."""

    default_message = "The answer from High Mobility was not awaited (a worker restart)."


class HMConnectionError(TransientError):
    default_message = "Could not connect to High Mobility."


class HMServerError(TransientError):
    default_message = "High Mobility had an internal problem."


class VehicleUnreachable(TransientError):
    """408 from vehicle data: the vehicle is offline or asleep."""

    default_message = "The vehicle is offline or asleep."


class RateLimited(TransientError):
    default_message = "Too many requests to High Mobility; try again shortly."

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any
    ):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class PermanentError(HMError):
    default_message = "High Mobility refused the request."


class AuthenticationError(PermanentError):
    default_message = "High Mobility did not accept the credentials."


class ForbiddenError(PermanentError):
    default_message = "This High Mobility application is not allowed to do that."


class NotFoundError(PermanentError):
    default_message = "High Mobility does not know this vehicle."


class ConflictError(PermanentError):
    default_message = "High Mobility cannot do that now."


class UnprocessableError(PermanentError):
    default_message = "High Mobility could not process the request."


class BadRequestError(PermanentError):
    default_message = "High Mobility rejected the request."


class InvalidResponseError(PermanentError):
    default_message = "High Mobility sent an answer we could not understand."


_RETRY_AFTER_DETAIL = re.compile(r"retry\s+after\s+(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


def parse_error_items(body: Any) -> list[HMErrorItem]:
    """Read the three error shapes HM uses (as hmkit-fleet does).

    ``{"errors": [...]}``, a bare ``[{...}]``, OAuth's ``{"error", "error_description"}``; the
    spec bug that nests a list inside ``errors`` is flattened too.
    """
    items: list[HMErrorItem] = []

    def add(raw: Any) -> None:
        if isinstance(raw, list):
            for sub in raw:
                add(sub)
        elif isinstance(raw, dict):
            title = raw.get("title")
            detail = raw.get("detail")
            source = raw.get("source")
            items.append(
                HMErrorItem(
                    title=str(title) if title is not None else "",
                    detail=str(detail).strip() if detail is not None else None,
                    source=str(source) if source is not None else None,
                )
            )
        elif isinstance(raw, str) and raw.strip():
            items.append(HMErrorItem(title=raw.strip()))

    if isinstance(body, dict):
        if "errors" in body:
            add(body["errors"])
        elif "error" in body:
            description = body.get("error_description")
            items.append(
                HMErrorItem(
                    title=str(body["error"]),
                    detail=str(description) if description is not None else None,
                )
            )
    elif isinstance(body, list):
        add(body)
    return items


def parse_retry_after(
    header: str | None, items: list[HMErrorItem], now: datetime | None = None
) -> float | None:
    """Seconds to wait: the Retry-After header (seconds or HTTP date) or HM's "retry after 10s"."""
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = parsedate_to_datetime(header)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    for item in items:
        for text in (item.detail, item.title):
            if text:
                match = _RETRY_AFTER_DETAIL.search(text)
                if match:
                    return float(match.group(1))
    return None


def error_for_status(
    status_code: int,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    token_endpoint: bool = False,
) -> HMError:
    """Build the right exception for an HTTP error answer from HM."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    items = parse_error_items(body)
    request_id = None
    if isinstance(body, dict) and body.get("request_id"):
        request_id = str(body["request_id"])
    request_id = request_id or headers.get("x-request-id")
    kwargs: dict[str, Any] = {"status_code": status_code, "errors": items, "request_id": request_id}

    if status_code == 429:
        retry_after = parse_retry_after(headers.get("retry-after"), items)
        return RateLimited(retry_after=retry_after, **kwargs)
    if status_code >= 500:
        return HMServerError(**kwargs)
    if status_code == 408:
        return VehicleUnreachable(**kwargs)
    if status_code == 401 or (token_endpoint and status_code == 400):
        return AuthenticationError(**kwargs)
    if status_code == 403:
        return ForbiddenError(**kwargs)
    if status_code == 404:
        return NotFoundError(**kwargs)
    if status_code == 409:
        return ConflictError(**kwargs)
    if status_code == 422:
        return UnprocessableError(**kwargs)
    return BadRequestError(**kwargs)
