"""`make bench`: Remissprio's performance figures at hospital scale, each against a baseline.

Steps: the data (bench/data.py: generated once, reused, copied fresh), static files for the
production storage, the engine on one core (bench/engine.py), the pages in-process on
production settings (bench/web.py), EXPLAIN ANALYZE of the main queries, the FHIR import
(bench/intake.py around bench/intake_throughput.py). Prints one table and writes it to
bench/results/latest.json. Exit status 0 when every target is met.

    .venv/bin/python bench/run.py                  # the full run (make bench)
    .venv/bin/python bench/run.py --referrals 10000 --heavy-versions 1000 --intake-count 500
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import DataSpec, prepare  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORKLIST_FILTERS = {"status": "all", "requested": "mri"}


def log(message: str) -> None:
    print(message, flush=True)


def production_environment(spec: DataSpec) -> dict[str, str]:
    """The environment a production process gets: DEBUG off, a secret key, the database."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "DATABASE_URL": spec.url(spec.database),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


def engine_figure() -> dict:
    # Its own process on one CPU: the figure is one core's.
    cpu = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    output = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "bench" / "engine.py"), str(cpu)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def intake_figure(env: dict[str, str], count: int) -> dict:
    output = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "bench" / "intake.py"), str(count)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    if output.returncode != 0:
        sys.stderr.write(output.stdout + output.stderr)
        raise SystemExit("bench/intake.py failed")
    return json.loads(output.stdout.strip().splitlines()[-1])


def explain(plan: dict) -> dict[str, list[str]]:
    """EXPLAIN ANALYZE of the main queries of the worklist, the timeline and the record."""
    from django.db import connection
    from django.urls import reverse

    from bench.web import Web, queries_of

    web = Web(log)
    plans: dict[str, list[str]] = {}

    def main_queries(client, url, data, wanted: list[str]) -> list[tuple[str, str]]:
        found = []
        for sql in queries_of(lambda: web.get(client, url, data)):
            for label in wanted:
                # PostgreSQL's UNIONs of LIMITed branches start with "(SELECT".
                if label in sql and sql.lstrip(" (").upper().startswith("SELECT"):
                    found.append((label, sql))
                    break
        return found

    worklist = reverse("triage:worklist")
    cases = [
        ("worklist page 1", web.rad, worklist, {**plan["worklist_filters"], "page": "1"}),
        (
            f"worklist page {plan['deep_page']}",
            web.rad,
            worklist,
            {**plan["worklist_filters"], "page": str(plan["deep_page"])},
        ),
        ("timeline page 1 (unfiltered)", web.aud, reverse("audit:timeline"), None),
        (
            "timeline filtered to the heavy referral",
            web.aud,
            reverse("audit:timeline"),
            {"referral": plan["heavy"].order_number},
        ),
        (
            "per-referral record of the heavy referral",
            web.aud,
            reverse("audit:referral", args=[plan["heavy"].pk]),
            None,
        ),
    ]
    for title, client, url, data in cases:
        wanted = ['FROM "triage_referral"'] if "worklist" in title else ["UNION", " OVER "]
        for index, (_label, sql) in enumerate(main_queries(client, url, data, wanted)):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                lines = [row[0] for row in cursor.fetchall()]
            plans[f"{title} — query {index + 1}"] = [sql, *lines]
    return plans


