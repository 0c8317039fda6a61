"""Admin for CSV import jobs: status, counts, errors, who and when (read-only)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from imports import planning, services
from imports.models import ImportJob


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "original_name",
        "organization",
        "status",
        "total",
        "created",
        "updated",
        "skipped",
        "errors",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "update_existing", "organization")
    search_fields = ("original_name", "organization__name", "created_by__username", "sha256")
    list_select_related = ("organization", "created_by")
    date_hierarchy = "created_at"
    readonly_fields = (
        "public_id",
        "organization",
        "created_by",
        "original_name",
        "size",
        "sha256",
        "update_existing",
        "check_eligibility",
        "credential_public_id",
        "status",
        "total",
        "processed",
        "created",
        "updated",
        "skipped",
        "errors",
        "warnings",
        "queued_requests",
        "errors_table",
        "layout",
        "eligibility",
        "message",
        "created_at",
        "validated_at",
        "confirmed_at",
        "confirmed_by",
        "finished_at",
    )
    exclude = ("error_sample",)
    actions = ("cancel_jobs",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        return False

    @admin.display(description="first errors and warnings")
    def errors_table(self, obj: ImportJob) -> str:
        if not obj.error_sample:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (i.get("level", "error"), i.get("row"), i.get("column"), i.get("message"))
                for i in obj.error_sample
            ),
        )
        return format_html(
            "<table><tr><th>Level</th><th>Row</th><th>Column</th><th>Problem</th></tr>{}</table>",
            rows,
        )

    @admin.action(description="Cancel selected imports that have not started")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> None:
        canceled = 0
        for job in queryset:
            try:
                services.import_job_cancel(job)
            except planning.ImportRejected:
                continue
            canceled += 1
        self.message_user(request, f"{canceled} import(s) canceled.", messages.SUCCESS)
