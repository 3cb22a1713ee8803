"""Settings for the example project, read from the environment so nothing is hard-coded.

``DJANGO_SECRET_KEY``      required in production; a development key is used when unset and
                           ``DJANGO_DEBUG`` is on.
``DJANGO_DEBUG``           ``1``/``0`` (default ``0``).
``DJANGO_ALLOWED_HOSTS``   comma-separated host names (default ``localhost,127.0.0.1``).

No database is configured: the views do not need one, so the project starts anywhere.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

DEBUG = os.environ.get("DJANGO_DEBUG", "0").lower() in ("1", "true", "on", "yes")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for development)")
    SECRET_KEY = "development-only-not-secret"
ALLOWED_HOSTS = [host.strip() for host in
                 os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
                 if host.strip()]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
DATABASES: dict[str, dict[str, str]] = {}
TEMPLATES: list[dict[str, object]] = []
USE_TZ = True
TIME_ZONE = "UTC"
# Behind a TLS-terminating proxy, Gunicorn's secure_scheme_headers already sets the ASGI scheme;
# Django reads it from the scope, so no SECURE_PROXY_SSL_HEADER is needed.
