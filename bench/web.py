"""The page figures, measured in-process with django.test.Client on production settings.

Why in-process rather than gunicorn + an HTTP load generator: on a 2-core machine a load
generator and the server compete for the same cores, and HTTP parsing, sockets and the
generator's own cost are a constant added to every request, which flatters every ratio
(a slow page looks closer to "hello"). The test client runs the full WSGI handler with
every middleware, session and database round trip, but nothing else; its own overhead is
the same few tens of microseconds for subject and baseline. Single-threaded, so
throughput is 1/latency; a ratio of throughputs is the inverse ratio of latencies.

Every figure is a ratio against a baseline timed in the same run: per round, a batch of
subject requests and a batch of baseline requests (order alternating between rounds),
each batch long enough to dwarf the timer; the figure is the median of the rounds' ratios.
"""

from __future__ import annotations

import gc
import html
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from triage import rules
from triage.models import Assessment, Referral, Reply
from triage.permissions import Role
from triage.selectors import AssessmentInput, facts_from_signed_context, recommendation_fingerprint

BATCH_SECONDS = 0.25  # the length of one timed batch


@dataclass
class Figure:
    key: str
    title: str
    kind: str  # "throughput" (≥ target) or "latency" (≤ target) or "absolute"
    target: float
    measured: float | None = None
    passed: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    extra_checks: list[tuple[str, bool]] = field(default_factory=list)

    def finish(self) -> Figure:
        ok = (
            self.measured >= self.target
            if self.kind in ("throughput", "absolute")
            else self.measured <= self.target
        )
        self.passed = ok and all(passed for _name, passed in self.extra_checks)
        return self


