"""The auditor's workspace: access, timeline, record, CSV, access log, sample, extract."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from tests.conftest import OTHER_TEST_NUMBER, TEST_NUMBER, make_patient, make_referral
from triage import audit, services
from triage.models import (
    AccessLog,
    Assessment,
    Flag,
    GuidelineVersion,
    Referral,
    ReplyTemplate,
)
from triage.selectors import AssessmentInput
from triage.views.audit import csv_safe

pytestmark = pytest.mark.django_db

RED_FLAG_FACTS = AssessmentInput(
    pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"}), questions=frozenset({"other"})
)
SCRIPT = "<script>alert('x')</script>"
FORMULA = "=cmd|' /C calc'!A0"


# --- Builders --------------------------------------------------------------------------------


def _edit(instance, user, reason: str, **values) -> None:
    """A tracked change as the services make it: with author and reason in the history."""
    for name, value in values.items():
        setattr(instance, name, value)
    instance._history_user = user
    instance._change_reason = reason
    instance.save()


def _decide(referral, user, *, facts=RED_FLAG_FACTS, action="mri", weeks=6, why="") -> Assessment:
    return services.assessment_decide(
        referral=referral,
        entered=facts,
        action=action,
        priority_weeks=weeks,
        override_reason=why,
        user=user,
    )


def _user_change(actor: User, target: User) -> LogEntry:
    return LogEntry.objects.create(
        user=actor,
        content_type=ContentType.objects.get_for_model(User),
        object_id=str(target.pk),
        object_repr=target.username,
        action_flag=CHANGE,
        change_message=json.dumps([{"changed": {"fields": ["Grupper"]}}]),
    )


def _story(radiologist, department_head, *, order_number="R-1", anamnesis="Ont i ryggen."):
    """A referral with a decision, a reply from a template, and admin changes of each kind."""
    referral = make_referral(order_number=order_number, anamnesis=anamnesis, user=radiologist)
    _decide(referral, radiologist)
    referral.refresh_from_db()
    services.referral_set_status(
        referral=referral,
        status=Referral.Status.IN_TRIAGE,
        user=radiologist,
        reason="Omprövning efter telefonsamtal",
    )
    facts = AssessmentInput(
        pain_weeks=Decimal("6"),
        flag_codes=frozenset({"prior_cancer"}),
        questions=frozenset({"other"}),
    )
    decision = _decide(referral, radiologist, facts=facts, weeks=2, why="Snabbare enligt ortoped")
    template = ReplyTemplate.objects.filter(is_active=True).first()
    services.reply_save(
        referral=referral, text="Välkommen på MR.", template=template, user=radiologist
    )
    _edit(template, department_head, "Tydligare text", body=template.body + " Ny mening.")
    guideline = GuidelineVersion.objects.get(is_active=True)
    _edit(guideline, department_head, "Kommentar", note="Ny kommentar")
    _user_change(department_head, radiologist)
    return referral, decision


def _bulk_referral_versions(referral: Referral, count: int, user: User, *, first: int = 0) -> None:
    """Many older history rows at once (after the referral's creation, before today's
    changes), so that data sizes can be compared cheaply."""
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


def _history_rows() -> int:
    return sum(
        kind.source().count() for kind in audit.registry if isinstance(kind, audit.TrackedModelKind)
    )


# --- Access ----------------------------------------------------------------------------------

AUDIT_URLS = [
    "audit:timeline",
    "audit:timeline_csv",
    "audit:referral",
    "audit:access_log",
    "audit:patient_extract",
]


def _url(name: str, referral: Referral) -> str:
    return reverse(name, args=[referral.pk] if name == "audit:referral" else [])


@pytest.mark.parametrize("url_name", AUDIT_URLS)
def test_audit_pages_redirect_anonymous_to_login(client, referral, url_name):
    response = client.get(_url(url_name, referral))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("persona", ["radiologist", "department_head", "no_role_user"])
@pytest.mark.parametrize("url_name", AUDIT_URLS)
def test_audit_pages_forbidden_without_auditor_role(client, referral, request, persona, url_name):
    client.force_login(request.getfixturevalue(persona))

    assert client.get(_url(url_name, referral)).status_code == 403
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize("url_name", AUDIT_URLS)
def test_audit_pages_open_for_auditor(client, referral, auditor, url_name):
    client.force_login(auditor)

    response = client.get(_url(url_name, referral))

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
@pytest.mark.parametrize("url_name", AUDIT_URLS)
def test_audit_pages_refuse_writes(client, referral, auditor, url_name, method):
    client.force_login(auditor)

    response = getattr(client, method)(_url(url_name, referral))

    assert response.status_code == 405
    assert not AccessLog.objects.exists()


# --- Timeline -------------------------------------------------------------------------------


def test_timeline_shows_who_what_when_why_newest_first(
    client, auditor, radiologist, department_head
):
    referral, decision = _story(radiologist, department_head)
    client.force_login(auditor)

    response = client.get(reverse("audit:timeline"))

    entries = response.context["page"].entries
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    kinds = {e.kind for e in entries}
    assert {"referral", "decision", "reply", "template", "guideline", "user"} <= kinds
    status_change = next(
        e for e in entries if e.kind == "referral" and e.reason == "Omprövning efter telefonsamtal"
    )
    assert status_change.user_name == radiologist.username
    assert ("status", "Beslutad", "Under bedömning") in {
        (c.name, c.before, c.after) for c in status_change.changes
    }
    redecision = next(e for e in entries if e.kind == "decision" and e.override_reason)
    assert redecision.override_reason == "Snabbare enligt ortoped"
    assert redecision.reason == "Beslut med avvikelse från förslaget"
    assert ("priority_weeks", "6 veckor", "2 veckor") in {
        (c.name, c.before, c.after) for c in redecision.changes
    }
    assert {(f.added, f.code) for f in redecision.flag_changes} == {
        (True, "prior_cancer"),
        (False, "night_pain"),
    }
    template_entry = next(e for e in entries if e.kind == "template")
    assert template_entry.reason == "Tydligare text"
    assert any(c.name == "body" and c.after.endswith("Ny mening.") for c in template_entry.changes)
    user_entry = next(e for e in entries if e.kind == "user")
    assert user_entry.object_label.endswith(radiologist.username)
    assert "Grupper" in user_entry.summary
    html = response.content.decode()
    assert reverse("audit:referral", args=[referral.pk]) in html
    assert "Snabbare enligt ortoped" in html


def test_timeline_shows_flag_labels_as_they_were_when_decided(
    client, auditor, radiologist, department_head
):
    referral = make_referral(user=radiologist)
    _decide(referral, radiologist)
    flag = Flag.objects.get(code="night_pain")
    old_label = flag.label
    _edit(flag, department_head, "Ny benämning", label="Nattlig smärta (nytt namn)")
    client.force_login(auditor)

    page = client.get(reverse("audit:timeline"), {"kind": "decision"}).context["page"]

    (entry,) = page.entries
    assert [(f.added, f.label) for f in entry.flag_changes] == [(True, old_label)]


def test_timeline_filters_by_user_kind_patient_referral_and_dates(
    client, auditor, radiologist, department_head
):
    _story(radiologist, department_head)
    other = make_referral(
        patient=make_patient(OTHER_TEST_NUMBER, "Åsa Öberg"), order_number="R-2", user=radiologist
    )
    client.force_login(auditor)

    def entries(**params):
        response = client.get(reverse("audit:timeline"), params)
        assert response.status_code == 200, response.content
        return response.context["page"].entries

    assert {e.user_name for e in entries(user="chef")} == {"chef"}
    assert {e.kind for e in entries(kind="guideline")} == {"guideline"}
    # A ten-digit personnummer finds the canonical twelve-digit patient.
    by_number = entries(patient="940101-2381")
    assert by_number and {e.patient_id for e in by_number} == {other.patient_id}
    by_name = entries(patient="åsa")
    assert {e.patient_id for e in by_name} == {other.patient_id}
    by_referral = entries(referral="R-2")
    assert by_referral and {e.referral_id for e in by_referral} == {other.pk}
    today = timezone.localdate()
    assert entries(date_from=today.isoformat(), date_to=today.isoformat())
    assert entries(date_from=(today + timedelta(days=1)).isoformat()) == []


def test_timeline_rejects_a_malformed_personnummer(client, auditor):
    client.force_login(auditor)

    response = client.get(reverse("audit:timeline"), {"patient": "19820801-2397"})

    assert response.status_code == 400
    assert "Kontrollsiffran" in response.content.decode()


def test_timeline_logs_a_read_of_the_patients_shown(client, auditor, radiologist, department_head):
    referral, _decision = _story(radiologist, department_head)
    client.force_login(auditor)

    client.get(reverse("audit:timeline"))

    logged = AccessLog.objects.filter(user=auditor)
    # The referral's changes, and the patient's own (registration) row.
    assert set(logged.values_list("patient_id", "referral_id", "action", "view")) == {
        (referral.patient_id, referral.pk, "read", "audit_timeline"),
        (referral.patient_id, None, "read", "audit_timeline"),
    }


def test_timeline_pages_without_counting_the_history(client, auditor, radiologist):
    referral = make_referral(user=radiologist)
    _bulk_referral_versions(referral, 60, radiologist)
    client.force_login(auditor)

    first = client.get(reverse("audit:timeline"), {"kind": "referral"}).context["page"]
    second = client.get(reverse("audit:timeline"), {"kind": "referral", "page": 2}).context["page"]

    assert first.has_next and not second.has_next
    assert len(first.entries) == 50 and len(second.entries) == 11
    assert not {e.history_id for e in first.entries} & {e.history_id for e in second.entries}
    # Each version is diffed against the one before it in time.
    newest = first.entries[0]
    assert [(c.name, c.before, c.after) for c in newest.changes] == [
        ("anamnesis", "Version 58", "Version 59")
    ]
    assert second.entries[-1].event == "Skapad"


def test_timeline_query_count_does_not_grow_with_history(
    client, auditor, radiologist, department_head, django_assert_max_num_queries
):
    referral, _decision = _story(radiologist, department_head)
    _bulk_referral_versions(referral, 10, radiologist)
    client.force_login(auditor)
    url = reverse("audit:timeline")
    client.get(url)  # the first JSON query of a connection checks the database's features

    with CaptureQueriesContext(connection) as small:
        client.get(url)
    _bulk_referral_versions(referral, 490, radiologist, first=10)
    assert _history_rows() >= 500
    with django_assert_max_num_queries(8), CaptureQueriesContext(connection) as large:
        response = client.get(url)

    # Every kind is on the page, so this is the most expensive page there is.
    assert {e.kind for e in response.context["page"].entries} >= {
        "referral",
        "decision",
        "reply",
        "template",
        "guideline",
        "user",
    }
    assert len(small.captured_queries) == len(large.captured_queries) <= 8


# --- Escaping -------------------------------------------------------------------------------


def test_script_in_anamnesis_and_template_is_escaped_everywhere(
    client, auditor, radiologist, department_head
):
    referral = make_referral(anamnesis=SCRIPT, user=radiologist)
    _decide(referral, radiologist)
    template = ReplyTemplate.objects.filter(is_active=True).first()
    _edit(template, department_head, "Test", body=f"Hej {SCRIPT}")
    services.reply_save(referral=referral, text="Svar", template=template, user=radiologist)
    client.force_login(auditor)

    timeline = client.get(reverse("audit:timeline")).content.decode()
    record = client.get(reverse("audit:referral", args=[referral.pk])).content.decode()

    for html in (timeline, record):
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


# --- Per-referral record ----------------------------------------------------------------------


def test_record_tells_the_whole_story_with_template_and_guideline_versions(
    client, auditor, radiologist, department_head
):
    referral, decision = _story(radiologist, department_head)
    template = ReplyTemplate.objects.filter(is_active=True).first()
    client.force_login(auditor)

    response = client.get(reverse("audit:referral", args=[referral.pk]))

    record = response.context["record"]
    html = response.content.decode()
    assert len(record.referral_versions) == referral.history.count()
    assert [v.row.action for v in record.decisions] == ["mri", "mri"]
    assert record.decisions[-1].row.override_reason == "Snabbare enligt ortoped"
    assert [f[0] for f in record.decisions[-1].flags] == ["prior_cancer"]
    for reason in decision.recommendation["reasons"]:
        assert reason["text"] in html
    assert record.decisions[0].guideline_then.label == decision.guideline_version.label
    # The template was edited after the reply: the record shows the wording that was used.
    (reply_version,) = record.replies
    assert reply_version.template_version.body == template.history.earliest().body
    assert not reply_version.template_version.body.endswith("Ny mening.")
    assert "Välkommen på MR." in html


def test_record_is_logged_as_a_read_of_the_patient(client, auditor, referral):
    client.force_login(auditor)

    response = client.get(reverse("audit:referral", args=[referral.pk]))

    row = AccessLog.objects.get(user=auditor)
    assert (row.patient_id, row.referral_id, row.action, row.view) == (
        referral.patient_id,
        referral.pk,
        "read",
        "audit_referral",
    )
    assert row in response.context["record"].access_log


def test_record_of_a_missing_referral_is_404(client, auditor):
    client.force_login(auditor)

    assert client.get(reverse("audit:referral", args=[999999])).status_code == 404


def test_record_query_count_does_not_grow_with_versions(
    client, auditor, radiologist, department_head, django_assert_max_num_queries
):
    referral, _decision = _story(radiologist, department_head)
    _bulk_referral_versions(referral, 10, radiologist)
    client.force_login(auditor)
    url = reverse("audit:referral", args=[referral.pk])
    client.get(url)

    with CaptureQueriesContext(connection) as small:
        client.get(url)
    _bulk_referral_versions(referral, 490, radiologist, first=10)
    for _index in range(5):
        services.referral_set_status(
            referral=referral, status=Referral.Status.IN_TRIAGE, user=radiologist, reason="Igen"
        )
        _decide(referral, radiologist)
    with django_assert_max_num_queries(14), CaptureQueriesContext(connection) as large:
        response = client.get(url)

    record = response.context["record"]
    assert len(small.captured_queries) == len(large.captured_queries)
    # The newest versions of each kind, each compared with its real predecessor, and the
    # number of older ones with the way to them.
    assert len(record.referral_versions) == audit.RECORD_VERSIONS
    assert all(version.has_previous for version in record.referral_versions)
    assert record.hidden_versions["referral"] == referral.history.count() - audit.RECORD_VERSIONS
    newest = referral.history.order_by("-history_date", "-history_id")[: audit.RECORD_VERSIONS]
    assert [v.row.history_id for v in record.referral_versions] == [
        row.history_id for row in reversed(newest)
    ]
    html = response.content.decode()
    assert f"{record.hidden_versions['referral']} äldre versioner" in html
    assert f"referral={referral.order_number}&amp;kind=referral" in html


# --- CSV export -------------------------------------------------------------------------------


def _csv(response) -> tuple[str, list[list[str]]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return body, list(csv.reader(io.StringIO(body.removeprefix("\ufeff")), delimiter=";"))


def test_csv_export_is_excel_ready_filtered_and_neutralises_formulas(
    client, auditor, radiologist, department_head
):
    referral = make_referral(anamnesis=FORMULA, user=radiologist)
    make_referral(patient=make_patient(OTHER_TEST_NUMBER, "Åsa Öberg"), order_number="R-2")
    template = ReplyTemplate.objects.filter(is_active=True).first()
    _edit(template, department_head, "@SUM(1+1)", body=f"{SCRIPT} -2+3")
    client.force_login(auditor)

    response = client.get(reverse("audit:timeline_csv"), {"patient": TEST_NUMBER})
    all_rows = client.get(reverse("audit:timeline_csv"))

    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    body, rows = _csv(response)
    assert body.startswith("\ufeffTidpunkt;")
    assert rows[0][0] == "Tidpunkt"
    cells = [cell for row in rows[1:] for cell in row]
    assert "'" + FORMULA in cells
    assert FORMULA not in cells
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert {row[6] for row in rows[1:]} == {"Test Testsson, 19820801-2396"}
    assert {row[5] for row in rows[1:]} == {str(referral.pk), ""}  # "" = the patient's row
    _body, everything = _csv(all_rows)
    assert "'@SUM(1+1)" in [cell for row in everything for cell in row]


def test_csv_export_is_logged_as_export_of_the_patients_in_it(client, auditor, radiologist):
    referral = make_referral(user=radiologist)
    client.force_login(auditor)

    _csv(client.get(reverse("audit:timeline_csv")))

    assert set(AccessLog.objects.values_list("patient_id", "action", "view")) == {
        (referral.patient_id, "export", "audit_timeline_csv")
    }


def test_csv_export_streams_in_chunks_without_losing_rows(client, auditor, radiologist):
    referral = make_referral(user=radiologist)
    _bulk_referral_versions(referral, 1200, radiologist)
    client.force_login(auditor)

    _body, rows = _csv(client.get(reverse("audit:timeline_csv"), {"kind": "referral"}))

    versions = {row[9] for row in rows[1:] if row[9].startswith("Version ")}
    assert len(versions) == 1200
    # One bulk insert per chunk, not one per row.
    assert AccessLog.objects.count() == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+46", "'+46"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Åsa", "Åsa"),
        (None, ""),
        (12, "12"),
    ],
)
def test_csv_cells_starting_like_a_formula_get_a_quote(value, expected):
    assert csv_safe(value) == expected


# --- Access log --------------------------------------------------------------------------------


def _log(user, patient, *, unit="Röntgenkliniken", at=None, referral=None, view="referral"):
    return AccessLog.objects.create(
        at=at or timezone.now(),
        user=user,
        role="Radiolog",
        action=AccessLog.Action.READ,
        patient=patient,
        referral=referral,
        care_unit=unit,
        view=view,
    )


def test_access_log_filters_by_user_patient_and_time(
    client, auditor, radiologist, other_radiologist
):
    anna = make_patient()
    asa = make_patient(OTHER_TEST_NUMBER, "Åsa Öberg")
    old = _log(radiologist, anna, at=timezone.now() - timedelta(days=40))
    hit = _log(radiologist, anna)
    _log(radiologist, asa)
    _log(other_radiologist, anna)
    client.force_login(auditor)

    def shown(**params):
        response = client.get(reverse("audit:access_log"), params)
        assert response.status_code == 200
        return [row.pk for row in response.context["page"].rows]

    recent = (timezone.localdate() - timedelta(days=7)).isoformat()
    assert shown(user="radiolog", patient="8208012396", date_from=recent) == [hit.pk]
    assert old.pk in shown(user="radiolog", patient="Test Testsson")


def test_access_log_sample_is_reproducible_with_its_seed(client, auditor, radiologist):
    patient = make_patient()
    for _index in range(40):
        _log(radiologist, patient)
    client.force_login(auditor)
    url = reverse("audit:access_log")

    first = client.get(url, {"user": "radiolog", "sample_size": 10, "seed": 4711})
    again = client.get(url, {"user": "radiolog", "sample_size": 10, "seed": 4711})
    other = client.get(url, {"user": "radiolog", "sample_size": 10, "seed": 4712})

    ids = [row.pk for row in first.context["sample"].rows]
    assert len(ids) == 10
    assert ids == [row.pk for row in again.context["sample"].rows]
    assert ids != [row.pk for row in other.context["sample"].rows]
    assert 'id="sample-seed">4711<' in first.content.decode()
    # The seed is kept in the append-only log, in the rows the review itself writes.
    assert AccessLog.objects.filter(
        user=auditor, view__startswith="loggkontroll seed=4711"
    ).exists()


def test_access_log_sample_without_seed_gets_one_and_shows_it(client, auditor, radiologist):
    patient = make_patient()
    for _index in range(5):
        _log(radiologist, patient)
    client.force_login(auditor)

    response = client.get(reverse("audit:access_log"), {"sample_size": 50})

    sample = response.context["sample"]
    assert len(sample.rows) == 5
    assert f'id="sample-seed">{sample.seed}<' in response.content.decode()
    # Drawing again with the shown seed and upper id gives the same rows, although the
    # review itself has written new log rows since.
    again = client.get(
        reverse("audit:access_log"),
        {"sample_size": 50, "seed": sample.seed, "max_id": sample.max_id},
    )
    assert [r.pk for r in again.context["sample"].rows] == [r.pk for r in sample.rows]


def test_access_log_sample_selector_uses_random_with_the_seed(radiologist):
    import random

    patient = make_patient()
    rows = [_log(radiologist, patient) for _index in range(30)]

    sample = audit.access_log_sample(audit.AccessLogFilters(), size=7, seed=99)

    expected = sorted(random.Random(99).sample([row.pk for row in rows], 7))
    assert sorted(row.pk for row in sample.rows) == expected
    assert sample.population == 30


def test_access_log_page_is_logged_as_a_read(client, auditor, radiologist):
    patient = make_patient()
    _log(radiologist, patient)
    client.force_login(auditor)

    client.get(reverse("audit:access_log"))

    assert AccessLog.objects.filter(user=auditor, view="audit_access_log").count() == 1


# --- Patient log extract ---------------------------------------------------------------------


def test_patient_extract_groups_units_and_users_and_is_logged_as_print(
    client, auditor, radiologist, other_radiologist
):
    patient = make_patient()
    referral = make_referral(patient=patient)
    _log(radiologist, patient, referral=referral)
    _log(radiologist, patient, unit="Akutmottagningen")
    _log(other_radiologist, patient, unit="Akutmottagningen")
    _log(radiologist, make_patient(OTHER_TEST_NUMBER, "Åsa Öberg"))
    client.force_login(auditor)

    response = client.get(reverse("audit:patient_extract"), {"personnummer": "8208012396"})

    assert response.status_code == 200
    extract = response.context["extract"]
    units = {unit.care_unit: unit for unit in extract.units}
    assert units["Akutmottagningen"].count == 2
    assert len(units["Akutmottagningen"].users) == 2
    # The extract itself is logged (before it is shown) and so appears in it.
    assert units["Röntgenkliniken"].count == 2
    assert AccessLog.objects.filter(
        user=auditor, action="print", view="audit_patient_extract", patient=patient
    ).exists()
    html = response.content.decode()
    assert "js-print" in html and "no-print" in html
    assert "Åsa" not in html


def test_patient_extract_for_unknown_or_invalid_number(client, auditor):
    client.force_login(auditor)
    url = reverse("audit:patient_extract")

    assert client.get(url, {"personnummer": TEST_NUMBER}).status_code == 404
    assert client.get(url, {"personnummer": "12345"}).status_code == 400
    assert not AccessLog.objects.exists()


# --- The access log cannot be changed ------------------------------------------------------


def test_access_log_admin_has_no_add_change_or_delete(rf, radiologist):
    superuser = User.objects.create_superuser("it", password="pw-for-tests-only")
    request = rf.get("/")
    request.user = superuser
    model_admin = admin.site._registry.get(AccessLog)

    assert model_admin is not None, "AccessLog should be visible (read-only) in the admin"
    assert not model_admin.has_add_permission(request)
    row = _log(radiologist, make_patient())
    assert not model_admin.has_change_permission(request, row)
    assert not model_admin.has_delete_permission(request, row)
    assert "delete_selected" not in model_admin.get_actions(request)


def _all_url_names(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple]:
    resolver = resolver or get_resolver()
    found = []
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            namespace = pattern.namespace
            found += _all_url_names(pattern, f"{prefix}{namespace}:" if namespace else prefix)
        elif isinstance(pattern, URLPattern) and pattern.name:
            found.append((prefix + pattern.name, pattern))
    return found


def _kwargs_for(pattern: URLPattern, ids: dict[str, int]) -> dict:
    names = list(pattern.pattern.regex.groupindex)
    kwargs = {}
    for name in names:
        if name == "app_label":
            kwargs[name] = "triage"
        elif name in ("content_type_id",):
            kwargs[name] = ContentType.objects.get_for_model(AccessLog).pk
        elif name == "url":
            kwargs[name] = "x"
        else:
            kwargs[name] = ids.get(name, ids["pk"])
    return kwargs


def test_no_url_of_the_project_changes_or_deletes_access_log_rows(
    client, radiologist, auditor, department_head
):
    referral = make_referral()
    row = _log(radiologist, referral.patient, referral=referral)
    before = {r["id"]: r for r in AccessLog.objects.values()}
    superuser = User.objects.create_superuser("it", password="pw-for-tests-only")
    ids = {"pk": referral.pk, "object_id": row.pk, "reply_pk": row.pk, "id": row.pk}
    # What an admin bulk delete or a crafted form would send.
    payload = {
        "action": "delete_selected",
        "_selected_action": [row.pk],
        "post": "yes",
        "at": "2000-01-01 00:00",
        "user": auditor.pk,
        "view": "forged",
    }
    client.raise_request_exception = False
    tried = 0
    for user in (superuser, department_head, auditor, radiologist):
        client.force_login(user)
        for name, pattern in _all_url_names():
            if name in ("logout", "admin:logout"):
                continue
            try:
                url = reverse(name, kwargs=_kwargs_for(pattern, ids))
            except Exception:  # noqa: S112 - a URL that needs arguments we cannot guess
                continue
            for method in ("post", "put", "patch", "delete"):
                getattr(client, method)(url, payload)
                tried += 1

    assert tried > 100
    after = {r["id"]: r for r in AccessLog.objects.values()}
    assert {pk: after.get(pk) for pk in before} == before
