"""Two radiologists at the same moment, on two real PostgreSQL connections."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from tests.conftest import make_patient, make_referral, run_together
from triage import services
from triage.models import Assessment, Referral, Reply
from triage.personnummer import TEST_PERSONNUMMER
from triage.selectors import AssessmentInput

pytestmark = [
    pytest.mark.postgres,
    # serialized_rollback restores the reference data (flags, roles, templates) after a flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL row locks (SKIP LOCKED); run with DATABASE_URL=postgres://…",
    ),
]


def test_two_radiologists_taking_next_get_different_referrals(radiologist, other_radiologist):
    for index in range(2):
        make_referral(
            patient=make_patient(TEST_PERSONNUMMER[index], f"P {index}"), order_number=f"C{index}"
        )

    for _round in range(5):
        first, second = run_together(
            lambda: services.referral_claim_next(user=radiologist),
            lambda: services.referral_claim_next(user=other_radiologist),
        )
        assert isinstance(first, Referral) and isinstance(second, Referral)
        assert first.pk != second.pk
        for claimed in (first, second):
            services.referral_set_status(
                referral=claimed, status=Referral.Status.NEW, user=radiologist, reason="reset"
            )


def test_two_decisions_on_the_same_version_only_one_wins(radiologist, other_radiologist):
    referral = make_referral()
    version = referral.version
    entered = AssessmentInput(pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"}))

    def decide(user):
        return lambda: services.assessment_decide(
            referral=referral,
            entered=entered,
            action="mri",
            priority_weeks=6,
            user=user,
            expected_version=version,
        )

    results = run_together(decide(radiologist), decide(other_radiologist))

    winners = [result for result in results if isinstance(result, Assessment)]
    losers = [result for result in results if isinstance(result, services.StaleReferral)]
    assert len(winners) == 1 and len(losers) == 1
    assert Assessment.objects.count() == 1
    referral.refresh_from_db()
    assert referral.history.filter(history_change_reason__startswith="Beslut").count() == 1


def test_double_finalize_of_a_reply_stores_one_reply(radiologist):
    referral = make_referral()
    assessment = services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"})),
        action="mri",
        priority_weeks=6,
        user=radiologist,
    )

    def finalize():
        return services.reply_save(
            referral=referral, assessment=assessment, text="Svar", user=radiologist, final=True
        )

    results = run_together(finalize, finalize)

    assert sum(isinstance(result, Reply) for result in results) == 1
    assert sum(isinstance(result, services.ServiceError) for result in results) == 1
    assert Reply.objects.filter(referral=referral).count() == 1