def _batch(fn: Callable[[], Any], n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def _calibrate(fn: Callable[[], Any]) -> int:
    one = min(_batch(fn, 1) for _ in range(3))
    return max(1, min(400, int(BATCH_SECONDS / max(one, 1e-6))))


def compare(
    subject: Callable[[], Any], baseline: Callable[[], Any], *, rounds: int
) -> dict[str, Any]:
    """Median per-request latency of each and the median of the per-round ratios."""
    n_subject, n_baseline = _calibrate(subject), _calibrate(baseline)
    ratios, subject_times, baseline_times = [], [], []
    for index in range(rounds):
        if index % 2 == 0:
            s, b = _batch(subject, n_subject), _batch(baseline, n_baseline)
        else:
            b, s = _batch(baseline, n_baseline), _batch(subject, n_subject)
        subject_times.append(s)
        baseline_times.append(b)
        ratios.append(s / b)
    return {
        "latency_ratio": statistics.median(ratios),
        "subject_ms": round(statistics.median(subject_times) * 1000, 2),
        "baseline_ms": round(statistics.median(baseline_times) * 1000, 2),
        "requests_per_batch": [n_subject, n_baseline],
        "round_ratios": [round(ratio, 3) for ratio in ratios],
    }


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def queries_of(fn: Callable[[], Any]) -> list[str]:
    """The SQL statements of one call, without transaction control (BEGIN, COMMIT,
    savepoints): counted as the test suite counts them (tests/test_query_budgets.py),
    where every test runs inside a transaction and autocommit's BEGIN/COMMIT do not occur."""
    with CaptureQueriesContext(connection) as captured:
        fn()
    return [
        query["sql"]
        for query in captured.captured_queries
        if not query["sql"].lstrip().upper().startswith(_CONTROL)
    ]


_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


class Web:
    """The logged-in clients and the rows the figures use."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.radiologist = self._user("bench-radiolog", Role.RADIOLOGIST)
        self.auditor = self._user("bench-revisor", Role.AUDITOR)
        self.rad = self._client(self.radiologist)
        self.aud = self._client(self.auditor)

    @staticmethod
    def _user(name: str, role: str) -> User:
        user, _made = User.objects.get_or_create(username=name, defaults={"first_name": name})
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name=role))
        return user

    @staticmethod
    def _client(user: User) -> Client:
        # As behind the hospital's TLS proxy: HTTPS, so no redirect and secure cookies.
        client = Client(HTTP_X_FORWARDED_PROTO="https", **{"wsgi.url_scheme": "https"})
        client.force_login(user)
        return client

    def get(self, client: Client, url: str, data: dict | None = None, status: int = 200):
        response = client.get(url, data or {})
        if response.status_code != status:
            raise RuntimeError(f"GET {url} {data}: {response.status_code}, expected {status}")
        return response

    def post(self, client: Client, url: str, data: dict, status: int = 200):
        # Form-encoded, as the browser and htmx send it (the test client's default,
        # multipart, costs more to parse than anything a radiologist's browser sends).
        response = client.post(
            url, urlencode(data, doseq=True), content_type="application/x-www-form-urlencoded"
        )
        if response.status_code != status:
            raise RuntimeError(f"POST {url}: {response.status_code}, expected {status}")
        return response

    def open_for_triage(self, referral: Referral) -> dict[str, str]:
        """GET the triage page, as the radiologist does before deciding; its hidden fields."""
        page = self.get(self.rad, reverse("triage:referral", args=[referral.pk]))
        return hidden_fields(page.content.decode())


# --- the figures ----------------------------------------------------------------------------

DECISION_FACTS = {
    "pain_weeks": "6",
    "red_flags": ["night_pain"],
    "questions": ["other"],
}


def _decision_post(web: Web, referral: Referral) -> tuple[str, dict]:
    """The POST a radiologist's "Godkänn förslaget" sends for this referral (opened now)."""
    hidden = web.open_for_triage(referral)
    entered = AssessmentInput(
        pain_weeks=Decimal(DECISION_FACTS["pain_weeks"]),
        flag_codes=frozenset(DECISION_FACTS["red_flags"]),
        questions=frozenset(DECISION_FACTS["questions"]),
    )
    facts, params = facts_from_signed_context(hidden["context"], entered, referral_id=referral.pk)
    shown = recommendation_fingerprint(rules.recommend(facts, params))
    data = {**hidden, **DECISION_FACTS, "shown": shown, "accept": "1"}
    return reverse("triage:referral", args=[referral.pk]), data


def _tracked_tables() -> set[str]:
    """Tables whose rows have history: tracked models and the link tables of their
    tracked many-to-many fields (a decision's flags)."""
    from django.apps import apps

    tables = set()
    for model in apps.get_models():
        if hasattr(model, "history") and not model.__name__.startswith("Historical"):
            tables.add(model._meta.db_table)
            for field in getattr(model.history.model, "_history_m2m_fields", []):
                tables.add(field.remote_field.through._meta.db_table)
    return tables


def _classify(queries: list[str]) -> dict[str, int]:
    tracked = _tracked_tables()
    saves = 0
    history = 0
    history_writes = 0
    for sql in queries:
        head = sql.lstrip().split(" ", 3)
        verb = head[0].upper()
        if "triage_historical" in sql:
            history += 1
            history_writes += verb == "INSERT"
        elif verb in ("INSERT", "UPDATE") and any(f'"{table}"' in sql[:200] for table in tracked):
            saves += 1
    return {
        "queries": len(queries),
        "tracked_saves": saves,
        "history_queries": history,
        "history_writes": history_writes,
    }


def run_figures(web: Web, plan: dict, rounds: int) -> list[Figure]:
    log = web.log
    figures: list[Figure] = []
    hello = reverse("bench_hello")
    worklist = reverse("triage:worklist")
    worklist_trivial = reverse("bench_worklist_queries")
    filters = plan["worklist_filters"]

    def page(number: int) -> dict:
        return {**filters, "page": str(number)}

    def w_get(client, url, data=None):
        return lambda: web.get(client, url, data)

    # Warm every path once (template compilation, caches, first JSON query of a connection).
    for client, url, data in (
        (web.rad, hello, None),
        (web.rad, worklist, page(1)),
        (web.rad, worklist_trivial, page(1)),
        (web.rad, worklist, page(plan["deep_page"])),
        (web.aud, reverse("audit:timeline"), None),
    ):
        web.get(client, url, data)

    # 1-3: the worklist ------------------------------------------------------------------
    counts = {
        "worklist": len(queries_of(w_get(web.rad, worklist, page(1)))),
        "worklist_trivial": len(queries_of(w_get(web.rad, worklist_trivial, page(1)))),
        "worklist_deep": len(queries_of(w_get(web.rad, worklist, page(plan["deep_page"])))),
        "hello": len(queries_of(w_get(web.rad, hello))),
    }
    log(f"worklist: filters {filters}, {plan['worklist_total']} rows, queries {counts}")
    result = compare(
        w_get(web.rad, worklist, page(1)), w_get(web.rad, worklist_trivial, page(1)), rounds=rounds
    )
    figures.append(
        Figure(
            "worklist_vs_trivial",
            "worklist (25 of 100,000, filtered) vs same queries, trivial response",
            "throughput",
            0.5,
            measured=round(1 / result["latency_ratio"], 3),
            detail={**result, "queries": [counts["worklist"], counts["worklist_trivial"]]},
        ).finish()
    )
    log(f"  {figures[-1].key}: {figures[-1].measured}")
    result = compare(w_get(web.rad, worklist, page(1)), w_get(web.rad, hello), rounds=rounds)
    figures.append(
        Figure(
            "worklist_vs_hello",
            "worklist vs logged-in hello",
            "throughput",
            0.15,
            measured=round(1 / result["latency_ratio"], 3),
            detail={**result, "queries": [counts["worklist"], counts["hello"]]},
        ).finish()
    )
    log(f"  {figures[-1].key}: {figures[-1].measured}")
    result = compare(
        w_get(web.rad, worklist, page(plan["deep_page"])),
        w_get(web.rad, worklist, page(1)),
        rounds=rounds,
    )
    figures.append(
        Figure(
            "worklist_deep_page",
            f"worklist page {plan['deep_page']:,} vs page 1",
            "latency",
            1.5,
            measured=round(result["latency_ratio"], 3),
            detail={**result, "queries": [counts["worklist_deep"], counts["worklist"]]},
        ).finish()
    )
    log(f"  {figures[-1].key}: {figures[-1].measured}")

    # 4: the decision POST with and without history ------------------------------------------
    figures.append(_decision_figure(web, plan, rounds))
    log(f"  {figures[-1].key}: {figures[-1].measured} {figures[-1].detail.get('queries')}")

    # 5: the auditor's pages at 10,000 versions vs 10 -------------------------------------------
    heavy, light = plan["heavy"], plan["light"]
    for key, title, url_of, data_of in (
        (
            "timeline_versions",
            "auditor timeline (filtered to the referral)",
            lambda r: reverse("audit:timeline"),
            lambda r: {"referral": r.order_number},
        ),
        (
            "record_versions",
            "per-referral record",
            lambda r: reverse("audit:referral", args=[r.pk]),
            lambda r: None,
        ),
    ):
        subject = w_get(web.aud, url_of(heavy), data_of(heavy))
        baseline = w_get(web.aud, url_of(light), data_of(light))
        subject()
        baseline()
        q_heavy, q_light = len(queries_of(subject)), len(queries_of(baseline))
        result = compare(subject, baseline, rounds=max(3, rounds - 2))
        figure = Figure(
            key,
            f"{title}: {plan['heavy_versions']:,} vs {plan['light_versions']} versions",
            "latency",
            1.5,
            measured=round(result["latency_ratio"], 3),
            detail={**result, "queries": [q_heavy, q_light]},
        )
        figure.extra_checks.append(
            (f"same query count ≤ 8 ({q_heavy} vs {q_light})", q_heavy == q_light <= 8)
        )
        figures.append(figure.finish())
        log(f"  {key}: {figure.measured} queries {q_heavy}/{q_light}")

    # 6: the recommendation endpoint ----------------------------------------------------------
    hidden = web.open_for_triage(plan["triage_referral"])
    recommend_url = reverse("triage:recommendation", args=[plan["triage_referral"].pk])
    recommend_data = {**hidden, **DECISION_FACTS}

    def recommend():
        return web.post(web.rad, recommend_url, recommend_data)

    recommend()
    q_recommend = len(queries_of(recommend))
    result = compare(recommend, w_get(web.rad, hello), rounds=rounds)
    figures.append(
        Figure(
            "recommendation_vs_hello",
            "recommendation endpoint vs logged-in hello",
            "throughput",
            0.5,
            measured=round(1 / result["latency_ratio"], 3),
            detail={**result, "queries": [q_recommend, counts["hello"]]},
        ).finish()
    )
    log(f"  {figures[-1].key}: {figures[-1].measured}")

    # 7: the triage page vs the same page, its forms rendered plainly ------------------
    triage_url = reverse("triage:referral", args=[plan["triage_referral"].pk])
    plain_url = reverse("bench_triage_plain", args=[plan["triage_referral"].pk])
    web.get(web.rad, plain_url)
    q_page = len(queries_of(w_get(web.rad, triage_url)))
    q_plain = len(queries_of(w_get(web.rad, plain_url)))
    result = compare(w_get(web.rad, triage_url), w_get(web.rad, plain_url), rounds=rounds)
    figure = Figure(
        "triage_form_render",
        "triage page (crispy forms) vs the same page with plain {{ form }}",
        "latency",
        1.5,
        measured=round(result["latency_ratio"], 3),
        detail={**result, "queries": [q_page, q_plain]},
    )
    figure.extra_checks.append((f"same queries ({q_page} vs {q_plain})", q_page == q_plain))
    figures.append(figure.finish())
    log(f"  {figures[-1].key}: {figures[-1].measured}")
    return figures


def _decision_figure(web: Web, plan: dict, rounds: int) -> Figure:
    pool: list[Referral] = list(plan["decision_pool"])

    def prepared(count: int) -> list[tuple[str, dict]]:
        return [_decision_post(web, pool.pop()) for _ in range(count)]

    def post_all(posts: list[tuple[str, dict]]) -> float:
        gc.collect()
        started = time.perf_counter()
        for url, data in posts:
            web.post(web.rad, url, data, status=302)
        return (time.perf_counter() - started) / len(posts)

    # Warm both paths, then count one decision each way.
    settings.SIMPLE_HISTORY_ENABLED = True
    post_all(prepared(2))
    settings.SIMPLE_HISTORY_ENABLED = False
    post_all(prepared(2))
    counts, statements = {}, {}
    for enabled in (True, False):
        ((url, data),) = prepared(1)
        settings.SIMPLE_HISTORY_ENABLED = enabled
        sql = queries_of(lambda url=url, data=data: web.post(web.rad, url, data, status=302))
        counts["on" if enabled else "off"] = _classify(sql)
        statements["on" if enabled else "off"] = [statement[:160] for statement in sql]
    settings.SIMPLE_HISTORY_ENABLED = True
    per_batch = max(4, min(40, (len(pool) - 4) // (2 * rounds)))
    ratios, on_times, off_times = [], [], []
    for index in range(rounds):
        on_posts, off_posts = prepared(per_batch), prepared(per_batch)
        order = (True, False) if index % 2 == 0 else (False, True)
        times = {}
        for enabled in order:
            settings.SIMPLE_HISTORY_ENABLED = enabled
            times[enabled] = post_all(on_posts if enabled else off_posts)
        settings.SIMPLE_HISTORY_ENABLED = True
        on_times.append(times[True])
        off_times.append(times[False])
        ratios.append(times[True] / times[False])
    on, off = counts["on"], counts["off"]
    delta = on["queries"] - off["queries"]
    saved = off["tracked_saves"]
    figure = Figure(
        "decision_history",
        "triage POST (decision) with history vs SIMPLE_HISTORY_ENABLED=False",
        "latency",
        1.3,
        measured=round(statistics.median(ratios), 3),
        detail={
            "latency_ratio": statistics.median(ratios),
            "subject_ms": round(statistics.median(on_times) * 1000, 2),
            "baseline_ms": round(statistics.median(off_times) * 1000, 2),
            "requests_per_batch": [per_batch, per_batch],
            "round_ratios": [round(ratio, 3) for ratio in ratios],
            "queries": [on["queries"], off["queries"]],
            "history_on": on,
            "history_off": off,
            "extra_queries": delta,
            "statements": statements,
            "tracked_objects_saved": saved,
        },
    )
    # One history INSERT per tracked object saved (the decision, its flag links, the
    # referral). simple-history also reads the flag links back before copying them (its
    # m2m design), which is reported as the difference rather than hidden.
    figure.extra_checks.append(
        (
            f"+{delta} queries for {saved} tracked objects saved: {on['history_writes']} "
            f"history inserts, {delta - on['history_writes']} read of the flag links by "
            f"simple-history; history queries with history off: {off['history_queries']}",
            on["history_writes"] == saved and off["history_queries"] == 0,
        )
    )
    return figure.finish()


def choose_plan(filters: dict, deep_page: int, pool_size: int) -> dict:
    """The rows the figures use, found in the generated data."""
    reply = (
        Reply.objects.filter(referral__source="load-ris")
        .select_related("referral")
        .order_by("pk")
        .first()
    )
    heavy = reply.referral

    def versions(referral: Referral) -> int:
        return (
            Referral.history.filter(id=referral.pk).count()
            + Assessment.history.filter(referral_id=referral.pk).count()
            + Reply.history.filter(referral_id=referral.pk).count()
        )

    # A referral like the heavy one (decided, with a reply) whose whole history is ~10 rows.
    light = None
    for candidate in (
        Reply.objects.filter(referral__source="load-ris")
        .exclude(referral=heavy)
        .select_related("referral")
        .order_by("pk")[:200]
    ):
        if versions(candidate.referral) == 10:
            light = candidate.referral
            break
    waiting = list(
        Referral.objects.filter(source="load-ris", status=Referral.Status.NEW)
        .select_related("patient")
        .order_by("-received_at")[: pool_size + 1]
    )
    # A patient of 18 or more: a child gets a derived flag that changes the suggestion.
    triage_referral = next(r for r in waiting if r.patient_age() >= 18)
    waiting.remove(triage_referral)
    return {
        "worklist_filters": filters,
        "deep_page": deep_page,
        "heavy": heavy,
        "heavy_versions": versions(heavy),
        "light": light,
        "light_versions": versions(light) if light else None,
        "triage_referral": triage_referral,
        "decision_pool": [r for r in waiting if r.patient_age() >= 18],
    }
