"""Production settings for the benchmark: config.settings as deployed, plus the bench URLs.

Nothing else differs from production: DEBUG off, the cached template loader, persistent
database connections (CONN_MAX_AGE), whitenoise's manifest storage, every middleware.
"""

from config.settings import *  # noqa: F403
from config.settings import BASE_DIR, TEMPLATES

# The production URLs plus the baselines (bench/urls.py); the bench templates are found
# next to them.
ROOT_URLCONF = "bench.urls"
TEMPLATES[0]["DIRS"] = [*TEMPLATES[0]["DIRS"], BASE_DIR / "bench" / "templates"]
