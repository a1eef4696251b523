"""The engine alone: rules.recommend() evaluations per second on one core.

Run as a subprocess pinned to one CPU (bench/run.py does this), so that the figure is one
core's and the parent's work does not share it. No Django, no database: the engine is pure.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from triage import rules  # noqa: E402


def sample_facts(count: int, seed: int = 1) -> list[rules.Facts]:
    """Varied, valid facts covering every branch: flags, imaging, ages, requests."""
    rng = random.Random(seed)  # noqa: S311 - repeatable test input
    today = date(2026, 3, 1)
    facts = []
    for _index in range(count):
        imaging = tuple(
            rules.PriorImaging(
                modality=rng.choice(["ct", "mri", "xray", "scintigraphy"]),
                region=rng.choice(["ländrygg", "buk", "thorax"]),
                date=today - timedelta(days=rng.randint(10, 900)),
                covers_lumbar_spine=rng.random() < 0.6,
            )
            for _ in range(rng.choice([0, 0, 0, 1, 2]))
        )
        facts.append(
            rules.Facts(
                referral_date=today,
                age=rng.randint(8, 95),
                pain_weeks=rng.choice([None, 0.5, 1, 2, 3, 4, 6, 8, 12, 20]),
                red_flags=frozenset(
                    rng.sample(sorted(rules.RED_FLAGS), k=rng.choice([0, 0, 1, 2]))
                ),
                yellow_flags=frozenset(
                    rng.sample(sorted(rules.YELLOW_FLAGS), k=rng.choice([0, 0, 1]))
                ),
                radicular=rng.random() < 0.3,
                treatment_weeks=rng.choice([None, 2, 6, 10]),
                improved=rng.choice([None, True, False]),
                requested=rng.choice(["xray", "mri", "ct", "other"]),
                questions=frozenset({rng.choice(sorted(rules.QUESTIONS))}),
                trauma=rng.random() < 0.05,
                method_change_allowed=rng.random() > 0.1,
                prior_imaging=imaging,
                emergency_signs=frozenset(["cauda_equina"] if rng.random() < 0.02 else []),
                mri_contraindicated=rng.random() < 0.03,
            )
        )
    return facts


def measure(rounds: int = 15, count: int = 20_000) -> dict:
    facts = sample_facts(count)
    params = rules.DEFAULT_PARAMETERS
    for item in facts[:1000]:  # warm up
        rules.recommend(item, params)
    rates = []
    for _round in range(rounds):
        started = time.perf_counter()
        for item in facts:
            rules.recommend(item, params)
        rates.append(count / (time.perf_counter() - started))
    # The best round, as timeit takes the best time: on a shared machine other processes
    # only ever slow a round down, and the figure is what one core can do.
    return {
        "evaluations_per_s": round(max(rates)),
        "median_per_s": round(statistics.median(rates)),
        "rounds": [round(rate) for rate in rates],
        "facts": count,
        "cpu": sorted(os.sched_getaffinity(0)),
    }


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(sys.argv[1]) if len(sys.argv) > 1 else 0})
    print(json.dumps(measure()))
