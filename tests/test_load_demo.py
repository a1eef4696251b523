"""`load_demo` (run by `make run`): complete, idempotent, and only with DEBUG."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from triage.models import Assessment, Patient, Referral, Reply
from triage.personnummer import TEST_PERSONNUMMER

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_load_demo_twice_gives_the_same_complete_data():
    call_command("load_demo", stdout=None)
    first = (Referral.objects.count(), Patient.objects.count(), Assessment.objects.count())
    call_command("load_demo")

    assert (Referral.objects.count(), Patient.objects.count(), Assessment.objects.count()) == first
    assert Referral.objects.count() >= 40
    assert set(Patient.objects.values_list("personal_number", flat=True)) <= set(TEST_PERSONNUMMER)
    statuses = Counter(Referral.objects.values_list("status", flat=True))
    assert statuses["new"] > 20 and statuses["decided"] + statuses["escalated"] >= 1
    # Every decided demo referral has a finished letter without unfilled gaps.
    for reply in Reply.objects.all():
        assert reply.is_final and "[" not in reply.text


@override_settings(DEBUG=False)
def test_load_demo_refuses_without_debug():
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("load_demo")
    assert Referral.objects.count() == 0
