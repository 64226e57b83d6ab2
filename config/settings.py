"""Settings, driven by the environment (see README "Configuration")."""

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h]

# Production security (README "Production settings"): PRODUCTION=1 turns on HTTPS-only
# cookies, the HTTPS redirect and HSTS; `manage.py check --deploy` is clean with it.
PRODUCTION = env_bool("PRODUCTION", False)
if PRODUCTION:
    if SECRET_KEY.startswith("dev-only-"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("PRODUCTION=1 needs a SECRET_KEY from the environment")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading is a commitment for the whole domain: only when asked for. Without it,
    # check --deploy's W021 reminder is silenced on purpose.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "jobs",
    "loyalty",
    "exchanges",
    "bibliotheca",
    "commerce",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jobs.middleware.RefuseUnstorablePath",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Notifications are plain text (email bodies, SMS): rendered by their own engine without
# HTML autoescaping, so "Tom & Jerry's" is not sent as "Tom &amp; Jerry&#x27;s".
TEMPLATES.append(
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "NAME": "notifications",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"autoescape": False},
    }
)

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default="postgres://postgres@127.0.0.1:5432/jobs",
        conn_max_age=env_int("CONN_MAX_AGE", 60),
    )
}
#: A qcluster's database sessions are named after the queue it consumes, so /health/ finds a
#: queue nobody consumes by its name (jobs.health.checks.check_cluster). Its connections
#: stay open: one closed and reopened between polls would look like a missing consumer.
QCLUSTER_SESSION_PREFIX = "qcluster:"
if sys.argv[1:2] == ["qcluster"]:
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = os.environ.get(
        "PGAPPNAME"
    ) or QCLUSTER_SESSION_PREFIX + os.environ.get("Q_CLUSTER_NAME", "default")
    DATABASES["default"]["CONN_MAX_AGE"] = None
if os.environ.get("TEST_DATABASE_NAME"):
    # Lets parallel test runs on one server use separate throwaway databases.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A shared cache, so django-q2's cluster stats (qmonitor, /health/) work across processes.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "jobs_cache",
    }
}

LANGUAGE_CODE = "en-us"
# django-q2 evaluates cron expressions in TIME_ZONE: keep UTC so "02:00" means 02:00 UTC.
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".run" / "static"

SESSION_ENGINE = "django.contrib.sessions.backends.db"

# Email: Django's backends. Console by default; SMTP in production via env.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / ".run" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "jobs@example.com")

# SMS: a small backend interface (jobs/sms.py); console by default, HTTP provider via env.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "jobs.sms.ConsoleSMSBackend")
SMS_HTTP_URL = os.environ.get("SMS_HTTP_URL", "")
SMS_HTTP_TOKEN = os.environ.get("SMS_HTTP_TOKEN", "")

# django-q2. Measured choices are explained in docs/operations.md and bench/queue_throughput.py.
Q_WORKERS = env_int("Q_WORKERS", 2)
Q_CLUSTER = {
    "name": "default",
    # PostgreSQL is the one broker (docs/operations.md "Scale-out"): more hosts means more
    # qclusters on this database. jobs.queue.broker claims a batch per statement.
    "orm": "default",
    "broker_class": "jobs.queue.broker.SkipLockedORMBroker",
    "workers": Q_WORKERS,
    "bulk": env_int("Q_BULK", 20),
    "poll": float(os.environ.get("Q_POLL", "0.1")),
    "queue_limit": Q_WORKERS * 20,
    # Hard limit per task (30 min); jobs set a smaller one of their own.
    "timeout": 1800,
    # Must exceed timeout, or a long task is handed to a second worker: the broker hands
    # a task taken and not acknowledged out again after `retry`.
    "retry": 1900,
    # A worker process is replaced after 1,000 tasks (releases leaked memory);
    # set here, so every cluster in ALT_CLUSTERS inherits it unless it overrides it.
    "recycle": 1000,
    # Our JobRun table replaces django-q2's Success rows; failures are still kept and pruned.
    "save_limit": -1,
    # We retry through jobs.runs.retry; a failed django-q2 task must not be redelivered too.
    "ack_failures": True,
    "max_attempts": 1,
    # A cron slot missed while the cluster was down runs once on restart, not N times.
    "catch_up": False,
    "cache": "default",
    "label": "Queue",
    "log_level": os.environ.get("Q_LOG_LEVEL", "WARNING"),
    "ALT_CLUSTERS": {
        "notifications": {
            "workers": env_int("Q_NOTIFICATION_WORKERS", 2),
            "timeout": 300,
            "retry": 360,
        },
        "apply": {
            "workers": env_int("Q_APPLY_WORKERS", 2),
            "timeout": 600,
            "retry": 660,
        },
        # The storefront's own queue: subscription deliveries and payment webhook events, so a
        # long import or a slow mail server never delays a customer's order.
        "subscriptions": {
            "workers": env_int("Q_SUBSCRIPTION_WORKERS", 2),
            "timeout": 900,
            "retry": 960,
        },
    },
}

# /metrics: with PRODUCTION=1 (or a token set) only staff or `Authorization: Bearer <token>`.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# jobs core (read lazily through jobs.conf.jobs_settings; JOBS_ALERT_EMAILS,
# JOBS_ALERT_WEBHOOK_URL, JOBS_ALERT_BASE_URL and JOBS_ALERT_CHANNELS come from the
# environment too: docs/operations.md "Alerts")
JOBS_HISTORY_DAYS = env_int("JOBS_HISTORY_DAYS", 90)
# Misfire grace: a cron slot starting later than this is recorded `missed`.
JOBS_MISFIRE_GRACE_SECONDS = env_int("JOBS_MISFIRE_GRACE_SECONDS", 300)

# Sentry (docs/operations.md "Sentry"): the web process and every qcluster report errors
# when SENTRY_DSN is set; without it the SDK is never started and nothing is sent.
SENTRY_DSN = os.environ.get("SENTRY_DSN", "")
if SENTRY_DSN:
    from jobs.health.sentry import init_sentry

    init_sentry(SENTRY_DSN, environment=os.environ.get("SENTRY_ENVIRONMENT", ""))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(levelname)s] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-q2 only configures its logger when nothing else has: set its level here.
    "loggers": {
        "django-q": {"level": os.environ.get("Q_LOG_LEVEL", "WARNING")},
        # One INFO line per request, with the APNs device token in the URL: wallet sync only.
        "httpx": {"level": "WARNING"},
    },
}
