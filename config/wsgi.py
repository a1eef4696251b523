"""WSGI entry point for gunicorn."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Refuse to serve without a secret key (Django raises ImproperlyConfigured on an empty one).
settings.SECRET_KEY  # noqa: B018
application = get_wsgi_application()
