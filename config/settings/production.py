"""Production: secrets have no default, so a missing one stops the start-up."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = False

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Security (README "Security") -------------------------------------------------
REGISTRY_MFA_REQUIRED_ROLES = env.list("REGISTRY_MFA_REQUIRED_ROLES",
                                       default=["data_manager", "investigator"])
# Behind one proxy (the one that sets X-Forwarded-Proto) unless told otherwise, so that
# the per-address sign-in limit counts clients, not the proxy.
REGISTRY_PROXY_COUNT = env.int("REGISTRY_PROXY_COUNT", default=1)
if REGISTRY_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = REGISTRY_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
# Rate counters shared by every gunicorn worker: Redis (REDIS_URL, default the broker).
REDIS_URL = env("REDIS_URL", default=CELERY_BROKER_URL)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "registry",
    },
}
REGISTRY_DEMO_ALLOWED = False
