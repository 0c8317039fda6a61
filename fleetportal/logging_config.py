"""Logging for every process (web, workers, beat, commands): one console handler, short 4xx lines."""

from __future__ import annotations

from typing import Any

# A 4xx (a viewer opening /credentials/, a stale link) is one WARNING line with status, method,
# path and user id, without traceback; a 5xx keeps its traceback (fleetportal/errors.py). The
# filter sits on the loggers that log request errors, so every handler gets the short record,
# and on the console handler for django.security.* loggers not listed here.
_REQUEST_ERROR_LOGGERS = (
    "django.request",
    "django.security.csrf",
    *(
        f"django.security.{name}"
        for name in (
            "SuspiciousOperation",
            "DisallowedHost",
            "DisallowedRedirect",
            "DisallowedModelAdminLookup",
            "DisallowedModelAdminToField",
            "InvalidSessionKey",
            "RequestDataTooBig",
            "SuspiciousFileOperation",
            "SuspiciousMultipartForm",
            "SuspiciousSession",
            "TooManyFieldsSent",
            "TooManyFilesSent",
        )
    ),
)


def logging_config(level: str) -> dict[str, Any]:
    """The LOGGING setting for the root level ``level`` (LOG_LEVEL)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"client_errors": {"()": "fleetportal.errors.ClientErrorLogFilter"}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["client_errors"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            # Failed and refused logins are logged once, by organizations.login_throttle.
            "axes": {"level": "ERROR"},
            # Django's own handlers (a DEBUG-only console, mail_admins without ADMINS) printed each
            # request error a second time next to the root console; django.* propagates to root.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            **{name: {"filters": ["client_errors"]} for name in _REQUEST_ERROR_LOGGERS},
        },
    }
