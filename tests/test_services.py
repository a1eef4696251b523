"""Services: every write is validated, atomic and leaves exactly one history row with a user."""

from __future__ import annotations

import importlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tests.conftest import OTHER_TEST_NUMBER, make_patient, make_referral
from triage import services
from triage.models import (
    Assessment,
    GuidelineVersion,
    Patient,
    PriorImaging,
    Referral,
    Reply,
    ReplyTemplate,
)
from triage.selectors import AssessmentInput

pytestmark = pytest.mark.django_db

RED_FLAG_FACTS = AssessmentInput(
    pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"}), questions=frozenset({"other"})
)


def test_patient_register_stores_canonical_number_and_derived_identity(radiologist):
    patient = make_patient("8208012396", "Anna Andersson", user=radiologist)

    assert patient.personal_number == "198208012396"
    assert patient.birth_date == date(1982, 8, 1)
    assert patient.sex == "M"
    assert patient.kind == Patient.Kind.PERSONNUMMER
    row = patient.history.get()
    assert row.history_user == radiologist
    assert row.history_change_reason == "Test"


def test_patient_register_finds_same_patient_from_ten_or_twelve_digits(radiologist):
    first = make_patient("19820801-2396", user=radiologist)
    again = make_patient("820801-2396", user=radiologist)

    assert again.pk == first.pk
    assert Patient.objects.count() == 1
    assert first.history.count() == 1  # same name: nothing changed, nothing written


@pytest.mark.parametrize(
    "number",
    ["19820801-2397", "19820230-2396", "556677-8899", "19820801-0006", "abc", ""],
    ids=["luhn", "impossible-date", "organisation-number", "lopnummer-000", "letters", "empty"],
)
def test_patient_register_refuses_invalid_personnummer_and_saves_nothing(number, radiologist):
    with pytest.raises(services.ServiceError) as error:
        make_patient(number, user=radiologist)

    assert str(error.value)
    assert Patient.objects.count() == 0
    assert Patient.history.count() == 0


def test_referral_create_writes_one_history_row_with_user(radiologist):
    referral = make_referral(user=radiologist)

    assert referral.status == Referral.Status.NEW
    row = referral.history.get()
    assert row.history_user == radiologist
    assert row.history_type == "+"


def test_referral_create_refuses_duplicate_source_and_order_number(radiologist):
    make_referral(order_number="R-9", user=radiologist)

    with pytest.raises(services.ServiceError, match="finns redan"):
        make_referral(order_number="R-9", user=radiologist)
    assert Referral.objects.count() == 1


def test_referral_create_refuses_written_date_after_received(radiologist):
    received = timezone.now()
    with pytest.raises(services.ServiceError, match="Remissdatumet"):
        make_referral(received_at=received, written_on=received.date() + timedelta(days=1))
    assert Referral.objects.count() == 0


def test_referral_create_refuses_unknown_referrer_priority(radiologist):
    with pytest.raises(services.ServiceError, match="Okänd prioritet: hög"):
        make_referral(referrer_priority="hög", user=radiologist)
    assert Referral.objects.count() == 0


def test_migration_reads_the_priority_line_earlier_imports_wrote(radiologist):
    from django.apps import apps

    migration = importlib.import_module("triage.migrations.0010_referrer_priority")
    acute = make_referral(order_number="A", anamnesis="Remittentens prioritet: Akut\nCauda?")
    quoted = make_referral(
        order_number="Q",
        patient=make_patient(OTHER_TEST_NUMBER),
        anamnesis="Pat säger: Remittentens prioritet: Akut",
    )

    lower_case = make_referral(order_number="L", anamnesis="remittentens prioritet: akut\nX")

    migration.priority_from_anamnesis(apps, None)

    for referral in (acute, quoted, lower_case):
        referral.refresh_from_db()
    assert [acute.referrer_priority, quoted.referrer_priority, lower_case.referrer_priority] == [
        "stat",
        "routine",
        "routine",
    ]
    assert acute.history.get().referrer_priority == "stat"


