"""Settings of the Django peer: SQLite (WAL) at $BENCH_DB, argon2id at Latch's cost, SimpleJWT rotating and blacklisting."""
import os
from datetime import timedelta

SECRET_KEY = os.environ.get("BENCH_SECRET_KEY", "bench-only-secret-not-for-production-0123456789")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "benchsite.apps.BenchsiteConfig",
]
MIDDLEWARE = []
ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BENCH_DB", "django-peer.db"),
        "OPTIONS": {"timeout": 5},  # busy timeout in seconds, as Latch's 5000 ms
        "CONN_MAX_AGE": None,  # one connection per worker, kept, as a deployment would
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

PASSWORD_HASHERS = ["benchsite.hashers.BenchArgon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

SIMPLE_JWT = {
    # One hour, as the runner gives Latch and the Node peer, so tokens outlive a long run.
    "ACCESS_TOKEN_LIFETIME": timedelta(hours=1),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=1),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
}
