"""What Django's error reports (the DEBUG page, error e-mails) may show.

Django already stars settings and request.META entries whose names look secret (``*KEY*``,
``*PASS*``, ...). Connection URLs carry their password inside the value under innocent names:
``DATABASE_URL``, ``CELERY_BROKER_URL``, ``CACHE_URL``, ``CACHES["default"]["LOCATION"]``, and
the environment that ``runserver`` copies into request.META. Here the password of every URL in
those values, and in text held by local variables of the traceback, is starred as well.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

_URL_PASSWORD = re.compile(
    r"(?P<start>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^/?#\s]*)(?=@)"
)


def mask_url_passwords(text: str, substitute: str) -> str:
    """``redis://:secret@host/0`` -> ``redis://:********@host/0`` (user and host kept)."""
    return _URL_PASSWORD.sub(lambda match: match["start"] + substitute, text)


class SecretMaskingReporterFilter(SafeExceptionReporterFilter):
    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)  # recurses into dicts, lists, tuples
        # `type() is str`: a lazy setting (django-axes' AXES_USERNAME_FORM_FIELD) passes
        # isinstance(..., str) but is no string the pattern can search.
        if type(cleansed) is str:
            return mask_url_passwords(cleansed, self.cleansed_substitute)
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        # `type() is str`, not isinstance: a lazy object must not be evaluated here.
        return [
            (name, mask_url_passwords(value, self.cleansed_substitute))
            if type(value) is str
            else (name, value)
            for name, value in variables
        ]