def test_status_transition_allowed_and_recorded(referral, radiologist):
    updated = services.referral_set_status(
        referral=referral, status=Referral.Status.IN_TRIAGE, user=radiologist, reason="Tar remissen"
    )

    assert updated.status == Referral.Status.IN_TRIAGE
    assert updated.version == referral.version + 1
    latest = updated.history.first()
    assert (latest.history_user, latest.history_change_reason) == (radiologist, "Tar remissen")


def test_status_transition_refused_changes_nothing(referral, radiologist):
    services.referral_set_status(
        referral=referral,
        status=Referral.Status.AWAITING_INFORMATION,
        user=radiologist,
        reason="Komplettering",
    )

    with pytest.raises(services.ServiceError, match="kan inte få status"):
        services.referral_set_status(
            referral=referral, status=Referral.Status.DECIDED, user=radiologist, reason="x"
        )
    referral.refresh_from_db()
    assert referral.status == Referral.Status.AWAITING_INFORMATION
    assert referral.history.count() == 2


def test_stale_version_is_refused(referral, radiologist, other_radiologist):
    opened_version = referral.version
    services.referral_set_status(
        referral=referral, status=Referral.Status.IN_TRIAGE, user=other_radiologist, reason="x"
    )

    with pytest.raises(services.StaleReferral, match="ändrats av någon annan"):
        services.assessment_decide(
            referral=referral,
            entered=RED_FLAG_FACTS,
            action="mri",
            priority_weeks=6,
            user=radiologist,
            expected_version=opened_version,
        )
    assert Assessment.objects.count() == 0


def test_decision_accepting_recommendation_stores_facts_recommendation_and_due_date(
    referral, radiologist
):
    assessment = services.assessment_decide(
        referral=referral,
        entered=RED_FLAG_FACTS,
        action="mri",
        priority_weeks=6,
        user=radiologist,
    )

    referral.refresh_from_db()
    assert assessment.recommended_action == "mri"
    assert assessment.recommendation["criteria"] == ["I1"]
    assert assessment.guideline_version == GuidelineVersion.objects.get(is_active=True)
    assert not assessment.is_override
    assert referral.status == Referral.Status.DECIDED
    assert referral.due_date == timezone.localdate(referral.received_at) + timedelta(weeks=6)
    assert referral.assigned_to == radiologist
    assert {flag.code for flag in assessment.flags.all()} == {"night_pain"}


def test_decision_writes_one_history_row_including_flags(referral, radiologist):
    assessment = services.assessment_decide(
        referral=referral, entered=RED_FLAG_FACTS, action="mri", priority_weeks=6, user=radiologist
    )

    row = assessment.history.get()
    assert row.history_user == radiologist
    assert row.history_type == "+"
    assert [flag.flag.code for flag in row.flags.all()] == ["night_pain"]


def test_override_without_reason_is_refused(referral, radiologist):
    with pytest.raises(services.ServiceError, match="Motivera"):
        services.assessment_decide(
            referral=referral,
            entered=RED_FLAG_FACTS,
            action="mri",
            priority_weeks=2,
            user=radiologist,
        )
    assert Assessment.objects.count() == 0
    referral.refresh_from_db()
    assert referral.status == Referral.Status.NEW


def test_override_with_reason_is_stored(referral, radiologist):
    assessment = services.assessment_decide(
        referral=referral,
        entered=RED_FLAG_FACTS,
        action="mri",
        priority_weeks=2,
        override_reason="Progredierande smärta enligt telefonsamtal.",
        user=radiologist,
    )

    assert assessment.is_override
    assert assessment.override_reason == "Progredierande smärta enligt telefonsamtal."


def test_emergency_sign_always_escalates_with_priority_zero(referral, radiologist):
    entered = AssessmentInput(pain_weeks=Decimal("1"), flag_codes=frozenset({"cauda_equina"}))
    assessment = services.assessment_decide(
        referral=referral, entered=entered, action="escalate", priority_weeks=6, user=radiologist
    )

    referral.refresh_from_db()
    assert assessment.priority_weeks == 0
    assert referral.status == Referral.Status.ESCALATED
    assert referral.due_date is None


