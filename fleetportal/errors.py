"""Error pages (403, 404, 500) and the filter that keeps client errors to one log line.

The pages are templates extending ``base.html`` (``templates/403.html``, ``404.html``,
``500.html``); Django's default views render 404 and 500. The 403 view here adds the reason
when it is safe to show: ``PermissionDenied`` messages raised in our own packages
(``require_role``'s "This needs the owner role.") are written for users; a message raised
anywhere else (Django, a library) may be technical and is not shown. 404 never shows its
message, so a page cannot tell "exists in another organization" from "does not exist".

``ClientErrorLogFilter`` turns every 4xx record of ``django.request`` / ``django.security.*``
into one WARNING line (status, method, path, user id, reason) without traceback: a viewer opening
/credentials/ is not a bug. 5xx records keep their traceback. Wired in ``settings.LOGGING``.

Imported while logging is configured (before the apps are ready): Django imports stay inside
the functions.
"""

from __future__ import annotations

import logging
from typing import Any

# Top-level packages whose PermissionDenied messages are written for the people who see them.
OWN_PACKAGES = frozenset({"clearance", "fleetportal", "organizations", "simulator", "vehicles"})
MAX_REASON = 300


def permission_denied(request: Any, exception: Exception | None = None) -> Any:
    """handler403: the 403 page, with the reason when it is one of ours."""
    from django.shortcuts import render

    return render(request, "403.html", {"reason": user_reason(exception)}, status=403)


def user_reason(exception: BaseException | None) -> str:
    """The exception's message if our own code raised it (so it is meant for users), else ''."""
    if exception is None:
        return ""
    message = str(exception).strip()
    if not message or len(message) > MAX_REASON or not _raised_in_own_code(exception):
        return ""
    return message


def _raised_in_own_code(exception: BaseException) -> bool:
    frame = exception.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    module = str(frame.tb_frame.f_globals.get("__name__", ""))
    return module.partition(".")[0] in OWN_PACKAGES


class ClientErrorLogFilter(logging.Filter):
    """4xx: one WARNING line without traceback; everything else passes unchanged.

    Used on the ``django.request`` and ``django.security.*`` loggers (so every handler, and
    pytest's caplog, sees the short record) and on the console handler as a catch-all for
    loggers not named in the settings. Applying it twice changes nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if not isinstance(status, int) or not 400 <= status < 500:
            return True
        if getattr(record, "client_error_line", False):
            return True
        request = getattr(record, "request", None)
        path = _escape(str(getattr(request, "path", "") or "-"))
        method = str(getattr(request, "method", "") or "-")
        reason = _escape(record.getMessage().split("\n", 1)[0])
        for suffix in (f": {path}", f": {getattr(request, 'path', '')}"):
            reason = reason.removesuffix(suffix)
        exc = record.exc_info[1] if record.exc_info else None
        detail = _escape(str(exc))[:MAX_REASON] if exc is not None else ""
        if detail and detail not in reason:
            reason = f"{reason}: {detail}"
        record.msg = "%s %s %s user=%s: %s"
        record.args = (status, method, path, _user_id(request), reason)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.client_error_line = True
        return True


def _user_id(request: Any) -> str:
    """The user's id if authentication already ran; never loads the session or the database."""
    from django.utils.functional import empty

    user = getattr(request, "__dict__", {}).get("user")
    if user is None:
        return "-"
    wrapped = getattr(user, "__dict__", {}).get("_wrapped", user)  # SimpleLazyObject until used
    if wrapped is empty:
        return "-"
    if not getattr(wrapped, "is_authenticated", False):
        return "anonymous"
    return str(getattr(wrapped, "pk", "-"))


def _escape(text: str) -> str:
    """No line breaks or control characters from a request into the log (log injection)."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
