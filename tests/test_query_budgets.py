"""Query budgets: every page and endpoint of the radiologist and the auditor costs the same
number of queries with little data and with much (1 vs 50 rows, 10 vs 500 history
versions), and no more than its budget.

Each test warms the path up first (the first JSONField query on a SQLite connection asks
the database for its features), counts one request at the small size, grows the data and
counts the same request again. A budget here is the count today: a change that adds a
query fails until the budget is raised on purpose, and a change that makes a query per row
fails however the budget is set. bench/run.py measures what these counts cost at 100,000
referrals.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_patient, make_referral
from triage import rules, services
from triage.models import AccessLog, Referral, ReplyTemplate
from triage.personnummer import TEST_PERSONNUMMER
from triage.selectors import AssessmentInput, facts_from_signed_context, recommendation_fingerprint

pytestmark = pytest.mark.django_db

SMALL, LARGE = 1, 50
FEW_VERSIONS, MANY_VERSIONS = 10, 500

# Queries of one request, as counted by CaptureQueriesContext inside the test transaction
# (every request also reads its session, its user and the user's roles: three of these).
BUDGETS = {
    "worklist": 6,
    "triage_page": 9,
    "triage_post": 17,
    "recommendation": 3,
    "reply_page": 8,
    "print_view": 6,
    "timeline": 7,
    "record": 8,
    "access_log": 5,
    "patient_extract": 7,
    "csv_first_chunk": 7,
}


def _count(request) -> int:
    with CaptureQueriesContext(connection) as captured:
        request()
    return len(captured.captured_queries)


def _assert_flat(name: str, small: int, large: int) -> None:
    assert small == large, f"{name}: {small} queries with little data, {large} with much"
    assert large <= BUDGETS[name], f"{name}: {large} queries, budget {BUDGETS[name]}"


def _ok(response, status: int = 200):
    assert response.status_code == status, (response.status_code, response.content[:300])
    return response


# --- Builders --------------------------------------------------------------------------------


def _patient(index: int):
    return make_patient(TEST_PERSONNUMMER[index % 60], f"Patient {index}")


def _referrals(count: int, *, start: int = 0) -> list[Referral]:
    return [
        make_referral(patient=_patient(index), order_number=f"Q-{index}")
        for index in range(start, start + count)
    ]


def _imaging(referral: Referral, count: int, user, *, start: int = 0) -> None:
    for day in range(start, start + count):
        services.prior_imaging_add(
            patient=referral.patient,
            modality="ct",
            region="buk",
            performed_on=referral.written_on - timedelta(days=400 + day),
            covers_lumbar_spine=True,
            user=user,
            reason="Test",
        )


FACTS = {"pain_weeks": "6", "red_flags": ["night_pain"], "questions": ["other"]}


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))


def _decision_post(client, referral: Referral) -> tuple[str, dict]:
    """The POST of "Godkänn förslaget" for these facts, as the browser sends it."""
    url = reverse("triage:referral", args=[referral.pk])
    hidden = _hidden(_ok(client.get(url)).content.decode())
    entered = AssessmentInput(
        pain_weeks=Decimal("6"),
        flag_codes=frozenset({"night_pain"}),
        questions=frozenset({"other"}),
    )
    facts, params = facts_from_signed_context(hidden["context"], entered, referral_id=referral.pk)
    shown = recommendation_fingerprint(rules.recommend(facts, params))
    return url, {**hidden, **FACTS, "shown": shown, "accept": "1"}


def _decide(referral: Referral, user) -> None:
    services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(
            pain_weeks=Decimal("6"),
            flag_codes=frozenset({"night_pain"}),
            questions=frozenset({"other"}),
        ),
        action="mri",
        priority_weeks=6,
        user=user,
    )


def _story(user) -> Referral:
    """A decided referral with a reply: every kind of row the auditor's pages show."""
    referral = make_referral(order_number="STORY", user=user)
    _decide(referral, user)
    template = ReplyTemplate.objects.filter(is_active=True).first()
    services.reply_save(referral=referral, text="Välkommen på MR.", template=template, user=user)
    return referral


