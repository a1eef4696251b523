"""`manage.py generate_load_data --referrals N`: hospital-scale data for benchmarks.

Writes referrals, prior imaging, decisions (with flags), replies and their history in bulk,
the way the services would have written them one by one: every history row has its user,
reason and time. Repeatable: the same --seed gives the same data.

Only Skatteverket's published test personnummer exist in this project, so the patients are
those ~80 people, each with many referrals; the pages measured scale with referrals and
history rows, not with patients.
"""

from __future__ import annotations

import json
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


class _Writer:
    """Rows as plain dicts (attname → value), written with one COPY per table and batch.

    Model instances and bulk_create() cost more than the data itself at this size (most of
    the time went to building instances and to the driver adapting arrays for UNNEST), so
    rows stay dicts; ids that other rows refer to are drawn from the table's own sequence
    first, so the database ends up exactly as if the rows had been inserted one by one.
    Other databases than PostgreSQL get the same rows through bulk_create().
    """

    def __init__(self) -> None:
        self._defaults: dict[type[models.Model], dict[str, Any]] = {}

    def row(self, model: type[models.Model], **values: Any) -> dict[str, Any]:
        if model not in self._defaults:
            self._defaults[model] = {
                field.attname: field.get_default()
                for field in model._meta.concrete_fields
                if not field.primary_key
            }
        row = dict(self._defaults[model])
        row.update(values)
        return row

    def history(
        self,
        model: type[models.Model],
        row: dict,
        *,
        user_id,
        reason: str,
        when,
        kind: str,
        **overrides,
    ) -> dict[str, Any]:
        """A history row as simple-history would write it; `overrides` give an earlier state."""
        values = dict(row)
        values.update(overrides)
        values.update(
            history_date=when,
            history_type=kind,
            history_user_id=user_id,
            history_change_reason=reason,
        )
        return values

    def ids(self, model: type[models.Model], rows: list[dict], attname: str = "id") -> None:
        """Give each row the next id of the table's sequence, in order."""
        if not rows:
            return
        pk = model._meta.get_field(attname)
        table = model._meta.db_table
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [connection.ops.quote_name(table), pk.column, len(rows)],
                )
                values = sorted(value for (value,) in cursor.fetchall())
            else:
                quoted = connection.ops.quote_name
                cursor.execute(f"SELECT COALESCE(MAX({quoted(pk.column)}), 0) FROM {quoted(table)}")  # noqa: S608
                first = cursor.fetchone()[0] + 1
                values = list(range(first, first + len(rows)))
        for row, value in zip(rows, values, strict=True):
            row[attname] = value

    def write(self, model: type[models.Model], rows: list[dict]) -> None:
        if not rows:
            return
        fields = [field for field in model._meta.concrete_fields if field.attname in rows[0]]
        if connection.vendor != "postgresql":
            model.objects.bulk_create([model(**row) for row in rows], batch_size=BATCH)
            return
        names = [field.attname for field in fields]
        json_names = [field.attname for field in fields if isinstance(field, models.JSONField)]
        quoted = connection.ops.quote_name
        columns = ", ".join(quoted(field.column) for field in fields)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                f"COPY {quoted(model._meta.db_table)} ({columns}) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                if json_names:
                    row = {**row, **{name: json.dumps(row[name]) for name in json_names}}
                copy.write_row([row[name] for name in names])


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
        if connection.vendor == "postgresql":
            # Fresh statistics, so that the first queries on the new data get their real plans.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
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
            "writer": _Writer(),
        }

    # --- one batch ----------------------------------------------------------------------

    def _batch(self, batch: range, rng: random.Random, context: dict) -> int:
        write: _Writer = context["writer"]
        importer, now = context["importer"].pk, context["now"]
        referrals: list[tuple[dict, Patient]] = []
        for index in batch:
            patient = rng.choice(context["patients"])
            # Older referrals are mostly decided; the last weeks' are still on the worklist.
            received = now - timedelta(minutes=rng.randint(0, 730 * 24 * 60))
            row = write.row(
                Referral,
                source=SOURCE,
                order_number=f"L{context['seed']}-{context['offset'] + index:07d}",
                received_at=received,
                written_on=max(
                    received.date() - timedelta(days=rng.randint(0, 3)), patient.birth_date
                ),
                patient_id=patient.pk,
                referring_unit=rng.choice(UNITS),
                referring_clinician="Dr Last",
                requested=rng.choice(["xray", "xray", "mri", "mri", "mri", "ct", "other"]),
                anamnesis="Ländryggssmärta. Frågeställning: diskbråck? kotkompression?",
                method_change_allowed=rng.random() > 0.1,
            )
            referrals.append((row, patient))
        imaging = []
        for referral, _patient in referrals:
            if rng.random() < 0.15:
                imaging.append(
                    write.row(
                        PriorImaging,
                        patient_id=referral["patient_id"],
                        modality=rng.choice(["ct", "mri", "xray"]),
                        region=rng.choice(["buk", "ländrygg", "aorta", "thorax"]),
                        performed_on=referral["written_on"] - timedelta(days=rng.randint(20, 900)),
                        covers_lumbar_spine=rng.random() < 0.7,
                        finding="Inga kotkompressioner.",
                        location="Akademiska sjukhuset",
                    )
                )
        write.ids(PriorImaging, imaging)
        imaging_history = [
            write.history(PriorImaging, item, user_id=importer, reason="Import", when=now, kind="+")
            for item in imaging
        ]

        # Decide in memory first, so every referral is inserted once in its final state and
        # its creation row in the history shows the state it arrived in.
        decided = [
            (r, p) for r, p in referrals if (now - r["received_at"]).days > 14 or rng.random() < 0.3
        ]
        assessments, flag_rows = [], []
        for referral, patient in decided:
            facts, flag_codes = self._facts(referral, patient, rng)
            recommendation = rules.recommend(facts, context["params"])
            user = rng.choice(context["radiologists"])
            action = recommendation.action
            assessments.append(
                write.row(
                    Assessment,
                    guideline_version_id=context["guideline"].pk,
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
                    decided_by_id=user.pk,
                    decided_at=referral["received_at"] + timedelta(hours=rng.randint(2, 200)),
                )
            )
            flag_rows.append(flag_codes)
            referral["status"] = ACTION_TO_STATUS[action]
            referral["assigned_to_id"] = user.pk
            referral["version"] = 3
            if action in EXAMINATION_ACTIONS:
                referral["due_date"] = due_date_for(
                    timezone.localdate(referral["received_at"]), recommendation.priority_weeks
                )
        write.ids(Referral, [referral for referral, _patient in referrals])
        history = [
            write.history(
                Referral,
                r,
                user_id=importer,
                reason=f"Import {r['order_number']}",
                when=r["received_at"],
                kind="+",
                status=Referral.Status.NEW,
                assigned_to_id=None,
                version=1,
                due_date=None,
            )
            for r, _patient in referrals
        ]
        for (referral, _patient), assessment in zip(decided, assessments, strict=True):
            assessment["referral_id"] = referral["id"]
        write.ids(Assessment, assessments)
        through = Assessment.flags.through
        links = [
            (
                index,
                write.row(
                    through, assessment_id=assessment["id"], flag_id=context["flags"][code].pk
                ),
            )
            for index, (assessment, codes) in enumerate(zip(assessments, flag_rows, strict=True))
            for code in codes
        ]
        write.ids(through, [link for _index, link in links])
        assessment_rows = [
            write.history(
                Assessment,
                a,
                user_id=a["decided_by_id"],
                reason="Beslut enligt förslag",
                when=a["decided_at"],
                kind="+",
            )
            for a in assessments
        ]
        write.ids(Assessment.history.model, assessment_rows, "history_id")
        for (referral, _patient), assessment in zip(decided, assessments, strict=True):
            opened = (
                referral["received_at"] + (assessment["decided_at"] - referral["received_at"]) / 2
            )
            history.append(
                write.history(
                    Referral,
                    referral,
                    user_id=referral["assigned_to_id"],
                    reason="Öppnad för bedömning",
                    when=opened,
                    kind="~",
                    status=Referral.Status.IN_TRIAGE,
                    version=2,
                    due_date=None,
                )
            )
            history.append(
                write.history(
                    Referral,
                    referral,
                    user_id=referral["assigned_to_id"],
                    reason="Beslut enligt förslag",
                    when=assessment["decided_at"],
                    kind="~",
                )
            )

        replies = []
        for (referral, _patient), assessment in zip(decided, assessments, strict=True):
            template = context["templates"].get(
                reply_kind_for(assessment["action"], assessment["recommendation"])
            )
            if template is None:
                continue
            replies.append(
                write.row(
                    Reply,
                    referral_id=referral["id"],
                    assessment_id=assessment["id"],
                    template_id=template.pk,
                    template_history_id=context["template_versions"][template.pk],
                    text=template.body,
                    is_final=True,
                    author_id=assessment["decided_by_id"],
                    written_at=assessment["decided_at"] + timedelta(minutes=3),
                )
            )
        write.ids(Reply, replies)
        reply_rows = []
        for reply in replies:
            # Drafts and edits before the final text, as radiologists work.
            steps = rng.randint(4, 8)
            for step in range(steps):
                final = step == steps - 1
                reply_rows.append(
                    write.history(
                        Reply,
                        reply,
                        user_id=reply["author_id"],
                        reason="Svar slutfört" if final else "Svar sparat",
                        when=reply["written_at"] + timedelta(minutes=step),
                        kind="+" if step == 0 else "~",
                        is_final=final,
                    )
                )

        write.write(PriorImaging, imaging)
        write.write(Referral, [referral for referral, _patient in referrals])
        write.write(Assessment, assessments)
        write.write(through, [link for _index, link in links])
        write.write(Reply, replies)
        write.write(Referral.history.model, history)
        write.write(PriorImaging.history.model, imaging_history)
        write.write(Assessment.history.model, assessment_rows)
        write.write(Reply.history.model, reply_rows)
        m2m_history = assessment_history.m2m_models[Assessment._meta.get_field("flags")]
        write.write(
            m2m_history,
            [
                write.row(
                    m2m_history,
                    history_id=assessment_rows[index]["history_id"],
                    id=link["id"],
                    assessment_id=link["assessment_id"],
                    flag_id=link["flag_id"],
                )
                for index, link in links
            ],
        )
        return len(referrals)

    def _facts(
        self, referral: dict, patient: Patient, rng: random.Random
    ) -> tuple[rules.Facts, list[str]]:
        red = rng.sample(sorted(rules.RED_FLAGS), k=rng.choice([0, 0, 1, 1, 2]))
        red = [code for code in red if code != "child_under_18"]
        yellow = rng.sample(sorted(rules.YELLOW_FLAGS), k=rng.choice([0, 0, 0, 1]))
        emergency = ["cauda_equina"] if rng.random() < 0.01 else []
        facts = rules.Facts(
            referral_date=referral["written_on"],
            age=patient.age_at(referral["written_on"]),
            pain_weeks=rng.choice([None, 1, 2, 3, 4, 6, 8, 12, 20]),
            red_flags=frozenset(red),
            yellow_flags=frozenset(yellow),
            radicular=rng.random() < 0.3,
            improved=rng.choice([None, True, False]),
            requested=referral["requested"],
            questions=frozenset({rng.choice(sorted(rules.QUESTIONS))}),
            trauma=rng.random() < 0.05,
            method_change_allowed=referral["method_change_allowed"],
            emergency_signs=frozenset(emergency),
        )
        return facts, [*red, *yellow, *emergency]

    # --- one referral with a very long history --------------------------------------------

    def _heavy_referral(self, versions: int, context: dict) -> None:
        """One referral whose reply was saved `versions` times: the auditor's worst case."""
        write: _Writer = context["writer"]
        reply = (
            Reply.objects.filter(referral__source=SOURCE)
            .select_related("referral")
            .order_by("pk")
            .first()
        )
        if reply is None:
            return
        current = {
            field.attname: getattr(reply, field.attname) for field in Reply._meta.concrete_fields
        }
        first_line = reply.text.splitlines()[0]
        rows = []
        for step in range(versions):
            rows.append(
                write.history(
                    Reply,
                    current,
                    user_id=reply.author_id,
                    reason="Svar sparat",
                    when=reply.written_at + timedelta(seconds=step),
                    kind="~",
                    text=f"{first_line}\nVersion {step + 1}.",
                )
            )
        with transaction.atomic():
            write.write(Reply.history.model, rows)
        self.stdout.write(f"\nRemiss {reply.referral} har nu {versions} extra svarsversioner.")
