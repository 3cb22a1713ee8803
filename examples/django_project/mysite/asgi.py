"""ASGI entry point of the example Django project.

Run from the repository root:
    gunicorn -k asgi_worker.Worker --chdir examples/django_project mysite.asgi:application

Django does not implement the ASGI lifespan protocol; the worker's default ``lifespan=auto``
notices that at start-up, logs it once and serves without lifespan.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_asgi_application()
