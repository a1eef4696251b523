"""Set up Django for the load-test helper scripts (prepare, check), run outside manage.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/remissprio_load"


def setup(database_url: str) -> None:
    """Production settings (DEBUG off) against `database_url`, then django.setup()."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.pop("DEBUG", None)
    # Helper scripts hold one connection each; never keep it across the fault restart.
    os.environ["CONN_MAX_AGE"] = "0"
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    import django

    django.setup()


def split_database_url(database_url: str) -> tuple[str, str]:
    """(URL of the maintenance database `postgres` on the same server, database name)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if parts.scheme not in {"postgres", "postgresql"} or not name:
        raise SystemExit(f"not a PostgreSQL database URL with a database name: {database_url}")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"unsafe database name (letters, digits, _ only): {name}")
    return urlunsplit(parts._replace(path="/postgres")), name
