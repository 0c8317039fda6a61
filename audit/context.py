"""Who is acting now: set per request (a person by the middleware, a token by the API's
authentication) so services record entries without being handed the request."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    label: str
    user_id: int | None = None
    token_id: int | None = None
    ip: str | None = None


SYSTEM = Actor("FleetPortal")

_current: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("audit_actor", default=None)


def current() -> Actor:
    return _current.get() or SYSTEM


def person(user: Any, ip: str | None = None) -> Actor:
    return Actor(label=user.get_username(), user_id=user.pk, ip=ip)


def set_actor(actor: Actor | None) -> contextvars.Token:
    return _current.set(actor)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


@contextmanager
def acting(actor: Actor) -> Iterator[None]:
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)
