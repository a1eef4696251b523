"""The benchmark's database: generated once, kept as a template, copied fresh for each run.

`remissprio_bench_data` holds the output of `generate_load_data` (migrated, vacuumed and
analysed) and a small `bench_meta` table saying with which size, seed and generator it
was made. A run reuses it when those match and otherwise builds it again. Every run then
works on `remissprio_bench`, a file copy of it, so that the rows a run writes (access log,
decisions, sessions) never reach the next run: each run starts from the same state.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "triage" / "management" / "commands" / "generate_load_data.py"


@dataclass(frozen=True)
class DataSpec:
    server: str  # postgres://user@host:port (no database name)
    referrals: int
    seed: int
    heavy_versions: int
    template: str = "remissprio_bench_data"
    database: str = "remissprio_bench"

    def url(self, name: str) -> str:
        return f"{self.server.rstrip('/')}/{name}"

    def meta(self) -> dict[str, str]:
        return {
            "referrals": str(self.referrals),
            "seed": str(self.seed),
            "heavy_versions": str(self.heavy_versions),
            # The generator's source: a changed generator means different data.
            "generator_sha256": hashlib.sha256(GENERATOR.read_bytes()).hexdigest(),
        }


def _admin(spec: DataSpec) -> psycopg.Connection:
    return psycopg.connect(spec.url("postgres"), autocommit=True)


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
    )


def _stored_meta(spec: DataSpec) -> dict[str, str]:
    try:
        with psycopg.connect(spec.url(spec.template)) as conn:
            return dict(conn.execute("SELECT key, value FROM bench_meta").fetchall())
    except psycopg.Error:
        return {}


def manage(spec: DataSpec, database: str, *args: str, env: dict | None = None) -> str:
    """Run manage.py against one of the bench databases; returns its output."""
    environment = {
        **os.environ,
        "DATABASE_URL": spec.url(database),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **(env or {}),
    }
    result = subprocess.run(  # noqa: S603 - our own manage.py with fixed arguments
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode})")
    return result.stdout


def _vacuum_analyze(spec: DataSpec) -> None:
    # Statistics for the planner and a visibility map for index-only scans, as a database
    # that has been in use for a while has them.
    with psycopg.connect(spec.url(spec.template), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def prepare(spec: DataSpec, log) -> dict:
    """Make sure the template exists with this spec; copy it to the working database."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    wanted = spec.meta()
    with _admin(spec) as conn:
        have_template = _exists(conn, spec.template)
    reused = have_template and _stored_meta(spec) == wanted
    if reused:
        log(f"data: reusing {spec.template} ({spec.referrals} referrals, seed {spec.seed})")
        output = manage(spec, spec.template, "migrate", "--noinput")
        if "Applying" in output:
            log("data: new migrations applied to the template; analysing again")
            _vacuum_analyze(spec)
    else:
        log(
            f"data: generating {spec.referrals} referrals (seed {spec.seed}, "
            f"{spec.heavy_versions} versions on the heavy referral) into {spec.template}"
        )
        with _admin(spec) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(spec.template)
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(spec.template)))
        manage(spec, spec.template, "migrate", "--noinput")
        step = time.monotonic()
        output = manage(
            spec,
            spec.template,
            "generate_load_data",
            "--referrals",
            str(spec.referrals),
            "--seed",
            str(spec.seed),
            "--heavy-versions",
            str(spec.heavy_versions),
        )
        timings["generate_s"] = round(time.monotonic() - step, 1)
        log("data: " + " ".join(output.split()[-12:]))
        step = time.monotonic()
        _vacuum_analyze(spec)
        timings["vacuum_analyze_s"] = round(time.monotonic() - step, 1)
        with psycopg.connect(spec.url(spec.template), autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL)")
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO bench_meta (key, value) VALUES (%s, %s)", list(wanted.items())
                )
    step = time.monotonic()
    with _admin(spec) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(spec.database))
        )
        # FILE_COPY copies the files (and the planner statistics and visibility map with
        # them) instead of writing the whole database through the WAL.
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(spec.database), sql.Identifier(spec.template)
            )
        )
    timings["copy_s"] = round(time.monotonic() - step, 1)
    timings["total_s"] = round(time.monotonic() - started, 1)
    return {"reused": reused, **timings}