def test_emergency_cannot_be_queued_without_a_reason(referral, radiologist):
    entered = AssessmentInput(pain_weeks=Decimal("1"), flag_codes=frozenset({"cauda_equina"}))

    with pytest.raises(services.ServiceError, match="Akuta tecken"):
        services.assessment_decide(
            referral=referral, entered=entered, action="mri", priority_weeks=6, user=radiologist
        )


@pytest.mark.parametrize(
    ("entered", "message"),
    [
        (AssessmentInput(pain_weeks=Decimal("-1")), "negativ"),
        (AssessmentInput(treatment_weeks=Decimal("-2")), "negativ"),
        (AssessmentInput(flag_codes=frozenset({"no_such_flag"})), "Okänd flagga"),
        (AssessmentInput(questions=frozenset({"why"})), "Okänd frågeställning"),
    ],
    ids=["negative-duration", "negative-treatment", "unknown-flag", "unknown-question"],
)
def test_bad_assessment_input_is_refused(entered, message, referral, radiologist):
    with pytest.raises(services.ServiceError, match=message):
        services.assessment_decide(
            referral=referral,
            entered=entered,
            action="return",
            priority_weeks=None,
            override_reason="x",
            user=radiologist,
        )
    assert Assessment.objects.count() == 0


def test_prior_imaging_add_refuses_future_date(referral, radiologist):
    with pytest.raises(services.ServiceError, match="framtiden"):
        services.prior_imaging_add(
            patient=referral.patient,
            modality="ct",
            region="buk",
            performed_on=timezone.localdate() + timedelta(days=1),
            covers_lumbar_spine=True,
            user=radiologist,
            reason="Test",
        )
    assert PriorImaging.objects.count() == 0


def test_recent_ct_abdomen_turns_xray_request_into_rereview(radiologist):
    patient = make_patient(OTHER_TEST_NUMBER)
    referral = make_referral(patient=patient, requested="xray")
    services.prior_imaging_add(
        patient=patient,
        modality="ct",
        region="buk",
        performed_on=referral.written_on - timedelta(days=60),
        covers_lumbar_spine=True,
        finding="Inga kotkompressioner.",
        user=radiologist,
        reason="Test",
    )

    assessment = services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(pain_weeks=Decimal("10"), questions=frozenset({"compression"})),
        action="rereview",
        priority_weeks=None,
        user=radiologist,
    )

    referral.refresh_from_db()
    assert assessment.recommendation["reply_kind"] == "rereview_prior_imaging"
    assert referral.status == Referral.Status.REREVIEW


def test_reply_final_records_template_version_and_cannot_change(referral, radiologist):
    template = ReplyTemplate.objects.filter(kind="accepted").first()
    reply = services.reply_save(
        referral=referral, text="Accepterad.", template=template, user=radiologist, final=True
    )

    assert reply.template_history_id == template.history.latest().history_id
    assert reply.history.get().history_user == radiologist
    with pytest.raises(services.ServiceError, match="slutfört"):
        services.reply_save(referral=referral, text="Ändrad", reply=reply, user=radiologist)
    assert Reply.objects.get().text == "Accepterad."


def test_guideline_activate_switches_the_single_active_version(department_head):
    old = GuidelineVersion.objects.get(is_active=True)
    new = GuidelineVersion.objects.create(label="2", valid_from=date(2026, 1, 1), red_flag_weeks=5)

    services.guideline_activate(version=new, user=department_head, reason="Ny version")

    old.refresh_from_db()
    assert not old.is_active
    assert GuidelineVersion.objects.get(is_active=True) == new
    assert new.history.first().history_user == department_head


def test_due_date_counts_from_the_local_receiving_day(radiologist):
    # 00:30 in Stockholm is 23:30 UTC the day before: the due date follows the local day.
    received = datetime(2026, 11, 10, 0, 30, tzinfo=ZoneInfo("Europe/Stockholm"))
    referral = make_referral(received_at=received, written_on=date(2026, 11, 10))

    services.assessment_decide(
        referral=referral, entered=RED_FLAG_FACTS, action="mri", priority_weeks=6, user=radiologist
    )

    referral.refresh_from_db()
    assert referral.due_date == date(2026, 12, 22)
