"""`manage.py load_demo`: demo users and realistic referrals; safe to run again."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from triage import personnummer, rules, services
from triage.demo_content import DEMO_REFERRALS
from triage.importers.intake import sender_register
from triage.models import Flag, Patient, Referral, Sender
from triage.permissions import Role
from triage.selectors import AssessmentInput, build_facts, draft_reply

DEMO_SOURCE = "demo-ris"
DEMO_PASSWORD = "remissprio-demo"  # noqa: S105 - printed on purpose, DEBUG only
DEMO_USERS = [
    # (username, full name, role)
    ("radiolog", "Rut Radiolog", Role.RADIOLOGIST),
    ("radiolog2", "Ragnar Röntgen", Role.RADIOLOGIST),
    ("chef", "Vera Verksamhetschef", Role.DEPARTMENT_HEAD),
    ("revisor", "Rolf Revisor", Role.AUDITOR),
]


class Command(BaseCommand):
    help = "Lägger in demoanvändare och ett 40-tal realistiska remisser (bara med DEBUG=1)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Demodata läggs bara in med DEBUG=1 (aldrig i produktion).")
        users = self._users()
        importer = self._import_user()
        if not Sender.objects.filter(name=DEMO_SOURCE).exists():
            # So that import_referrals --source demo-ris and the API can be tried at once.
            sender_register(name=DEMO_SOURCE, user=users["chef"], reason="Demodata")
        today = timezone.localdate()
        numbers = _NumberPicker(today)
        created = 0
        for index, item in enumerate(DEMO_REFERRALS):
            if Referral.objects.filter(
                source=DEMO_SOURCE, order_number=item["order_number"]
            ).exists():
                continue
            with transaction.atomic():
                self._load_referral(item, index, today, numbers, importer, users["radiolog"])
            created += 1
        self.stdout.write(f"Demodata: {created} nya remisser, {Referral.objects.count()} totalt.")
        self.stdout.write(f"Demoinloggningar (lösenord för alla: {DEMO_PASSWORD}):")
        for username, full_name, role in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {role:<16} {full_name}")

    def _users(self) -> dict[str, User]:
        users = {}
        for username, full_name, role in DEMO_USERS:
            first, last = full_name.split(" ", 1)
            user, made = User.objects.get_or_create(
                username=username,
                # Department heads work in the admin, which requires staff status.
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "is_staff": role == Role.DEPARTMENT_HEAD,
                },
            )
            if made:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def _import_user(self) -> User:
        # Demo referrals "arrive" from the demo RIS; history names it as their author.
        user, made = User.objects.get_or_create(
            username="demo-ris", defaults={"first_name": "Demo-RIS", "is_active": False}
        )
        if made:
            user.set_unusable_password()
            user.save()
        return user

    def _load_referral(
        self,
        item: dict,
        index: int,
        today: date,
        numbers: _NumberPicker,
        importer: User,
        radiologist: User,
    ) -> None:
        received_on = today - timedelta(days=item["received_days_ago"])
        reason = f"Demodata {DEMO_SOURCE}/{item['order_number']}"
        patient_data = item["patient"]
        patient = services.patient_register(
            personal_number=numbers.pick(patient_data["age"], patient_data["sex"], received_on),
            name=patient_data["name"],
            reference_date=received_on,
            user=importer,
            reason=reason,
        )
        referral = services.referral_create(
            user=importer,
            reason=reason,
            source=DEMO_SOURCE,
            order_number=item["order_number"],
            patient=patient,
            # Spread over the working day so that "oldest first" has a stable order.
            received_at=timezone.make_aware(datetime.combine(received_on, time(7, 30)))
            + timedelta(minutes=13 * index),
            written_on=received_on,
            referring_unit=item["unit"],
            referring_clinician=item["clinician"],
            requested=item["requested"],
            anamnesis=item["text"],
            method_change_allowed=item["method_change_allowed"],
            referrer_priority=item.get("referrer_priority", Referral.ReferrerPriority.ROUTINE),
        )
        for imaging in item["prior_imaging"]:
            if patient.prior_imaging.filter(
                modality=imaging["modality"], region=imaging["region"]
            ).exists():
                continue
            services.prior_imaging_add(
                patient=patient,
                modality=imaging["modality"],
                region=imaging["region"],
                performed_on=received_on - timedelta(days=imaging["days_before"]),
                covers_lumbar_spine=imaging["covers_lumbar_spine"],
                finding=imaging["finding"],
                location=imaging["location"],
                user=importer,
                reason=reason,
            )
        if item.get("demo_state") == "decided":
            self._decide(referral, item["facts"], radiologist)

    def _decide(self, referral: Referral, facts: dict, radiologist: User) -> None:
        entered = demo_assessment_input(facts)
        recommendation = rules.recommend(build_facts(referral, entered))
        assessment = services.assessment_decide(
            referral=referral,
            entered=entered,
            action=recommendation.action,
            priority_weeks=recommendation.priority_weeks,
            user=radiologist,
        )
        template, text = draft_reply(
            referral,
            action=assessment.action,
            priority_weeks=assessment.priority_weeks,
            recommendation=assessment.recommendation,
        )
        if template is not None:
            services.reply_save(
                referral=referral,
                assessment=assessment,
                template=template,
                text=text,
                user=radiologist,
                final=True,
            )


def demo_assessment_input(facts: dict) -> AssessmentInput:
    def weeks(value: float | None) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    codes = set(facts["red_flags"]) | set(facts["yellow_flags"]) | set(facts["emergency_signs"])
    return AssessmentInput(
        pain_weeks=weeks(facts["pain_weeks"]),
        flag_codes=frozenset(codes & set(Flag.objects.values_list("code", flat=True))),
        radicular=facts["radicular"],
        treatment_weeks=weeks(facts["treatment_weeks"]),
        improved=facts["improved"],
        trauma=facts["trauma"],
        questions=frozenset(facts["questions"]),
        mri_contraindicated=facts["mri_contraindicated"],
    )


class _NumberPicker:
    """Hands out Skatteverket test personnummer whose age and sex fit a demo patient."""

    def __init__(self, today: date) -> None:
        used = set(Patient.objects.values_list("personal_number", flat=True))
        self.free = [
            personnummer.parse_personnummer(number, reference_date=today)
            for number in personnummer.TEST_PERSONNUMMER
            if number not in used
        ]

    def pick(self, age: int, sex: str, on: date) -> str:
        candidates = [identity for identity in self.free if identity.sex == sex] or self.free
        if not candidates:
            raise CommandError("Slut på testpersonnummer för demodata.")
        best = min(
            candidates, key=lambda identity: abs(personnummer.age_at(identity.birth_date, on) - age)
        )
        self.free.remove(best)
        return best.number
