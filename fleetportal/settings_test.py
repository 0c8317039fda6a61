"""Settings for the test suite: the production settings with test-only defaults for secrets.

Everything else still comes from the environment, so the suite runs against PostgreSQL and Redis
when DATABASE_URL / CELERY_BROKER_URL / CACHE_URL are set, and on the embedded defaults otherwise.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-for-the-fleetportal-test-suite")
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LTEyMzQ=")
os.environ.setdefault("SIMULATOR_ENABLED", "1")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
# The suite drops its database at the end; connections kept open by live-server threads would
# block that, so each request closes its own, as Django does by default.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
# Messages stay in memory (django.core.mail.outbox); Django's test runner does the same.
os.environ.setdefault("EMAIL_URL", "locmem://")
# Webhook receivers in tests listen on 127.0.0.1 over plain HTTP; retries come within seconds.
os.environ.setdefault("OUTGOING_WEBHOOKS_ALLOW_PRIVATE", "1")
os.environ.setdefault("OUTGOING_WEBHOOKS_REQUIRE_HTTPS", "0")
os.environ.setdefault("DELIVERY_RETRY_BASE_SECONDS", "1")

from fleetportal.settings import *  # noqa: F403
from fleetportal.settings import STORAGES

STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
WHITENOISE_USE_FINDERS = True
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
