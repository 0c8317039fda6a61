"""Sign-in, failed sign-in and sign-out, from Django's authentication signals: one entry per
organization the person belongs to, so each organization's owners see them (a failed sign-in
for an unknown name belongs to no organization and is seen in admin only)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed

from audit import log
from audit.context import Actor, current, person
from audit.models import Action


def _organization_ids(user_id: int) -> list[int]:
    membership = apps.get_model("organizations", "Membership")
    return list(
        membership.objects.filter(user_id=user_id).values_list("organization_id", flat=True)
    )


def _record(action: str, actor: Actor, user_id: int | None, details: dict[str, Any]) -> None:
    organizations = _organization_ids(user_id) if user_id else []
    target = log.Target("user", user_id or "", actor.label, details)
    for organization_id in organizations or [None]:
        log.record(action, organization_id=organization_id, target=target, actor=actor)


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    _record(Action.SIGN_IN, person(user, current().ip), user.pk, {})


def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        _record(Action.SIGN_OUT, person(user, current().ip), user.pk, {})


def _failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # Only the name tried; the password is never looked at.
    username = str(credentials.get("username") or "")[:150]
    user_model = get_user_model()
    user_id = (
        user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username})
        .values_list("pk", flat=True)
        .first()
    )
    actor = Actor(label=username or "(no name)", user_id=user_id, ip=current().ip)
    _record(Action.SIGN_IN_FAILED, actor, user_id, {"username": username})


def listen() -> None:
    user_logged_in.connect(_signed_in, dispatch_uid="audit-sign-in")
    user_logged_out.connect(_signed_out, dispatch_uid="audit-sign-out")
    user_login_failed.connect(_failed, dispatch_uid="audit-sign-in-failed")
