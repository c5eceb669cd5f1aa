"""Settings shared by every environment; everything comes from environment variables.

Development defaults are safe to run on a laptop (SQLite under var/, tasks run
in-process, e-mail to the console). Production (config.settings.production)
removes the defaults for secrets so a missing one fails at start-up.
"""

import datetime
from pathlib import Path

import environ
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me-0123456789-abcdefghijklmnop")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Used to build links in reminder e-mails (no request there).
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "registry.apps.RegistryAdminConfig",  # django.contrib.admin with the registry's default site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "django_celery_beat",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "registry",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Idle and absolute session limits, then "second factor first" (they need the
    # user, the OTP verification and messages).
    "registry.accounts.middleware.SessionLimitsMiddleware",
    "registry.accounts.middleware.MfaRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "registry.middleware.NoStoreMiddleware",  # outside the input check: its 400s too
    "registry.middleware.InputCheckMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a lockout into the login page's answer.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked user name before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # registry/templates first, so that its admin/base_site.html (the session
        # timer) wins over the admin's own; everything else there is app-specific.
        "DIRS": [BASE_DIR / "registry" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "registry.accounts.context.session_timer",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'registry.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (runserver, a command) may touch the file at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every form and registry_user apply these (validate_password). The last one checks
# nothing: Django calls its password_changed() after every password change, however
# made, and it revokes the user's API tokens.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "registry.accounts.passwords.PasswordChangeRevokesTokens"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Audit trail -------------------------------------------------------------
SIMPLE_HISTORY_DATE_INDEX = "Composite"
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
SIMPLE_HISTORY_REVERT_DISABLED = True  # corrections go through forms with a reason

# --- Request bodies -----------------------------------------------------------
# REDCap clients send one form field per record id and field name (PyCap:
# records[0], records[1], ...), so Django's default of 1000 fields refused
# ordinary selections. Still bounded: parsing cost and memory grow with the
# count, and the body itself stays capped by DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB);
# 20,000 also keeps a record selection under SQLite's 32,766 query parameters.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 20_000

# --- REST API ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.RegistryTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.RegistryCursorPagination",
    "PAGE_SIZE": 100,
    # One rate per token (REGISTRY_API_RATE), shared with /redcap/api/ and /fhir/.
    "DEFAULT_THROTTLE_CLASSES": ["registry.services.throttling.TokenRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Neuromodulation registry API",
    "DESCRIPTION": (
        "De-identified, site-scoped read access to the registry and its analysis datasets. "
        "Nurses and data managers see calendar dates as recorded; investigators see every "
        "clinical date of a patient shifted back by the same 0-364 days (intervals such as days "
        "from implant are exact) and may not filter on clinical dates (400). updated_at and "
        "updated_since are real times for everyone."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Device and procedure relatedness share one code list (MDCG 2020-10/1).
    "ENUM_NAME_OVERRIDES": {"RelatednessEnum": "registry.models.choices.Relatedness",
                            "VisitStatusEnum": "registry.models.choices.VisitStatus",
                            "QueryStatusEnum": "registry.models.queries.QueryStatus"},
}

# --- Celery ------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="memory://")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
# Without a broker, tasks run in-process (make run, bare-machine make test).
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=CELERY_BROKER_URL.startswith("memory://")
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- E-mail ------------------------------------------------------------------
EMAIL_HOST = env("EMAIL_HOST", default="")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="registry@localhost")

# --- Registry ----------------------------------------------------------------
# Reminders list visits whose window opens within this many days.
REGISTRY_REMINDER_DAYS_AHEAD = env.int("REGISTRY_REMINDER_DAYS_AHEAD", default=14)
# Days after a window closes before a visit is marked missed.
REGISTRY_MISSED_GRACE_DAYS = env.int("REGISTRY_MISSED_GRACE_DAYS", default=30)
# Each site's digest goes out at the first hourly run from this local hour.
REGISTRY_REMINDER_LOCAL_HOUR = env.int("REGISTRY_REMINDER_LOCAL_HOUR", default=6)
# "Due soon" also lists windows that opened up to this many days ago (catch-up after missed runs).
REGISTRY_REMINDER_CATCH_UP_DAYS = env.int("REGISTRY_REMINDER_CATCH_UP_DAYS", default=7)
# First retry of a failed delivery after this many seconds (doubling, at most an hour).
REGISTRY_REMINDER_RETRY_BACKOFF = env.int("REGISTRY_REMINDER_RETRY_BACKOFF", default=60)
# Where admin uploads wait between their dry run and the confirmation (empty: the default).
REGISTRY_IMPORT_DIR = env("REGISTRY_IMPORT_DIR", default="") or str(VAR_DIR / "imports")
# Outcome groups of fewer patients are suppressed for investigators (small cells identify).
REGISTRY_MIN_CELL = env.int("REGISTRY_MIN_CELL", default=5)
if REGISTRY_MIN_CELL < 1:
    raise ImproperlyConfigured(f"REGISTRY_MIN_CELL must be 1 or more, not {REGISTRY_MIN_CELL}.")
# Bundle import limits (admin upload, import_registry): a zip bomb or a runaway file is
# refused before it fills memory. 10,000 patients are ~20 MB of CSV.
REGISTRY_IMPORT_MAX_COMPRESSED = env.int("REGISTRY_IMPORT_MAX_COMPRESSED", default=32 * 1024**2)
REGISTRY_IMPORT_MAX_UNCOMPRESSED = env.int("REGISTRY_IMPORT_MAX_UNCOMPRESSED", default=64 * 1024**2)
REGISTRY_IMPORT_MAX_COLUMNS = env.int("REGISTRY_IMPORT_MAX_COLUMNS", default=200)
REGISTRY_IMPORT_MAX_LINE_LENGTH = env.int("REGISTRY_IMPORT_MAX_LINE_LENGTH", default=64 * 1024)
# Name of the registry (REDCap project title) and the URI system of its FHIR ids.
REGISTRY_TITLE = env("REGISTRY_TITLE", default="Neuromodulation pain registry")
REGISTRY_FHIR_SYSTEM = env("REGISTRY_FHIR_SYSTEM", default="urn:neuromodulation-registry")
# REST list-page rows of the export log older than this are deleted daily (whole exports
# are kept for the registry's life: registry.services.export_log.export_log_prune).
REGISTRY_EXPORT_LOG_RETENTION_DAYS = env.int("REGISTRY_EXPORT_LOG_RETENTION_DAYS", default=730)

# --- Content-Security-Policy (django-csp) on every page ---------------------------
# Scripts only from the registry's own static files, or inline with this request's
# nonce (`{{ request.csp_nonce }}`); inline styles stay allowed (matplotlib's SVG plots
# carry their own <style>, and styles do not run code).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Security (README "Security") -----------------------------------------------
# A value read from the environment that must be positive: a typo fails at start-up.
def _positive(name: str, default, cast=int):
    value = cast(env(name, default=default))
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return value


# Sign-in lockout (django-axes): this many failures for one user name within
# REGISTRY_LOCKOUT_MINUTES lock that name for REGISTRY_LOCKOUT_MINUTES, even with the
# right password, until then or until a data manager unlocks it. One address (a ward
# behind one NAT) is locked after REGISTRY_LOGIN_FAILURES_PER_IP failures.
REGISTRY_LOGIN_FAILURES = _positive("REGISTRY_LOGIN_FAILURES", 10)
REGISTRY_LOGIN_FAILURES_PER_IP = _positive("REGISTRY_LOGIN_FAILURES_PER_IP", 50)
REGISTRY_LOCKOUT_MINUTES = _positive("REGISTRY_LOCKOUT_MINUTES", 15)
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_HANDLER = "registry.accounts.lockout.RegistryAxesHandler"
AXES_FAILURE_LIMIT = REGISTRY_LOGIN_FAILURES
AXES_COOLOFF_TIME = datetime.timedelta(minutes=REGISTRY_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# A locked name stays locked for the whole cool-off, however often it is tried.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "registry.accounts.lockout.lockout_response"
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_ENABLE_ADMIN = False  # registry/admin/accounts.py shows them to data managers only
AXES_VERBOSE = False
# Addresses behind a proxy: how many proxies in front of Django set X-Forwarded-For.
REGISTRY_PROXY_COUNT = env.int("REGISTRY_PROXY_COUNT", default=0)
if REGISTRY_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = REGISTRY_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]

# Second factor (django-otp, TOTP with backup codes) for these roles. Production
# requires it of data managers and investigators; development (make run) of nobody.
REGISTRY_MFA_REQUIRED_ROLES = env.list("REGISTRY_MFA_REQUIRED_ROLES", default=[])
OTP_TOTP_ISSUER = REGISTRY_TITLE

# Sessions: signed out after REGISTRY_SESSION_IDLE_MINUTES without a request, and
# REGISTRY_SESSION_MAX_HOURS after signing in whatever happens; the cookie dies with
# the browser. A password change signs out every other session (Django's session hash).
REGISTRY_SESSION_IDLE_MINUTES = _positive("REGISTRY_SESSION_IDLE_MINUTES", 30, float)
REGISTRY_SESSION_MAX_HOURS = _positive("REGISTRY_SESSION_MAX_HOURS", 12, float)
SESSION_COOKIE_AGE = int(REGISTRY_SESSION_MAX_HOURS * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# The admin warns this many seconds before the idle sign-out.
REGISTRY_SESSION_WARNING_SECONDS = _positive("REGISTRY_SESSION_WARNING_SECONDS", 120)

# API tokens: a new token lives REGISTRY_API_TOKEN_DAYS, at most REGISTRY_API_TOKEN_MAX_DAYS.
REGISTRY_API_TOKEN_DAYS = _positive("REGISTRY_API_TOKEN_DAYS", 365)
REGISTRY_API_TOKEN_MAX_DAYS = _positive("REGISTRY_API_TOKEN_MAX_DAYS", 365)
# Requests per token on /api/v1/, /redcap/api/ and /fhir/ (REDCap's own default).
REGISTRY_API_RATE = env("REGISTRY_API_RATE", default="600/min")

# Rate counters live in the cache: local memory here, Redis in production.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "registry"},
}

# load_demo and registry_user --no-password-validation refuse to run when this is off
# (production settings turn it off).
REGISTRY_DEMO_ALLOWED = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# --- Clinical depth (issue 20) ---------------------------------------------------------
# Unanswered contact attempts (since the patient was last reached or seen) before a
# patient may be recorded as lost to follow-up.
REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS = _positive("REGISTRY_LOST_TO_FOLLOW_UP_ATTEMPTS", 3)
# Reporting deadlines of serious incidents, in calendar days from the awareness date
# (MDR Art. 87(3)-(5); registry/services/safety/reportability.py says how each applies).
REGISTRY_SAFETY_DAYS_PUBLIC_HEALTH_THREAT = _positive("REGISTRY_SAFETY_DAYS_PUBLIC_HEALTH_THREAT", 2)
REGISTRY_SAFETY_DAYS_DEATH_OR_DETERIORATION = _positive("REGISTRY_SAFETY_DAYS_DEATH_OR_DETERIORATION", 10)
REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT = _positive("REGISTRY_SAFETY_DAYS_SERIOUS_INCIDENT", 15)
# The safety alert sweep leaves events the site learned of longer ago than this alone.
REGISTRY_SAFETY_ALERT_LOOKBACK_DAYS = _positive("REGISTRY_SAFETY_ALERT_LOOKBACK_DAYS", 30)
# --- Questionnaire links (ePRO, registry.services.epro) ------------------------------
# A link works from its visit's window start to the window end plus this many days.
REGISTRY_EPRO_GRACE_DAYS = env.int("REGISTRY_EPRO_GRACE_DAYS", default=7)
if REGISTRY_EPRO_GRACE_DAYS < 0:
    raise ImproperlyConfigured(f"REGISTRY_EPRO_GRACE_DAYS must be 0 or more, not {REGISTRY_EPRO_GRACE_DAYS}.")
# Reminders to a patient who has not answered, this many days after the invitation
# (at most three, in increasing order; only while the window is open).
REGISTRY_EPRO_REMINDER_DAYS = [int(d) for d in env.list("REGISTRY_EPRO_REMINDER_DAYS", default=["3", "7"])]
_epro_days = REGISTRY_EPRO_REMINDER_DAYS
if len(_epro_days) > 3 or _epro_days != sorted(set(_epro_days)) or any(d < 1 for d in _epro_days):
    raise ImproperlyConfigured("REGISTRY_EPRO_REMINDER_DAYS must be at most three increasing day "
                               f"counts of 1 or more, not {REGISTRY_EPRO_REMINDER_DAYS}.")
# Questionnaire pages per network address (a person answering needs a few dozen); and
# unknown or dead links one address may try before it is refused for the lockout time.
REGISTRY_EPRO_RATE = env("REGISTRY_EPRO_RATE", default="120/hour")
REGISTRY_EPRO_FAILURES_PER_IP = _positive("REGISTRY_EPRO_FAILURES_PER_IP", 20)
# A folder of the licensed PROM item texts sites hold (never in the repository; see
# registry/services/epro/texts.py); empty: the patient pages show short labels and scales.
REGISTRY_PROM_TEXT_DIR = env("REGISTRY_PROM_TEXT_DIR", default="")
LANGUAGES = [("en", "English"), ("nl", "Nederlands")]
LOCALE_PATHS = [BASE_DIR / "registry" / "locale"]
