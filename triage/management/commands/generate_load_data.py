"""`manage.py generate_load_data --referrals N`: hospital-scale data for benchmarks.

Writes referrals, prior imaging, decisions (with flags), replies and their history in bulk,
the way the services would have written them one by one: every history row has its user,
reason and time. Repeatable: the same --seed gives the same data.

Only Skatteverket's published test personnummer exist in this project, so the patients are
those ~80 people, each with many referrals; the pages measured scale with referrals and
history rows, not with patients.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction
from django.utils import timezone

from triage import personnummer, rules
from triage.models import (
    ACTION_TO_STATUS,
    EXAMINATION_ACTIONS,
    Assessment,
    Flag,
    Patient,
    PriorImaging,
    Referral,
    Reply,
    ReplyTemplate,
    assessment_history,
    due_date_for,
)
from triage.permissions import Role
from triage.selectors import active_guideline, reply_kind_for

SOURCE = "load-ris"
BATCH = 2000
UNITS = [
    "Vårdcentralen Gottsunda", "Vårdcentralen Sävja", "Vårdcentralen Flogsta",
    "Ortopedmottagningen", "Reumatologmottagningen", "Akutmottagningen",
]  # fmt: skip


_HISTORY_MODELS: dict[type[models.Model], type[models.Model]] = {}


def _history_row(instance: models.Model, *, user: User, reason: str, when, kind: str, **overrides):
    """A history row as simple-history would write it; `overrides` give an earlier state."""
    model = type(instance)
    if model not in _HISTORY_MODELS:  # the history manager is rebuilt on every access
        _HISTORY_MODELS[model] = model.history.model
    values = {
        field.attname: getattr(instance, field.attname) for field in model._meta.concrete_fields
    }
    values.update(overrides)
    return _HISTORY_MODELS[model](
        history_date=when,
        history_type=kind,
        history_user=user,
        history_change_reason=reason,
        **values,
    )


def _chunks(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


class Command(BaseCommand):
    help = "Skapar stora mängder realistiska remisser med historik för prestandamätning."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--referrals", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--heavy-versions",
            type=int,
            default=10_000,
            help="history versions of one referral's reply (0 to skip)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        total = options["referrals"]
        if total < 1:
            raise CommandError("--referrals måste vara minst 1.")
        rng = random.Random(options["seed"])  # noqa: S311 - repeatable test data, not secrets
        started = time.monotonic()
        context = self._context(options["seed"])
        made = 0
        for batch in _chunks(total, BATCH):
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    # Generated data can be regenerated: don't wait for each commit's fsync.
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL synchronous_commit = off")
                made += self._batch(batch, rng, context)
            self.stdout.write(f"  {batch.stop}/{total} remisser …", ending="\r")
            self.stdout.flush()
        if options["heavy_versions"]:
            self._heavy_referral(options["heavy_versions"], context)
        history_rows = sum(
            model.history.count() for model in (Referral, Assessment, Reply, PriorImaging)
        )
        self.stdout.write(
            f"\n{made} remisser, {history_rows} historikrader på "
            f"{time.monotonic() - started:.0f} s (seed {options['seed']})."
        )

    # --- set-up ---------------------------------------------------------------------

    def _context(self, seed: int) -> dict:
        radiologist_group = Group.objects.get(name=Role.RADIOLOGIST)
        radiologists = []
        for index in range(8):
            user, made = User.objects.get_or_create(username=f"last-radiolog-{index}")
            if made:
                user.set_unusable_password()
                user.save()
                user.groups.add(radiologist_group)
            radiologists.append(user)
        importer, made = User.objects.get_or_create(
            username=SOURCE, defaults={"first_name": "Last-RIS", "is_active": False}
        )
        today = timezone.localdate()
        patients = []
        for number in personnummer.TEST_PERSONNUMMER:
            identity = personnummer.parse_personnummer(number, reference_date=today)
            patient = Patient.objects.filter(personal_number=identity.number).first()
            if patient is None:
                patient = Patient(
                    personal_number=identity.number,
                    kind=identity.kind,
                    birth_date=identity.birth_date,
                    sex=identity.sex,
                    name=f"Testperson {identity.number[-4:]}",
                )
                patient._history_user = importer
                patient._change_reason = "Lastdata"
                patient.save()
            patients.append(patient)
        guideline = active_guideline()
        return {
            "seed": seed,
            "radiologists": radiologists,
            "importer": importer,
            "patients": patients,
            "guideline": guideline,
            "params": guideline.to_parameters(),
            "flags": {flag.code: flag for flag in Flag.objects.all()},
            "templates": {
                template.kind: template
                for template in ReplyTemplate.objects.filter(is_active=True).order_by("-position")
            },
            "template_versions": {
                template.pk: template.history.latest().history_id
                for template in ReplyTemplate.objects.all()
            },
            "now": timezone.now(),
            "offset": Referral.objects.filter(source=SOURCE).count(),
        }

    # --- one batch ----------------------------------------------------------------------

    def _batch(self, batch: range, rng: random.Random, context: dict) -> int:
        importer, now = context["importer"], context["now"]
        referrals = []
        for index in batch:
            patient = rng.choice(context["patients"])
            # Older referrals are mostly decided; the last weeks' are still on the worklist.
            received = now - timedelta(minutes=rng.randint(0, 730 * 24 * 60))
            referral = Referral(
                source=SOURCE,
                order_number=f"L{context['seed']}-{context['offset'] + index:07d}",
                received_at=received,
                written_on=max(
                    received.date() - timedelta(days=rng.randint(0, 3)), patient.birth_date
                ),
                patient=patient,
                referring_unit=rng.choice(UNITS),
                referring_clinician="Dr Last",
                requested=rng.choice(["xray", "xray", "mri", "mri", "mri", "ct", "other"]),
                anamnesis="Ländryggssmärta. Frågeställning: diskbråck? kotkompression?",
                method_change_allowed=rng.random() > 0.1,
            )
            referrals.append(referral)
        imaging = []
        for referral in referrals:
            if rng.random() < 0.15:
                imaging.append(
                    PriorImaging(
                        patient=referral.patient,
                        modality=rng.choice(["ct", "mri", "xray"]),
                        region=rng.choice(["buk", "ländrygg", "aorta", "thorax"]),
                        performed_on=referral.written_on - timedelta(days=rng.randint(20, 900)),
                        covers_lumbar_spine=rng.random() < 0.7,
                        finding="Inga kotkompressioner.",
                        location="Akademiska sjukhuset",
                    )
                )
        PriorImaging.objects.bulk_create(imaging)
        imaging_history = [
            _history_row(item, user=importer, reason="Import", when=now, kind="+")
            for item in imaging
        ]

        # Decide in memory first, so every referral is inserted once in its final state and
        # its creation row in the history shows the state it arrived in.
        decided = [r for r in referrals if (now - r.received_at).days > 14 or rng.random() < 0.3]
        assessments, flag_rows = [], []
        for referral in decided:
            facts, flag_codes = self._facts(referral, rng)
            recommendation = rules.recommend(facts, context["params"])
            user = rng.choice(context["radiologists"])
            action = recommendation.action
            assessments.append(
                Assessment(
                    referral=referral,
                    guideline_version=context["guideline"],
                    pain_weeks=None if facts.pain_weeks is None else Decimal(str(facts.pain_weeks)),
                    radicular=facts.radicular,
                    improved=facts.improved,
                    trauma=facts.trauma,
                    questions=sorted(facts.questions),
                    recommendation=rules.recommendation_to_dict(recommendation),
                    recommended_action=action,
                    recommended_priority_weeks=recommendation.priority_weeks,
                    action=action,
                    priority_weeks=recommendation.priority_weeks,
                    decided_by=user,
                    decided_at=referral.received_at + timedelta(hours=rng.randint(2, 200)),
                )
            )
            flag_rows.append(flag_codes)
            referral.status = ACTION_TO_STATUS[action]
            referral.assigned_to = user
            referral.version = 3
            if action in EXAMINATION_ACTIONS:
                referral.due_date = due_date_for(
                    timezone.localdate(referral.received_at), recommendation.priority_weeks
                )
        Referral.objects.bulk_create(referrals, batch_size=BATCH)
        history = [
            _history_row(
                r,
                user=importer,
                reason=f"Import {r.order_number}",
                when=r.received_at,
                kind="+",
                status=Referral.Status.NEW,
                assigned_to_id=None,
                version=1,
                due_date=None,
            )
            for r in referrals
        ]
        for assessment in assessments:
            assessment.referral_id = assessment.referral.pk
        Assessment.objects.bulk_create(assessments, batch_size=BATCH)
        through = Assessment.flags.through
        links = [
            (index, through(assessment_id=assessment.pk, flag_id=context["flags"][code].pk))
            for index, (assessment, codes) in enumerate(zip(assessments, flag_rows, strict=True))
            for code in codes
        ]
        through.objects.bulk_create([link for _index, link in links], batch_size=BATCH)
        assessment_rows = [
            _history_row(
                a, user=a.decided_by, reason="Beslut enligt förslag", when=a.decided_at, kind="+"
            )
            for a in assessments
        ]
        for referral, assessment in zip(decided, assessments, strict=True):
            opened = referral.received_at + (assessment.decided_at - referral.received_at) / 2
            history.append(
                _history_row(
                    referral,
                    user=referral.assigned_to,
                    reason="Öppnad för bedömning",
                    when=opened,
                    kind="~",
                    status=Referral.Status.IN_TRIAGE,
                    version=2,
                    due_date=None,
                )
            )
            history.append(
                _history_row(
                    referral,
                    user=referral.assigned_to,
                    reason="Beslut enligt förslag",
                    when=assessment.decided_at,
                    kind="~",
                )
            )

        replies = []
        for referral, assessment in zip(decided, assessments, strict=True):
            template = context["templates"].get(
                reply_kind_for(assessment.action, assessment.recommendation)
            )
            if template is None:
                continue
            replies.append(
                Reply(
                    referral=referral,
                    assessment=assessment,
                    template=template,
                    template_history_id=context["template_versions"][template.pk],
                    text=template.body,
                    is_final=True,
                    author=assessment.decided_by,
                    written_at=assessment.decided_at + timedelta(minutes=3),
                )
            )
        Reply.objects.bulk_create(replies)
        reply_rows = []
        for reply in replies:
            # Drafts and edits before the final text, as radiologists work.
            steps = rng.randint(4, 8)
            for step in range(steps):
                final = step == steps - 1
                reason = "Svar slutfört" if final else "Svar sparat"
                reply.is_final = final
                reply_rows.append(
                    _history_row(
                        reply,
                        user=reply.author,
                        reason=reason,
                        when=reply.written_at + timedelta(minutes=step),
                        kind="+" if step == 0 else "~",
                    )
                )
            reply.is_final = True

        Referral.history.model.objects.bulk_create(history, batch_size=BATCH)
        PriorImaging.history.model.objects.bulk_create(imaging_history, batch_size=BATCH)
        Assessment.history.model.objects.bulk_create(assessment_rows, batch_size=BATCH)
        Reply.history.model.objects.bulk_create(reply_rows, batch_size=BATCH)
        m2m_history = assessment_history.m2m_models[Assessment._meta.get_field("flags")]
        m2m_history.objects.bulk_create(
            [
                m2m_history(
                    history=assessment_rows[index],
                    id=link.pk,
                    assessment_id=link.assessment_id,
                    flag_id=link.flag_id,
                )
                for index, link in links
            ],
            batch_size=BATCH,
        )
        return len(referrals)

    def _facts(self, referral: Referral, rng: random.Random) -> tuple[rules.Facts, list[str]]:
        red = rng.sample(sorted(rules.RED_FLAGS), k=rng.choice([0, 0, 1, 1, 2]))
        red = [code for code in red if code != "child_under_18"]
        yellow = rng.sample(sorted(rules.YELLOW_FLAGS), k=rng.choice([0, 0, 0, 1]))
        emergency = ["cauda_equina"] if rng.random() < 0.01 else []
        facts = rules.Facts(
            referral_date=referral.written_on,
            age=referral.patient_age(),
            pain_weeks=rng.choice([None, 1, 2, 3, 4, 6, 8, 12, 20]),
            red_flags=frozenset(red),
            yellow_flags=frozenset(yellow),
            radicular=rng.random() < 0.3,
            improved=rng.choice([None, True, False]),
            requested=referral.requested,
            questions=frozenset({rng.choice(sorted(rules.QUESTIONS))}),
            trauma=rng.random() < 0.05,
            method_change_allowed=referral.method_change_allowed,
            emergency_signs=frozenset(emergency),
        )
        return facts, [*red, *yellow, *emergency]

    # --- one referral with a very long history --------------------------------------------

    def _heavy_referral(self, versions: int, context: dict) -> None:
        """One referral whose reply was saved `versions` times: the auditor's worst case."""
        reply = (
            Reply.objects.filter(referral__source=SOURCE)
            .select_related("referral")
            .order_by("pk")
            .first()
        )
        if reply is None:
            return
        start = reply.written_at
        rows = []
        for step in range(versions):
            reply.text = f"{reply.text.splitlines()[0]}\nVersion {step + 1}."
            rows.append(
                _history_row(
                    reply,
                    user=reply.author,
                    reason="Svar sparat",
                    when=start + timedelta(seconds=step),
                    kind="~",
                )
            )
        Reply.history.model.objects.bulk_create(rows, batch_size=BATCH)
        self.stdout.write(f"\nRemiss {reply.referral} har nu {versions} extra svarsversioner.")
