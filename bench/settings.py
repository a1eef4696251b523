"""Production settings for the benchmark: config.settings as deployed, plus the bench URLs.

Nothing else differs from production: DEBUG off, the cached template loader, persistent
database connections (CONN_MAX_AGE), whitenoise's manifest storage, every middleware.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

# The production URLs plus the baselines (bench/urls.py); the bench app holds the template
# library the form-render baseline uses (bench/templatetags/plain_forms.py).
ROOT_URLCONF = "bench.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
