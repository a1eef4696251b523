"""The FHIR import figure: bench/intake_throughput.py's run, with throughput and memory.

intake_throughput.main() takes N FHIR ServiceRequests in one by one, each in its own
transaction as the API does (and then N HL7 messages, which this figure skips). Around
it this script counts the referrals per second, and traces memory (tracemalloc) in two
windows of the run, early and late: the peak working memory while taking in one window's
messages must not grow from the first window to the last, and the process must not keep
memory from message to message (RSS after the first window vs at the end). Tracing slows
allocation 2-3×, so the traced windows are left out of the throughput.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Done(Exception):
    pass


def main(count: int) -> dict:
    import django

    django.setup()
    import intake_throughput

    from triage.importers import fhir, hl7

    window = max(10, min(500, count // 10))
    first = (101, 100 + window) if count >= 100 + 3 * window else (1, window)
    last = (count - window + 1, count)
    state = {"n": 0, "rejected": 0, "untraced_s": 0.0, "untraced_n": 0, "windows": []}
    take = fhir.intake_fhir

    def measured(*, sender, raw):
        state["n"] += 1
        n = state["n"]
        if n in (first[0], last[0]):
            tracemalloc.start()
        tracing = tracemalloc.is_tracing()
        started = time.perf_counter()
        result = take(sender=sender, raw=raw)
        if not tracing:
            state["untraced_s"] += time.perf_counter() - started
            state["untraced_n"] += 1
        state["rejected"] += result.rejected
        if n in (first[1], last[1]):
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            state["windows"].append(
                {"messages": [n - window + 1, n], "peak_mb": peak / 1e6, "kept_mb": current / 1e6}
            )
            state["rss_first" if n == first[1] else "rss_last"] = _rss_mb()
        return result

    def stop(**_kwargs):
        raise _Done

    fhir.intake_fhir = measured
    hl7.intake_hl7 = stop
    with contextlib.suppress(_Done):
        intake_throughput.main(count)
    first_window, last_window = state["windows"][0], state["windows"][-1]
    return {
        "messages": state["n"],
        "rejected": state["rejected"],
        "referrals_per_s": (state["untraced_n"] - state["rejected"]) / state["untraced_s"],
        "window": window,
        "first_peak_mb": first_window["peak_mb"],
        "last_peak_mb": last_window["peak_mb"],
        "peak_ratio": last_window["peak_mb"] / first_window["peak_mb"],
        "windows": state["windows"],
        "rss_first_mb": state["rss_first"],
        "rss_last_mb": state["rss_last"],
        "rss_growth_mb": state["rss_last"] - state["rss_first"],
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)))
