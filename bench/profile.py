"""Profiles of the pages whose figure misses its target, on the benchmark's database.

Run after `make bench` (it reuses `remissprio_bench`, the copy the last run worked on):

    .venv/bin/python bench/profile.py [--requests 200]

Each page is requested in-process under production settings, as in the benchmark, with
pyinstrument sampling; the text profiles go to `bench/results/profile-<page>.txt`, and a
one-line summary per page (where the time goes, in % of the request) is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import DataSpec  # noqa: E402
from bench.run import RESULTS, WORKLIST_FILTERS, production_environment  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--server",
        default=os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432"),
    )
    args = parser.parse_args()
    spec = DataSpec(server=args.server, referrals=100_000, seed=1, heavy_versions=10_000)
    os.environ.update(production_environment(spec))

    import django

    django.setup()
    import pyinstrument
    from django.urls import reverse

    from bench import web

    site = web.Web(print)
    plan = web.choose_plan(WORKLIST_FILTERS, 1000, pool_size=10)
    referral = plan["triage_referral"]
    page_url = reverse("triage:referral", args=[referral.pk])
    hidden = site.open_for_triage(referral)
    recommend_url = reverse("triage:recommendation", args=[referral.pk])
    recommend_data = {**hidden, **web.DECISION_FACTS}
    requests = {
        "worklist": lambda: site.get(site.rad, reverse("triage:worklist"), WORKLIST_FILTERS),
        "hello": lambda: site.get(site.rad, reverse("bench_hello")),
        "triage_page": lambda: site.get(site.rad, page_url),
        "recommendation": lambda: site.post(site.rad, recommend_url, recommend_data),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, request in requests.items():
        for _warm in range(5):
            request()
        profiler = pyinstrument.Profiler(interval=0.0005)
        profiler.start()
        for _index in range(args.requests):
            request()
        profiler.stop()
        text = profiler.output_text(unicode=False, show_all=False)
        (RESULTS / f"profile-{name}.txt").write_text(text)
        session = profiler.last_session
        per_request = session.duration / args.requests * 1000
        print(f"{name}: {per_request:.2f} ms per request → bench/results/profile-{name}.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
