"""The load and fault runs of loadtest/ at a small size, so that they cannot rot.

They start `make serve` (gunicorn, production settings) on a fresh PostgreSQL database and,
in the fault run, restart the PostgreSQL cluster: that drops every connection to it, so run
them in their own pytest invocation, as CI does:

    RUN_LOADTEST=1 .venv/bin/python -m pytest tests/test_loadtest.py -rP

Skipped unless RUN_LOADTEST=1 is set and PostgreSQL answers on LOADTEST_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/remissprio_loadtest_ci, dropped and recreated).
Results: test-artifacts/loadtest/<run>/ (results.json, samples.json, acks.json, server.log).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "LOADTEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/remissprio_loadtest_ci"
)
RESULTS = PROJECT_DIR / "test-artifacts" / "loadtest"


def _postgres_reachable() -> bool:
    parts = urlsplit(DATABASE_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5432), timeout=2):
            return True
    except OSError:
        return False


if os.environ.get("RUN_LOADTEST") != "1":
    pytest.skip(
        "load and fault runs are off: set RUN_LOADTEST=1 (CI does) to run them",
        allow_module_level=True,
    )
if not _postgres_reachable():
    pytest.skip(
        f"load and fault runs need PostgreSQL at {urlsplit(DATABASE_URL).netloc}",
        allow_module_level=True,
    )


def _run(*options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(PROJECT_DIR / "loadtest" / "run.py"), *options]
    command += [f"--database-url={DATABASE_URL}", f"--results={RESULTS}"]
    done = subprocess.run(
        command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=170, check=False
    )
    print(done.stdout)
    print(done.stderr[-3000:], file=sys.stderr)
    return done


def test_load_run_loses_nothing():
    done = _run("--users=3", "--duration=5")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "result: PASS" in done.stdout


def test_fault_run_recovers_and_loses_nothing():
    try:
        done = _run("--users=3", "--duration=8", "--fault", "--fault-at=2")
    finally:
        # The restart dropped every PostgreSQL connection; should this run share a session
        # with database tests, let Django open fresh ones rather than reuse dead ones.
        from django.db import connections

        connections.close_all()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "result: PASS" in done.stdout
