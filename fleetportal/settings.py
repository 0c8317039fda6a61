"""FleetPortal settings, read from the environment only (see .env.example for every variable)."""

import base64
import hashlib
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import django_stubs_ext
from celery.schedules import crontab  # noqa: F401  (kept for schedule entries below)
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from fleetportal.env import (
    env_bool,
    env_choice,
    env_database,
    env_email,
    env_email_address,
    env_fernet_keys,
    env_float,
    env_int,
    env_list,
    env_str,
)
from fleetportal.logging_config import logging_config
from fleetportal.maps import tile_settings

# Django's generic classes (ModelAdmin[Credential], QuerySet[Vehicle]...) subscriptable at run time,
# as the type annotations write them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("FLEETPORTAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

VERSION = "0.1.0"

# --- Core -----------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), "
            "or set DJANGO_DEBUG=1 for local development."
        )
    SECRET_KEY = "development-only-secret-key-never-use-in-production"

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# Public base URL of this portal, used to show each credential's webhook URL.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "audit",
    "durable",
    "organizations",
    "vehicles",
    "clearance",
    "imports",
    "telemetry",
    "notifications",
    "api",
    "ninja",  # the API reference's Swagger UI, from our static files
    "simulator",
    "fleetportal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The HM webhook skips everything below (fleetportal/urls_lean.py).
    "fleetportal.middleware.LeanPathsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "audit.middleware.AuditActorMiddleware",
    "fleetportal.middleware.PrivatePagesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "organizations.middleware.CurrentOrganizationMiddleware",
    # Last, as django-axes requires: turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fleetportal.urls"
WSGI_APPLICATION = "fleetportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "organizations.context_processors.organization",
                "notifications.context_processors.bell",
            ],
            "builtins": ["organizations.templatetags.fleet"],
        },
    }
]

DATABASES = {"default": env_database("DATABASE_URL", VAR_DIR / "fleetportal.sqlite3")}
# Keep a connection per web thread / worker between requests: opening one per request halves
# webhook ingestion (see bench/webhooks.py). Health checks drop connections the server closed
# (a query per request; the HM webhook skips it and retries on a new connection instead).
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, so that a Celery worker process started by the tests sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

CACHE_URL = env_str("CACHE_URL")
if CACHE_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    }
else:
    # Shared by web and worker processes on one machine; Redis is the production choice.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes, database handler: the same in SQLite and PostgreSQL mode).
# LOGIN_FAILURE_LIMIT failed logins for one username from one client IP, each within
# LOGIN_LOCKOUT_MINUTES of the previous, pause that pair for LOGIN_LOCKOUT_MINUTES; staff unlock
# in admin. Behind reverse proxies, TRUSTED_PROXY_COUNT says how many append to X-Forwarded-For.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A refused attempt during the pause does not extend it: the page can say when it ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "organizations.login_throttle.client_ip"
AXES_LOCKOUT_CALLABLE = "organizations.login_throttle.lockout_response"
AXES_ENABLE_ADMIN = False  # organizations/admin.py registers lockouts with an unlock action
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["csrfmiddlewaretoken"]

# Email. EMAIL_URL: smtp://user:password@host:587/?tls=1, smtps://..., console:// (the default:
# printed to the process output), locmem://, file:///folder, dummy:// (see env.py).
MAILERS = {"default": env_email("EMAIL_URL")}
DEFAULT_FROM_EMAIL = env_email_address("DEFAULT_FROM_EMAIL", SITE_URL)
EMAIL_CONFIGURED = env_str("EMAIL_URL") is not None
# Member invitations: how long a link works, and whether it may create the invited account.
INVITATION_VALID_DAYS = env_int("INVITATION_VALID_DAYS", 7, minimum=1)
INVITATIONS_CREATE_ACCOUNTS = env_bool("INVITATIONS_CREATE_ACCOUNTS", False)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Security -------------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Container health checks call /healthz over plain HTTP from inside (docker-compose.yml).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Only behind a proxy that terminates TLS and overwrites X-Forwarded-Proto: otherwise any client
# could claim HTTPS. Without it behind such a proxy, SECURE_SSL_REDIRECT loops (docs/operations.md).
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Preloading is a one-way commitment for the operator's whole domain, so it is opt-in
# (DJANGO_HSTS_PRELOAD=1); its deploy warning is silenced for that reason only.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Error reports (the DEBUG page, error e-mails) also star the passwords inside connection URLs.
DEFAULT_EXCEPTION_REPORTER_FILTER = "fleetportal.reporting.SecretMaskingReporterFilter"