def _versions(referral: Referral, count: int, user, *, first: int = 0) -> None:
    """Many older history rows of the referral at once (cheaper than saving it `count`
    times; the rows are the same as the services write)."""
    history = Referral.history.model
    start = timezone.now() - timedelta(days=400)
    history.objects.filter(id=referral.pk, history_type="+").update(
        history_date=start - timedelta(days=1)
    )
    fields = {f.attname: getattr(referral, f.attname) for f in Referral._meta.concrete_fields}
    history.objects.bulk_create(
        [
            history(
                **{**fields, "anamnesis": f"Version {index}"},
                history_date=start + timedelta(minutes=index),
                history_type="~",
                history_user=user,
                history_change_reason="Massimport",
            )
            for index in range(first, first + count)
        ]
    )


def _log_rows(count: int, user, *, start: int = 0) -> None:
    for index in range(start, start + count):
        referral = make_referral(patient=_patient(index), order_number=f"L-{index}")
        services.access_log_write(
            user=user,
            action=AccessLog.Action.READ,
            view="test",
            patient_referrals=[(referral.patient_id, referral.pk)],
        )


# --- The radiologist ---------------------------------------------------------------------------


def test_worklist(client, radiologist):
    _referrals(SMALL)
    client.force_login(radiologist)
    url = reverse("triage:worklist")
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    _referrals(LARGE - SMALL, start=SMALL)
    large = _count(lambda: _ok(client.get(url)))
    assert len(client.get(url).context["page"].rows) == 25
    _assert_flat("worklist", small, large)


def test_triage_page(client, radiologist):
    referral = make_referral()
    _imaging(referral, SMALL, radiologist)
    services.referral_open(referral=referral, user=radiologist)
    client.force_login(radiologist)
    url = reverse("triage:referral", args=[referral.pk])
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    _imaging(referral, LARGE - SMALL, radiologist, start=SMALL)
    _referrals(LARGE)
    large = _count(lambda: _ok(client.get(url)))
    _assert_flat("triage_page", small, large)


def test_triage_post(client, radiologist):
    patient = make_patient()
    first, second, third = (
        make_referral(patient=patient, order_number=f"P-{index}") for index in range(3)
    )
    _imaging(first, SMALL, radiologist)
    client.force_login(radiologist)
    url, data = _decision_post(client, first)
    _ok(client.post(url, data), 302)
    url, data = _decision_post(client, second)
    small = _count(lambda: _ok(client.post(url, data), 302))
    _imaging(first, LARGE - SMALL, radiologist, start=SMALL)
    _referrals(LARGE)
    url, data = _decision_post(client, third)
    large = _count(lambda: _ok(client.post(url, data), 302))
    _assert_flat("triage_post", small, large)


def test_recommendation_endpoint(client, radiologist):
    referral = make_referral()
    _imaging(referral, SMALL, radiologist)
    client.force_login(radiologist)
    hidden = _hidden(
        _ok(client.get(reverse("triage:referral", args=[referral.pk]))).content.decode()
    )
    url = reverse("triage:recommendation", args=[referral.pk])
    data = {**hidden, **FACTS}
    _ok(client.post(url, data))
    small = _count(lambda: _ok(client.post(url, data)))
    _imaging(referral, LARGE - SMALL, radiologist, start=SMALL)
    _referrals(LARGE)
    large = _count(lambda: _ok(client.post(url, data)))
    _assert_flat("recommendation", small, large)


def _drafts(referral: Referral, count: int, user, reply=None):
    template = ReplyTemplate.objects.filter(is_active=True).first()
    for index in range(count):
        reply = services.reply_save(
            referral=referral,
            assessment=referral.assessments.first(),
            text=f"Utkast {index}",
            template=template,
            user=user,
            reply=reply,
        )
    return reply


def test_reply_page(client, radiologist):
    referral = make_referral()
    _decide(referral, radiologist)
    reply = _drafts(referral, SMALL, radiologist)
    client.force_login(radiologist)
    url = reverse("triage:reply", args=[referral.pk])
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    _drafts(referral, LARGE - SMALL, radiologist, reply)
    _referrals(LARGE)
    large = _count(lambda: _ok(client.get(url)))
    _assert_flat("reply_page", small, large)


