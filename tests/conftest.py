"""Shared fixtures: test personas per role and small builders for referrals."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connections
from django.utils import timezone

from triage import services
from triage.models import Patient, Referral
from triage.permissions import Role

# Skatteverket's published test personnummer (fictitious); see triage/personnummer.py.
TEST_NUMBER = "19820801-2396"
OTHER_TEST_NUMBER = "19940101-2381"


def make_user(username: str, *roles: str) -> User:
    user = User.objects.create_user(username, password="pw-for-tests-only", first_name=username)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def radiologist(db) -> User:
    return make_user("radiolog", Role.RADIOLOGIST)


@pytest.fixture
def other_radiologist(db) -> User:
    return make_user("radiolog2", Role.RADIOLOGIST)


@pytest.fixture
def department_head(db) -> User:
    return make_user("chef", Role.DEPARTMENT_HEAD)


@pytest.fixture
def auditor(db) -> User:
    return make_user("revisor", Role.AUDITOR)


@pytest.fixture
def no_role_user(db) -> User:
    return make_user("utan-roll")


def make_patient(number: str = TEST_NUMBER, name: str = "Test Testsson", user=None) -> Patient:
    return services.patient_register(
        personal_number=number,
        name=name,
        reference_date=date(2025, 1, 1),
        user=user,
        reason="Test",
    )


def make_referral(
    *,
    patient: Patient | None = None,
    order_number: str = "R-1",
    requested: str = "mri",
    written_on: date | None = None,
    received_at: datetime | None = None,
    method_change_allowed: bool = True,
    anamnesis: str = "Ländryggssmärta sedan 6 veckor.",
    referrer_priority: str = "routine",
    user=None,
) -> Referral:
    received_at = received_at or timezone.now() - timedelta(days=3)
    return services.referral_create(
        user=user,
        reason="Test",
        source="test-ris",
        order_number=order_number,
        patient=patient or make_patient(),
        received_at=received_at,
        written_on=written_on or timezone.localdate(received_at),
        referring_unit="Vårdcentralen Testby",
        referring_clinician="Dr Test",
        requested=requested,
        anamnesis=anamnesis,
        method_change_allowed=method_change_allowed,
        referrer_priority=referrer_priority,
    )


@pytest.fixture
def referral(db) -> Referral:
    return make_referral()


def run_together(*jobs, timeout: float = 60) -> list:
    """Run the jobs on their own threads (own database connections) behind one barrier.

    Each result is the job's return value or the exception it raised.
    """
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def runner(index, job):
        try:
            barrier.wait()
            results[index] = job()
        except Exception as error:  # noqa: BLE001 - handed back to the test to assert on
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