# Map tiles are the only third-party content a page may load (fleetportal/maps.py: OSM default).
MAP_TILE_URL, MAP_TILE_ATTRIBUTION = tile_settings()
_tile_origin = ""
if MAP_TILE_URL:
    _parts = urlsplit(MAP_TILE_URL)
    # "{s}" is Leaflet's subdomain placeholder; a CSP host wildcard covers every subdomain.
    _tile_origin = f"{_parts.scheme}://{_parts.netloc.replace('{s}', '*')}"

SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:", *([_tile_origin] if _tile_origin else [])],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Field encryption (MultiFernet): the first key encrypts, every key decrypts.
# Each key is checked at start-up, so a typo fails here, not at the first secret read or write.
FIELD_ENCRYPTION_KEYS = env_fernet_keys("FIELD_ENCRYPTION_KEYS")
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is not set. Generate one with "
            "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
        )
    FIELD_ENCRYPTION_KEYS = [
        base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()
    ]

# --- Logging --------------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = logging_config(LOG_LEVEL)

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, str | int | float | bool]
if CELERY_BROKER_URL:
    # The visibility timeout (minutes) is set with the task time limits, at the end.
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # kombu's filesystem transport with whole-message writes (see fleetportal/broker.py).
    CELERY_BROKER_TRANSPORT = "fleetportal.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The folder is polled every 5 ms while messages flow, every 0.1 s once idle for 2 s
        # (fleetportal/broker.py): a task's continuation starts at once, an idle worker is cheap.
        "polling_interval": 0.1,
        "busy_polling_interval": 0.005,
        "busy_seconds": 2.0,
    }
    # The filesystem transport has no fan-out exchange, which remote control needs.
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
    # It also has no event loop, and a prefork pool without one shares a single locked queue
    # between its children: a child killed while waiting on it (the OOM killer) hangs the pool
    # for good. Threads cannot be killed one by one; a killed worker is the reconciler's case.
    # (Threads cannot cut an HM call short on a warm shutdown: prefork can be asked for here.)
    CELERY_WORKER_POOL = env_choice("CELERY_WORKER_POOL", "threads", ("threads", "prefork"))
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = (
    CELERY_TASK_TIME_LIMIT - 30 if CELERY_TASK_TIME_LIMIT > 60 else CELERY_TASK_TIME_LIMIT
)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "clearance.tasks.*": {"queue": "hm"},
    "telemetry.tasks.*": {"queue": "hm"},
    "imports.tasks.*": {"queue": "imports"},
    "simulator.tasks.*": {"queue": "simulator"},
    "notifications.tasks.*": {"queue": "notifications"},
}
# Queues by kind (docs/durability.md): no kind of work waits behind another's backlog.
CELERY_WORKER_QUEUES = ["default", "webhooks", "hm", "telemetry", "imports"]
CELERY_WORKER_QUEUES += ["simulator", "notifications"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- HM client & simulator ---------------------------------------------------------------
HM_PRODUCTION_BASE_URL = env_str("HM_PRODUCTION_BASE_URL", "https://api.high-mobility.com").rstrip(
    "/"
)
HM_SANDBOX_BASE_URL = env_str(
    "HM_SANDBOX_BASE_URL", "https://sandbox.api.high-mobility.com"
).rstrip("/")
SIMULATOR_ENABLED = env_bool("SIMULATOR_ENABLED", DEBUG)
# Where the portal reaches the simulator (this portal itself under /simulator/ by default).
HM_SIMULATOR_BASE_URL = env_str("HM_SIMULATOR_BASE_URL", f"{SITE_URL}/simulator").rstrip("/")
HM_CONNECT_TIMEOUT = env_float("HM_CONNECT_TIMEOUT", 5.0, minimum=0.1)
HM_READ_TIMEOUT = env_float("HM_READ_TIMEOUT", 30.0, minimum=0.1)
# Simulator behaviour: seconds until an ordinary VIN is approved, until revoking/canceling ends,
# and fault knobs for every simulated app that does not set its own (rates are 0.0-1.0).
SIMULATOR_APPROVAL_DELAY_SECONDS = env_int("SIMULATOR_APPROVAL_DELAY_SECONDS", 5, minimum=0)
SIMULATOR_REMOVAL_DELAY_SECONDS = env_int("SIMULATOR_REMOVAL_DELAY_SECONDS", 5, minimum=0)
SIMULATOR_ERROR_RATE = env_float("SIMULATOR_ERROR_RATE", 0.0, minimum=0.0, maximum=1.0)
SIMULATOR_RATE_LIMIT_RATE = env_float("SIMULATOR_RATE_LIMIT_RATE", 0.0, minimum=0.0, maximum=1.0)
SIMULATOR_LATENCY_MS = env_int("SIMULATOR_LATENCY_MS", 0, minimum=0)

# --- Clearance lifecycle -----------------------------------------------------------------
HM_CLEARANCE_BATCH_SIZE = env_int("HM_CLEARANCE_BATCH_SIZE", 100, minimum=1)
CLEARANCE_SYNC_INTERVAL_SECONDS = env_int("CLEARANCE_SYNC_INTERVAL_SECONDS", 300, minimum=10)
# Transient HM errors: exponential backoff with jitter (HM's "retry after N s" wins if longer).
HM_RETRY_BACKOFF_SECONDS = env_float("HM_RETRY_BACKOFF_SECONDS", 5.0, minimum=0.01)
HM_RETRY_BACKOFF_MAX_SECONDS = env_float("HM_RETRY_BACKOFF_MAX_SECONDS", 600.0, minimum=0.01)
HM_MAX_RETRIES = env_int("HM_MAX_RETRIES", 8, minimum=0)
# Legacy per-vehicle tokens (service-account mode) are refreshed this long before expiry.
VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS = env_int(
    "VEHICLE_TOKEN_REFRESH_MARGIN_SECONDS", 600, minimum=10
)

# --- Imports -----------------------------------------------------------------------------
IMPORT_MAX_UPLOAD_MB = env_int("IMPORT_MAX_UPLOAD_MB", 20, minimum=1)
# Rows written per transaction (one task) by the import: the unit a killed importer redoes. The
# preview checks at most 2,000 rows per query (imports.planning.PLAN_BATCH_SIZE) whatever this is.
IMPORT_BATCH_SIZE = env_int("IMPORT_BATCH_SIZE", 10000, minimum=1)
# The optional preview eligibility check makes one HM call per VIN: only the first N new VINs.
IMPORT_ELIGIBILITY_CHECK_LIMIT = env_int("IMPORT_ELIGIBILITY_CHECK_LIMIT", 25, minimum=0)
# Soft time limit of the validate/import tasks (seconds); keep below the broker visibility timeout.
IMPORT_TASK_TIME_LIMIT = env_int("IMPORT_TASK_TIME_LIMIT", 1800, minimum=60)
# Uploaded files are kept in the database for the error report; deleted this long after the end.
IMPORT_FILE_RETENTION_DAYS = env_int("IMPORT_FILE_RETENTION_DAYS", 30, minimum=1)
# A file check (preview) not heard of for this long was interrupted: it is started again.
IMPORT_CHECK_LEASE_SECONDS = env_int("IMPORT_CHECK_LEASE_SECONDS", 60, minimum=5)

# --- Notifications: alert rules, email and outgoing webhooks ------------------------------
# How often an open page asks for the bell's unread count (paused while the tab is hidden).
NOTIFICATION_BELL_POLL_SECONDS = env_int("NOTIFICATION_BELL_POLL_SECONDS", 30, minimum=1)
# How often the time-based alert rules (pending too long, silent) run over the whole fleet, and
# due daily digests are written.
ALERT_EVALUATION_INTERVAL_SECONDS = env_int("ALERT_EVALUATION_INTERVAL_SECONDS", 300, minimum=10)
# Failed deliveries (email, webhooks; durable work, woken by the reconciler every
# RECONCILE_INTERVAL_SECONDS): exponential backoff from the base, capped; retried this many
# hours, then failed. A webhook endpoint failing that long is disabled.
DELIVERY_RETRY_BASE_SECONDS = env_float("DELIVERY_RETRY_BASE_SECONDS", 30.0, minimum=0.1)
DELIVERY_RETRY_MAX_SECONDS = env_float("DELIVERY_RETRY_MAX_SECONDS", 3600.0, minimum=1.0)
DELIVERY_RETRY_HOURS = env_float("DELIVERY_RETRY_HOURS", 24.0, minimum=0.01)
# Outgoing webhooks: loopback/private/link-local addresses are refused unless this is on (tests,
# `make run`); cloud metadata addresses always. HTTPS is required unless DEBUG.
OUTGOING_WEBHOOKS_ALLOW_PRIVATE = env_bool("OUTGOING_WEBHOOKS_ALLOW_PRIVATE", False)
OUTGOING_WEBHOOKS_REQUIRE_HTTPS = env_bool("OUTGOING_WEBHOOKS_REQUIRE_HTTPS", not DEBUG)
OUTGOING_WEBHOOKS_CONNECT_TIMEOUT = env_float("OUTGOING_WEBHOOKS_CONNECT_TIMEOUT", 5.0, minimum=0.1)
OUTGOING_WEBHOOKS_READ_TIMEOUT = env_float("OUTGOING_WEBHOOKS_READ_TIMEOUT", 10.0, minimum=0.1)
# CA bundle to verify receivers' certificates with (empty: the bundled public CAs).
OUTGOING_WEBHOOKS_CA_FILE = env_str("OUTGOING_WEBHOOKS_CA_FILE", "")

# --- Beat schedule (exactly one beat process runs it) ---------------------------------------------
CELERY_BEAT_SCHEDULE = {
    "sync-clearances": {
        "task": "clearance.tasks.sync_all_clearances",
        "schedule": float(CLEARANCE_SYNC_INTERVAL_SECONDS),
    },
    "refresh-vehicle-tokens": {
        "task": "clearance.tasks.refresh_vehicle_tokens",
        "schedule": 300.0,
    },
}
CELERY_BEAT_SCHEDULE.update(
    {
        "evaluate-alert-rules": {
            "task": "notifications.tasks.evaluate_alert_rules",
            "schedule": float(ALERT_EVALUATION_INTERVAL_SECONDS),
        },
        "prepare-digests": {
            "task": "notifications.tasks.prepare_digests",
            "schedule": float(ALERT_EVALUATION_INTERVAL_SECONDS),
        },
    }
)
if SIMULATOR_ENABLED:
    CELERY_BEAT_SCHEDULE["simulator-tick"] = {"task": "simulator.tasks.tick", "schedule": 2.0}

# --- Telemetry: pulls, retention, MQTT (fleetportal/settings_telemetry.py) ---------------------
from fleetportal.settings_telemetry import *  # noqa: E402, F403

CELERY_BEAT_SCHEDULE.update(TELEMETRY_BEAT_SCHEDULE)  # noqa: F405

# --- Durable work: retries, reconciler, queues by kind (fleetportal/settings_durable.py) ------
from fleetportal.settings_durable import *  # noqa: E402, F403

CELERY_TASK_ROUTES.update(DURABLE_TASK_ROUTES)  # noqa: F405
if CELERY_BROKER_URL != "filesystem://":
    # Above the longest task time limit (a running late-ack task is never handed out twice);
    # durable work never waits for it: the reconciler wakes what a dead worker held.
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = max(600, IMPORT_TASK_TIME_LIMIT + 60)
CELERY_BEAT_SCHEDULE.update(DURABLE_BEAT_SCHEDULE)  # noqa: F405

# --- live pages (issue 12): fleetportal/settings_live.py ------------------------------------------
from fleetportal.settings_api import *  # noqa: E402,F403  (integrator API, audit log)
from fleetportal.settings_live import *  # noqa: E402, F403

CELERY_BEAT_SCHEDULE.update(API_BEAT_SCHEDULE)  # noqa: F405
