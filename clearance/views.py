"""Owner-only credential pages: list, add, edit, test connection (runs in the background)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial, wraps
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.debug import SafeExceptionReporterFilter
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from audit import log as audit
from audit.models import Action
from clearance import tasks
from clearance.clients import forget_token
from clearance.forms import CredentialForm
from clearance.models import Credential
from clearance.services.credentials import record_check
from clearance.services.webhooks import webhook_url_for
from organizations.access import get_object_for_user, require_role, scoped
from organizations.http import OrganizationRequest
from organizations.models import Role

View = Callable[..., HttpResponseBase]

# A test still "running" after this long is reported as stuck (no worker?) and polling stops.
CHECK_STALE_AFTER = timedelta(minutes=3)
# Stored as the check's result when the task could not be handed to the broker.
CHECK_NOT_STARTED = (
    "The test could not be started: the task queue is unreachable, so no background worker can "
    "run it. Try again in a minute; if it keeps failing, ask whoever runs FleetPortal to check "
    "the task queue (Redis)."
)


class _SecretsHiddenFilter(SafeExceptionReporterFilter):
    """Hides what the view marked sensitive even with DEBUG on (`make run`): Django's default
    filter is off under DEBUG, so its debug page would show a pasted key or secret."""

    def is_active(self, request: HttpRequest | None) -> bool:
        return True


def hide_secrets_from_error_reports(view: View) -> View:
    """Every POST parameter and every local variable (of the view and all it calls) is
    replaced by stars in error reports and on the debug page. For views that take secrets."""

    @sensitive_variables()
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        request.exception_reporter_filter = _SecretsHiddenFilter()
        return view(request, *args, **kwargs)

    return sensitive_post_parameters()(wrapper)


def _credential_for_owner(request: HttpRequest, public_id: UUID) -> Credential:
    credential: Credential = get_object_for_user(
        request, Credential, role=Role.OWNER, public_id=public_id
    )
    return credential


def _audited(credential: Credential, details: dict[str, str] | None = None) -> audit.Target:
    return audit.Target(
        "credential",
        credential.public_id,
        credential.name,
        {"environment": credential.environment, **(details or {})},
    )


def _check_state(credential: Credential) -> str:
    """never | running | stuck | ok | failed | not_started (the queue was unreachable)"""
    if credential.last_check_at is None:
        return "never"
    if credential.last_check_ok is False and credential.last_check_message == CHECK_NOT_STARTED:
        return "not_started"
    if credential.last_check_ok is None:
        if timezone.now() - credential.last_check_at > CHECK_STALE_AFTER:
            return "stuck"
        return "running"
    return "ok" if credential.last_check_ok else "failed"


def _detail_context(credential: Credential, form: CredentialForm) -> dict[str, Any]:
    return {
        "credential": credential,
        "form": form,
        "webhook_url": webhook_url_for(credential),
        "check_state": _check_state(credential),
        "clearance_count": credential.clearances.count(),
    }


@require_http_methods(["GET"])
def credential_list(request: HttpRequest) -> HttpResponse:
    require_role(request, Role.OWNER)
    credentials = scoped(request, Credential).annotate(vehicle_count=Count("clearances"))
    rows = [
        {
            "credential": c,
            "webhook_url": webhook_url_for(c),
            "check_state": _check_state(c),
        }
        for c in credentials
    ]
    return render(request, "clearance/credentials.html", {"rows": rows})


@hide_secrets_from_error_reports
@require_http_methods(["GET", "POST"])
def credential_add(request: HttpRequest) -> HttpResponse:
    membership = require_role(request, Role.OWNER)
    organization = membership.organization
    if request.method == "POST":
        form = CredentialForm(request.POST, request.FILES, organization=organization)
        if form.is_valid():
            credential = form.save()
            audit.record(
                Action.CREDENTIAL_CREATED, organization=organization, target=_audited(credential)
            )
            messages.success(
                request,
                f"Credential “{credential.name}” saved. Copy its webhook URL into the High "
                "Mobility console, then test the connection.",
            )
            return redirect("clearance:credential_detail", public_id=credential.public_id)
    else:
        form = CredentialForm(organization=organization)
    return render(request, "clearance/credential_add.html", {"form": form})


@hide_secrets_from_error_reports
@require_http_methods(["GET", "POST"])
def credential_detail(request: HttpRequest, public_id: UUID) -> HttpResponse:
    credential = _credential_for_owner(request, public_id)
    if request.method == "POST":
        form = CredentialForm(request.POST, request.FILES, instance=credential)
        if form.is_valid():
            form.save()
            # Which fields changed, never their values.
            audit.record(
                Action.CREDENTIAL_CHANGED,
                organization_id=credential.organization_id,
                target=_audited(credential, {"fields": ", ".join(form.changed_data)}),
            )
            messages.success(request, f"Credential “{credential.name}” saved.")
            return redirect("clearance:credential_detail", public_id=credential.public_id)
        # Never show unsaved edits of the instance as if they were stored.
        credential.refresh_from_db()
    else:
        form = CredentialForm(instance=credential)
    return render(request, "clearance/credential_detail.html", _detail_context(credential, form))


@require_POST
def credential_test(request: OrganizationRequest, public_id: UUID) -> HttpResponse:
    credential = _credential_for_owner(request, public_id)
    if _check_state(credential) != "running":
        audit.record(
            Action.CREDENTIAL_TESTED,
            organization_id=credential.organization_id,
            target=_audited(credential),
        )
        record_check(credential, ok=None, message="")
        tasks.test_connection.delay_on_commit(
            credential.pk,
            on_error=partial(record_check, credential, ok=False, message=CHECK_NOT_STARTED),
        )
    if request.htmx:
        return _render_check(request, credential)
    if credential.last_check_ok is False:  # only just now: the test was not queued
        messages.error(request, CHECK_NOT_STARTED)
    else:
        messages.info(request, "Testing the connection in the background…")
    return redirect("clearance:credential_detail", public_id=credential.public_id)


@require_http_methods(["GET"])
def credential_test_status(request: HttpRequest, public_id: UUID) -> HttpResponse:
    credential = _credential_for_owner(request, public_id)
    return _render_check(request, credential)


def _render_check(request: HttpRequest, credential: Credential) -> HttpResponse:
    return render(
        request,
        "clearance/credential_detail.html#check",
        {"credential": credential, "check_state": _check_state(credential)},
    )


@require_POST
def credential_delete(request: HttpRequest, public_id: UUID) -> HttpResponse:
    credential = _credential_for_owner(request, public_id)
    in_use = credential.clearances.count()
    if in_use:
        messages.error(
            request,
            f"“{credential.name}” cannot be deleted: {in_use} vehicle(s) were registered through "
            "it. Their clearance history needs it.",
        )
        return redirect("clearance:credential_detail", public_id=credential.public_id)
    name = credential.name
    forget_token(credential)
    audit.record(
        Action.CREDENTIAL_DELETED,
        organization_id=credential.organization_id,
        target=_audited(credential),
    )
    credential.delete()
    messages.success(request, f"Credential “{name}” deleted.")
    return redirect("clearance:credentials")