def test_print_view(client, radiologist):
    referral = make_referral()
    _decide(referral, radiologist)
    reply = _drafts(referral, SMALL, radiologist)
    client.force_login(radiologist)
    url = reverse("triage:reply_print", args=[referral.pk, reply.pk])
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    _drafts(referral, LARGE - SMALL, radiologist, reply)
    _referrals(LARGE)
    large = _count(lambda: _ok(client.get(url)))
    _assert_flat("print_view", small, large)


# --- The auditor -------------------------------------------------------------------------------


def test_timeline(client, auditor, radiologist):
    referral = _story(radiologist)
    _versions(referral, FEW_VERSIONS, radiologist)
    client.force_login(auditor)
    url = reverse("audit:timeline")
    filtered = {"referral": referral.order_number}
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    small_filtered = _count(lambda: _ok(client.get(url, filtered)))
    _versions(referral, MANY_VERSIONS - FEW_VERSIONS, radiologist, first=FEW_VERSIONS)
    large = _count(lambda: _ok(client.get(url)))
    large_filtered = _count(lambda: _ok(client.get(url, filtered)))
    _assert_flat("timeline", small, large)
    _assert_flat("timeline", small_filtered, large_filtered)


def test_referral_record(client, auditor, radiologist):
    referral = _story(radiologist)
    _versions(referral, FEW_VERSIONS, radiologist)
    client.force_login(auditor)
    url = reverse("audit:referral", args=[referral.pk])
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    _versions(referral, MANY_VERSIONS - FEW_VERSIONS, radiologist, first=FEW_VERSIONS)
    large = _count(lambda: _ok(client.get(url)))
    record = client.get(url).context["record"]
    assert record.hidden_versions["referral"] + len(record.referral_versions) > MANY_VERSIONS
    _assert_flat("record", small, large)


def test_access_log(client, auditor, radiologist):
    _log_rows(SMALL, radiologist)
    client.force_login(auditor)
    url = reverse("audit:access_log")
    _ok(client.get(url))
    small = _count(lambda: _ok(client.get(url)))
    _log_rows(LARGE - SMALL, radiologist, start=SMALL)
    large = _count(lambda: _ok(client.get(url)))
    _assert_flat("access_log", small, large)


def test_patient_extract(client, auditor, radiologist):
    referral = make_referral()

    def read(count: int) -> None:
        for _index in range(count):
            services.access_log_write(
                user=radiologist,
                action=AccessLog.Action.READ,
                view="test",
                patient_referrals=[(referral.patient_id, referral.pk)],
            )

    read(SMALL)
    client.force_login(auditor)
    url = reverse("audit:patient_extract")
    query = {"personnummer": referral.patient.personal_number}
    _ok(client.get(url, query))
    small = _count(lambda: _ok(client.get(url, query)))
    read(LARGE - SMALL)
    large = _count(lambda: _ok(client.get(url, query)))
    _assert_flat("patient_extract", small, large)


def _first_chunk_queries(client, url: str) -> int:
    """Queries until the CSV's first chunk of rows has been streamed (the header, one chunk
    of the timeline, its access-log write, its lines), not counting the next chunk's."""
    with CaptureQueriesContext(connection) as captured:
        response = _ok(client.get(url))
        lines = iter(response.streaming_content)
        next(lines)  # the header
        next(lines)  # the first line: the first chunk has been read and logged
        counted = len(captured.captured_queries)
        for _line in lines:
            if len(captured.captured_queries) != counted:
                break  # the next chunk is being read
    return counted


def test_csv_export_first_chunk(client, auditor, radiologist):
    referral = _story(radiologist)
    _versions(referral, FEW_VERSIONS, radiologist)
    client.force_login(auditor)
    url = reverse("audit:timeline_csv")
    _first_chunk_queries(client, url)
    small = _first_chunk_queries(client, url)
    _versions(referral, MANY_VERSIONS - FEW_VERSIONS, radiologist, first=FEW_VERSIONS)
    large = _first_chunk_queries(client, url)
    _assert_flat("csv_first_chunk", small, large)
