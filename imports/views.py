"""Import pages: upload -> job page (progress, preview, confirm, summary), error report, export."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from audit import log as audit
from audit.models import Action
from clearance.models import Credential
from clearance.selectors import credentials_for, filter_fleet, parse_fleet_filter
from imports import files, planning, reports, services
from imports.exports import csv_response, fleet_export_response
from imports.forms import ConfirmForm, UploadForm
from imports.models import ImportJob
from organizations.access import current_organization, get_object_for_user, require_role, scoped
from organizations.http import OrganizationRequest
from organizations.models import Role
from vehicles.validation import valid_brands_text

JOB_TEMPLATE = "imports/job.html"


def _credentials(request: OrganizationRequest) -> list[Credential]:
    return list(credentials_for(current_organization(request)))


@require_http_methods(["GET", "POST"])
def upload(request: OrganizationRequest) -> HttpResponse:
    membership = require_role(request, Role.MANAGER)
    posted = request.method == "POST"
    form = UploadForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        credentials=_credentials(request),
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = services.import_job_create(
                organization=membership.organization,
                user=request.user,
                upload=form.cleaned_data["file"],
                update_existing=form.cleaned_data["update_existing"],
                check_eligibility=form.cleaned_data["check_eligibility"],
                credential=form.cleaned_data["credential"],
            )
        except planning.ImportRejected as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("imports:job", public_id=job.public_id)
    recent = scoped(request, ImportJob).select_related("created_by")[:10]
    context = {"form": form, "recent": recent, "max_mb": settings.IMPORT_MAX_UPLOAD_MB}
    return render(request, "imports/upload.html", context)


def _job(request: OrganizationRequest, public_id, *, role: str | None = None) -> ImportJob:
    return get_object_for_user(request, ImportJob, role=role, public_id=public_id)


BRAND_LIST = " Valid brands: "


def row_ranges(rows: list[int], limit: int = 12, *, more: bool = False) -> str:
    """[2, 3, 4, 7] -> "2–4, 7" (at most ``limit`` ranges, then "…"; also when ``more`` rows
    than those given are concerned)."""
    ranges: list[list[int]] = []
    for row in sorted(set(rows)):
        if ranges and row == ranges[-1][1] + 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    text = [f"{a}–{b}" if b > a else str(a) for a, b in ranges[:limit]]
    return ", ".join(text) + (", …" if more or len(ranges) > limit else "")


def grouped_issues(issues: list[dict]) -> tuple[list[dict], bool]:
    """Identical messages (same column, same words) once, with the rows they concern; the list
    of valid brands is cut from each brand error (the page shows it once). Returns (groups,
    whether a brand error was cut)."""
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    cut_brands = False
    for issue in issues:
        message = str(issue.get("message", ""))
        if BRAND_LIST in message:
            message = message[: message.index(BRAND_LIST)] + " (valid brands: see below)."
            cut_brands = True
        count, rows = groups.setdefault((str(issue.get("column") or ""), message), ([0], []))
        # Entries grouped over the whole file carry a count and their first rows; older ones
        # are one issue each.
        count[0] += int(issue.get("count") or 1)
        rows.extend(int(row or 0) for row in (issue.get("rows") or [issue.get("row")]))
    return [
        {
            "column": column,
            "message": message,
            "count": count[0],
            "rows": row_ranges(rows, more=count[0] > len(rows)),
        }
        for (column, message), (count, rows) in groups.items()
    ], cut_brands


def _job_context(job: ImportJob) -> dict:
    errors, brands_in_errors = grouped_issues(planning.sample_issues(job, "error"))
    warnings, brands_in_warnings = grouped_issues(planning.sample_issues(job, "warning"))
    return {
        "job": job,
        "confirm_form": ConfirmForm(),
        "first_errors": errors,
        "first_warnings": warnings,
        "sampled_errors": sum(group["count"] for group in errors),
        "sampled_warnings": sum(group["count"] for group in warnings),
        "valid_brands": valid_brands_text() if brands_in_errors or brands_in_warnings else "",
        # A preview left open while the fleet changed: offer to check again, not to import.
        "stale": planning.preview_is_stale(job),
        # What is pending in the background and when it is tried next (durable work).
        "pending": reports.pending_words(job, reports.pending_work(job)) if job.is_running else "",
    }


@require_GET
def job(request: OrganizationRequest, public_id) -> HttpResponse:
    job = _job(request, public_id)
    context = _job_context(job)
    if request.htmx:
        return _status(request, job, context)
    return render(request, JOB_TEMPLATE, context)


@require_GET
def job_status(request: OrganizationRequest, public_id) -> HttpResponse:
    job = _job(request, public_id)
    return _status(request, job, _job_context(job))


def _status(request: OrganizationRequest, job: ImportJob, context: dict) -> HttpResponse:
    response = render(request, f"{JOB_TEMPLATE}#job-status", context)
    if job.is_running:
        return response
    # The job has ended: send the final state and tell htmx to stop polling (status 286).
    return HttpResponseStopPolling(response.content)


@require_POST
def confirm(request: OrganizationRequest, public_id) -> HttpResponse:
    job = _job(request, public_id, role=Role.MANAGER)
    form = ConfirmForm(request.POST)
    form.is_valid()
    try:
        services.import_job_confirm(
            job, user=request.user, accept_skipped=form.cleaned_data.get("accept_skipped", False)
        )
    except planning.PreviewStale:
        pass  # the preview page says so, and offers to check the file again
    except planning.ImportRejected as exc:
        messages.error(request, str(exc))
    return redirect("imports:job", public_id=job.public_id)


@require_POST
def recheck(request: OrganizationRequest, public_id) -> HttpResponse:
    """Check the file again against the fleet as it is now (a new preview, nothing imported)."""
    job = _job(request, public_id, role=Role.MANAGER)
    try:
        services.import_job_recheck(job)
    except planning.ImportRejected as exc:
        messages.error(request, str(exc))
    return redirect("imports:job", public_id=job.public_id)


@require_POST
def cancel(request: OrganizationRequest, public_id) -> HttpResponse:
    job = _job(request, public_id, role=Role.MANAGER)
    try:
        services.import_job_cancel(job)
    except planning.ImportRejected as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The import was canceled; nothing was changed.")
    return redirect("imports:upload")


@require_GET
def error_report(request: OrganizationRequest, public_id: UUID) -> HttpResponseBase:
    # The report lists rows of the uploaded file, including those never imported: it is for the
    # managers who fix and upload files, like the upload itself.
    job = _job(request, public_id, role=Role.MANAGER)
    if not files.job_file_kept(job):
        messages.error(request, "The file of this import is no longer kept.")
        return redirect("imports:job", public_id=job.public_id)
    name = (job.original_name or "import").rsplit(".", 1)[0][:60]
    return csv_response(reports.error_report_rows(job), f"{name}-errors.csv")


@require_GET
def export(request: OrganizationRequest) -> HttpResponseBase:
    """The fleet as CSV, with the same filters (GET parameters) as the fleet list."""
    organization = current_organization(request)
    flt = parse_fleet_filter(request.GET)
    queryset = filter_fleet(organization, flt)
    audit.record(
        Action.EXPORT_DOWNLOADED,
        organization=organization,
        target=audit.Target("fleet", "", "fleet CSV", flt.as_params()),
    )
    return fleet_export_response(queryset, filename=f"{organization.slug}-fleet.csv", flt=flt)