def table(figures: list[dict]) -> str:
    rows = [("figure", "measured", "target", "result")]
    for figure in figures:
        unit = {"throughput": "×", "latency": "×", "absolute": ""}[figure["kind"]]
        sign = "≤" if figure["kind"] == "latency" else "≥"
        measured = figure["measured"]
        shown = f"{measured:,.0f}" if figure["kind"] == "absolute" else f"{measured:.2f}{unit}"
        target = (
            f"{sign} {figure['target']:,.0f}"
            if figure["kind"] == "absolute"
            else f"{sign} {figure['target']}{unit}"
        )
        rows.append((figure["title"], shown, target, "pass" if figure["passed"] else "FAIL"))
        for name, passed in figure.get("extra_checks", []):
            rows.append(("  · " + name, "", "", "pass" if passed else "FAIL"))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432"),
    )
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--heavy-versions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--deep-page", type=int, default=1000)
    parser.add_argument("--intake-count", type=int, default=10_000)
    parser.add_argument("--skip-intake", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()

    spec = DataSpec(
        server=args.server,
        referrals=args.referrals,
        seed=args.seed,
        heavy_versions=args.heavy_versions,
    )
    data = prepare(spec, log)
    env = production_environment(spec)
    os.environ.update(env)
    step = time.monotonic()
    subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        check=True,
    )
    log(f"static files collected ({time.monotonic() - step:.0f} s)")

    log("engine …")
    engine = engine_figure()

    import django

    django.setup()
    from django.conf import settings
    from django.template import engines

    from bench import web

    loaders = engines["django"].engine.loaders
    production = {
        "DEBUG": settings.DEBUG,
        "template_loaders": [str(loader) for loader in loaders],
        "CONN_MAX_AGE": settings.DATABASES["default"]["CONN_MAX_AGE"],
        "staticfiles_storage": settings.STORAGES["staticfiles"]["BACKEND"],
        "database": spec.database,
    }
    assert not settings.DEBUG, "the benchmark needs production settings (DEBUG off)"
    log(f"production settings: {production}")

    plan = web.choose_plan(WORKLIST_FILTERS, args.deep_page, pool_size=40 * 2 * args.rounds + 60)
    from triage.models import Referral

    plan["worklist_total"] = Referral.objects.filter(
        requested=WORKLIST_FILTERS["requested"]
    ).count()
    log(
        f"heavy referral {plan['heavy']} ({plan['heavy_versions']} versions), light "
        f"{plan['light']} ({plan['light_versions']}), pool {len(plan['decision_pool'])}"
    )
    client = web.Web(log)
    figures = web.run_figures(client, plan, args.rounds)
    figures.append(
        web.Figure(
            "engine",
            "engine alone, evaluations/s on one core",
            "absolute",
            100_000,
            measured=engine["evaluations_per_s"],
            detail=engine,
        ).finish()
    )
    plans = explain(plan)

    intake = None
    if not args.skip_intake:
        log(f"import of {args.intake_count} FHIR ServiceRequests …")
        from django.db import connections

        connections.close_all()
        intake = intake_figure(env, args.intake_count)
        figure = web.Figure(
            "intake_memory",
            f"import {args.intake_count:,} FHIR ServiceRequests: peak memory, last vs first "
            f"{intake['window']} messages",
            "latency",
            1.25,
            measured=round(intake["peak_ratio"], 3),
            detail=intake,
        )
        figure.extra_checks.append(
            (
                f"{intake['referrals_per_s']:.0f} referrals/s; peak "
                f"{intake['first_peak_mb']:.1f} MB → {intake['last_peak_mb']:.1f} MB; RSS "
                f"+{intake['rss_growth_mb']:.1f} MB after the first window",
                intake["rss_growth_mb"] <= 20,
            )
        )
        figures.append(figure.finish())

    for title, lines in plans.items():
        log(f"\n=== EXPLAIN ANALYZE: {title}\n{lines[0]}\n" + "\n".join(lines[1:]))

    wall = time.monotonic() - started
    rendered = [
        {
            "key": f.key,
            "title": f.title,
            "kind": f.kind,
            "measured": f.measured,
            "target": f.target,
            "passed": f.passed,
            "extra_checks": f.extra_checks,
            "detail": f.detail,
        }
        for f in figures
    ]
    log("\n" + table(rendered))
    log(f"\nwall time of this run: {wall:.0f} s (data: {data})")
    RESULTS.mkdir(exist_ok=True)
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "data": {**data, "referrals": spec.referrals, "seed": spec.seed},
        "production": production,
        "method": "in-process django.test.Client, single thread; median of per-round ratios",
        "rounds": args.rounds,
        "figures": rendered,
        "explain": plans,
        "plan": {
            "worklist_filters": plan["worklist_filters"],
            "worklist_total": plan["worklist_total"],
            "heavy": str(plan["heavy"]),
            "heavy_versions": plan["heavy_versions"],
            "light": str(plan["light"]),
            "light_versions": plan["light_versions"],
        },
    }
    name = "latest.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    log(f"written to {RESULTS / name}")
    return 0 if all(f.passed for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
