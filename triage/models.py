"""The triage data model; every model keeps its full history through django-simple-history."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from triage import personnummer, rules


def _choices(catalogue: dict[str, str]) -> list[tuple[str, str]]:
    return list(catalogue.items())


class Patient(models.Model):
    class Kind(models.TextChoices):
        PERSONNUMMER = "personnummer", _("Personnummer")
        SAMORDNINGSNUMMER = "samordningsnummer", _("Samordningsnummer")

    class Sex(models.TextChoices):
        FEMALE = "F", _("Kvinna")
        MALE = "M", _("Man")

    # Always the 12-digit canonical form, so that 10- and 12-digit input find the same row.
    personal_number = models.CharField(_("personnummer"), max_length=12, unique=True)
    kind = models.CharField(_("typ av nummer"), max_length=20, choices=Kind.choices)
    birth_date = models.DateField(_("födelsedatum"))
    name = models.CharField(_("namn"), max_length=200)
    sex = models.CharField(_("kön"), max_length=1, choices=Sex.choices)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patienter")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.formatted_number})"

    @property
    def formatted_number(self) -> str:
        return f"{self.personal_number[:8]}-{self.personal_number[8:]}"

    def age_at(self, on: date) -> int:
        return personnummer.age_at(self.birth_date, on)


class Flag(models.Model):
    """One entry of the routine's flag catalogue; codes are fixed, labels are editable."""

    class Kind(models.TextChoices):
        RED = "red", _("Röd flagga")
        YELLOW = "yellow", _("Gul flagga")
        EMERGENCY = "emergency", _("Akut tecken")

    code = models.SlugField(_("kod"), max_length=40, unique=True)
    kind = models.CharField(_("sort"), max_length=10, choices=Kind.choices)
    label = models.CharField(_("benämning"), max_length=200)
    position = models.PositiveSmallIntegerField(_("ordning"), default=0)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("flagga")
        verbose_name_plural = _("flaggor")
        ordering = ["kind", "position", "code"]

    def __str__(self) -> str:
        return self.label


def _weeks(field_label: str, default: int, maximum: int = 104) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        field_label,
        default=default,
        validators=[MinValueValidator(0), MaxValueValidator(maximum)],
    )


class GuidelineVersion(models.Model):
    """The routine's parameters (spec section 2) as one dated version; exactly one is active."""

    label = models.CharField(_("version"), max_length=50, unique=True)
    valid_from = models.DateField(_("gäller från"))
    is_active = models.BooleanField(_("aktiv"), default=False)
    note = models.TextField(_("kommentar"), blank=True)
    red_flag_weeks = _weeks(_("veckor för röd flagga"), 4)
    red_flag_borderline_weeks = _weeks(_("gränsfall från veckor (röd flagga)"), 3)
    yellow_flag_weeks = _weeks(_("veckor för gul flagga"), 8)
    radicular_treatment_weeks = _weeks(_("behandlingsveckor vid radikulär smärta"), 6)
    older_patient_age = models.PositiveSmallIntegerField(
        _("äldre patient från ålder"),
        default=65,
        validators=[MinValueValidator(18), MaxValueValidator(120)],
    )
    young_patient_age = models.PositiveSmallIntegerField(
        _("ung patient under ålder"),
        default=40,
        validators=[MinValueValidator(1), MaxValueValidator(120)],
    )
    recent_imaging_months = models.PositiveSmallIntegerField(
        _("aktuell avbildning, månader"),
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
    )
    priority_red_weeks = _weeks(_("priotid vid röd flagga, veckor"), 6, maximum=52)
    priority_other_weeks = _weeks(_("priotid i övrigt, veckor"), 8, maximum=52)
    created_at = models.DateTimeField(_("skapad"), auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("riktlinjeversion")
        verbose_name_plural = _("riktlinjeversioner")
        ordering = ["-valid_from", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="exactly_one_active_guideline",
            )
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.valid_from:%Y-%m-%d})"

    PARAMETER_FIELDS = (
        "red_flag_weeks",
        "red_flag_borderline_weeks",
        "yellow_flag_weeks",
        "radicular_treatment_weeks",
        "older_patient_age",
        "young_patient_age",
        "recent_imaging_months",
        "priority_red_weeks",
        "priority_other_weeks",
    )

    def clean(self) -> None:
        errors = {}
        if (
            self.red_flag_borderline_weeks is not None
            and self.red_flag_weeks is not None
            and self.red_flag_borderline_weeks > self.red_flag_weeks
        ):
            errors["red_flag_borderline_weeks"] = _(
                "Gränsfallet kan inte börja efter gränsen för röd flagga (%(weeks)s veckor)."
            ) % {"weeks": self.red_flag_weeks}
        if (
            self.young_patient_age is not None
            and self.older_patient_age is not None
            and self.young_patient_age > self.older_patient_age
        ):
            errors["young_patient_age"] = _(
                "Åldern för ung patient kan inte vara högre än åldern för äldre patient."
            )
        for name in ("priority_red_weeks", "priority_other_weeks"):
            # An examination always has a priority time: 0 would block every acceptance.
            if getattr(self, name) is not None and getattr(self, name) < 1:
                errors[name] = _("Priotiden måste vara minst 1 vecka.")
        if errors:
            raise ValidationError(errors)

    def to_parameters(self) -> rules.Parameters:
        return rules.Parameters(
            guideline_version=self.label,
            **{name: getattr(self, name) for name in self.PARAMETER_FIELDS},
        )


def worklist_rank() -> models.Case:
    """The worklist's first sort key: escalated emergencies, then what the referrer marked
    acute (FHIR stat, HL7 S), urgent as soon as possible (asap, A), urgent, and the rest.

    The referrer's priority does not decide anything (the routine does); it only puts the
    referrals that may hide an emergency in front of a radiologist first. The indexes of
    Referral.Meta hold this exact expression, so keep them built from this function.
    """
    return models.Case(
        models.When(status="escalated", then=0),
        models.When(referrer_priority="stat", then=1),
        models.When(referrer_priority="asap", then=2),
        models.When(referrer_priority="urgent", then=3),
        default=4,
        output_field=models.IntegerField(),
    )


class Referral(models.Model):
    class Status(models.TextChoices):
        NEW = "new", _("Ny")
        IN_TRIAGE = "in_triage", _("Under bedömning")
        AWAITING_INFORMATION = "awaiting_information", _("Väntar på komplettering")
        DECIDED = "decided", _("Beslutad")
        RETURNED = "returned", _("Återsänd")
        REREVIEW = "rereview", _("Eftergranskning")
        ESCALATED = "escalated", _("Akut – eskalerad")
        CANCELLED = "cancelled", _("Makulerad")

    class Examination(models.TextChoices):
        XRAY = "xray", _("Slätröntgen")
        MRI = "mri", _("MR")
        CT = "ct", _("DT")
        OTHER = "other", _("Annan")

    class ReferrerPriority(models.TextChoices):
        # FHIR R4 request-priority codes; HL7 v2 S and A map to stat and asap.
        ROUTINE = "routine", _("Rutin")
        URGENT = "urgent", _("Brådskande")
        ASAP = "asap", _("Snarast")
        STAT = "stat", _("Akut")

    source = models.CharField(_("avsändande system"), max_length=50)
    order_number = models.CharField(_("remissnummer"), max_length=64)
    received_at = models.DateTimeField(_("mottagen"))
    written_on = models.DateField(_("remissdatum"))
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="referrals", verbose_name=_("patient")
    )
    referring_unit = models.CharField(_("remitterande enhet"), max_length=200)
    referring_clinician = models.CharField(_("remittent"), max_length=200)
    requested = models.CharField(
        _("önskad undersökning"), max_length=10, choices=Examination.choices
    )
    requested_text = models.CharField(_("undersökning enligt remissen"), max_length=200, blank=True)
    anamnesis = models.TextField(_("anamnes och frågeställning"))
    method_change_allowed = models.BooleanField(_("metodbyte tillåtet"), default=True)
    referrer_priority = models.CharField(
        _("remittentens prioritet"),
        max_length=10,
        choices=ReferrerPriority.choices,
        default=ReferrerPriority.ROUTINE,
    )
    status = models.CharField(
        _("status"), max_length=25, choices=Status.choices, default=Status.NEW, db_index=True
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_referrals",
        verbose_name=_("tilldelad radiolog"),
    )
    due_date = models.DateField(_("senast utförd"), null=True, blank=True)
    # Bumped by every service write; a form carries the version it was opened with, so
    # a save from a stale form is detected instead of silently overwriting.
    version = models.PositiveIntegerField(_("version"), default=1)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("remiss")
        verbose_name_plural = _("remisser")
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "order_number"], name="one_referral_per_source_order"
            )
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="worklist_idx"),
            # The worklist's rows in display order (emergencies and the referrer's acute
            # ones first, then oldest first; selectors.worklist_page) for the default list
            # of referrals waiting for triage: page 1 reads 25 index entries instead of
            # sorting every waiting one. "Ta nästa" reads the same order.
            # status and referrer_priority are carried so that PostgreSQL can answer from
            # the index alone (it uses an expression index for an index-only scan only when
            # every column the expression reads is in the index as well).
            models.Index(
                worklist_rank(),
                "received_at",
                "id",
                "status",
                "referrer_priority",
                name="worklist_waiting_order_idx",
                condition=Q(status__in=["escalated", "new", "in_triage"]),
            ),
            # The same order within one examination (the worklist's "Undersökning" filter,
            # any status); status is carried in the index so that the per-status counts of
            # that filter are an index-only scan instead of a scan of the table.
            models.Index(
                "requested",
                worklist_rank(),
                "received_at",
                "id",
                "status",
                "referrer_priority",
                name="worklist_requested_idx",
            ),
            # The per-status counts of the worklist under the examination filter (GROUP BY
            # status WHERE requested = %s): an index-only scan of two short columns, and a
            # bounded one for each status when the counts are capped.
            models.Index(fields=["requested", "status"], name="referral_requested_status_idx"),
            # The auditor's filter by order number (audit.HistoryKind.filtered: every
            # history table is filtered on referral id IN (SELECT id … WHERE order_number =
            # %s)); the unique (source, order_number) index cannot serve it without source.
            models.Index(fields=["order_number"], name="referral_order_number_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source}/{self.order_number}"

    def patient_age(self) -> int:
        return self.patient.age_at(self.written_on)

    def can_transition_to(self, status: str) -> bool:
        return status in ALLOWED_TRANSITIONS.get(self.status, frozenset())


S = Referral.Status
_FINAL = frozenset({S.DECIDED, S.RETURNED, S.REREVIEW, S.ESCALATED})
# The one place that says which status may follow which. Final states can be reopened
# (a radiologist corrects a decision); awaiting information returns to the worklist when
# the referrer completes the referral.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.NEW: frozenset({S.IN_TRIAGE, S.AWAITING_INFORMATION, S.CANCELLED} | _FINAL),
    S.IN_TRIAGE: frozenset({S.NEW, S.AWAITING_INFORMATION, S.CANCELLED} | _FINAL),
    S.AWAITING_INFORMATION: frozenset({S.NEW, S.CANCELLED}),
    S.DECIDED: frozenset({S.IN_TRIAGE, S.CANCELLED}),
    S.RETURNED: frozenset({S.IN_TRIAGE}),
    S.REREVIEW: frozenset({S.IN_TRIAGE, S.CANCELLED}),
    S.ESCALATED: frozenset({S.IN_TRIAGE, S.DECIDED}),
    S.CANCELLED: frozenset(),
}
ACTION_TO_STATUS: dict[str, str] = {
    "escalate": S.ESCALATED,
    "mri": S.DECIDED,
    "ct": S.DECIDED,
    "xray": S.DECIDED,
    "rereview": S.REREVIEW,
    "return": S.RETURNED,
}
EXAMINATION_ACTIONS = frozenset({"mri", "ct", "xray"})


class PriorImaging(models.Model):
    class Modality(models.TextChoices):
        CT = "ct", _("DT")
        MRI = "mri", _("MR")
        XRAY = "xray", _("Slätröntgen")
        SCINTIGRAPHY = "scintigraphy", _("Skelettscintigrafi")

    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="prior_imaging", verbose_name=_("patient")
    )
    modality = models.CharField(_("modalitet"), max_length=15, choices=Modality.choices)
    region = models.CharField(_("region"), max_length=100)
    performed_on = models.DateField(_("datum"))
    covers_lumbar_spine = models.BooleanField(_("omfattar ländryggen"))
    finding = models.TextField(_("fynd"), blank=True)
    location = models.CharField(_("utförd vid"), max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("tidigare undersökning")
        verbose_name_plural = _("tidigare undersökningar")
        ordering = ["-performed_on", "-id"]

    def __str__(self) -> str:
        return f"{self.get_modality_display()} {self.region} {self.performed_on:%Y-%m-%d}"

    def to_rule_input(self) -> rules.PriorImaging:
        return rules.PriorImaging(
            modality=self.modality,
            region=self.region,
            date=self.performed_on,
            covers_lumbar_spine=self.covers_lumbar_spine,
        )


class AssessmentHistory(HistoricalRecords):
    """History of decisions with their flags, written by the service in one row per
    decision (simple-history would otherwise add a row for every m2m signal).

    simple-history reads a decision's flag links back before copying them into history;
    the service has just written them and hands them over (`_history_flag_links`), so
    the copy costs one INSERT and no read."""

    def create_historical_record_m2ms(self, history_instance, instance):
        links = getattr(instance, "_history_flag_links", None)
        if links is None:
            return super().create_historical_record_m2ms(history_instance, instance)
        (field,) = history_instance._history_m2m_fields
        model = self.m2m_models[field]
        model.objects.bulk_create(
            [
                model(
                    history=history_instance,
                    id=link.pk,
                    assessment_id=link.assessment_id,
                    flag_id=link.flag_id,
                )
                for link in links
            ]
        )


# Kept at module level so that the service can write a decision's history row itself.
assessment_history = AssessmentHistory(m2m_fields=["flags"])


class Assessment(models.Model):
    """A radiologist's decision: the facts entered, the recommendation shown, the choice."""

    referral = models.ForeignKey(
        Referral, on_delete=models.PROTECT, related_name="assessments", verbose_name=_("remiss")
    )
    guideline_version = models.ForeignKey(
        GuidelineVersion, on_delete=models.PROTECT, verbose_name=_("riktlinjeversion")
    )
    pain_weeks = models.DecimalField(
        _("smärtduration, veckor"), max_digits=5, decimal_places=1, null=True, blank=True
    )
    flags = models.ManyToManyField(Flag, blank=True, verbose_name=_("flaggor"))
    radicular = models.BooleanField(_("radikulär smärta"), default=False)
    treatment_weeks = models.DecimalField(
        _("behandlingsveckor"), max_digits=5, decimal_places=1, null=True, blank=True
    )
    improved = models.BooleanField(_("förbättrad"), null=True, blank=True)
    trauma = models.BooleanField(_("trauma"), default=False)
    questions = models.JSONField(_("frågeställningar"), default=list, blank=True)
    mri_contraindicated = models.BooleanField(_("MR kontraindicerad"), default=False)
    # The engine's recommendation exactly as the radiologist saw it (rules.recommendation_to_dict).
    recommendation = models.JSONField(_("förslag"))
    recommended_action = models.CharField(_("föreslagen åtgärd"), max_length=10)
    recommended_priority_weeks = models.PositiveSmallIntegerField(
        _("föreslagen priotid"), null=True, blank=True
    )
    action = models.CharField(_("beslutad åtgärd"), max_length=10, choices=_choices(rules.ACTIONS))
    priority_weeks = models.PositiveSmallIntegerField(_("priotid, veckor"), null=True, blank=True)
    override_reason = models.TextField(_("motivering till avvikelse"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, verbose_name=_("beslutad av")
    )
    decided_at = models.DateTimeField(_("beslutad"))
    history = assessment_history

    class Meta:
        verbose_name = _("bedömning")
        verbose_name_plural = _("bedömningar")
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.referral}: {self.get_action_display()}"

    @property
    def is_override(self) -> bool:
        return (self.action, self.priority_weeks) != (
            self.recommended_action,
            self.recommended_priority_weeks,
        )


class ReplyTemplate(models.Model):
    class Kind(models.TextChoices):
        REREVIEW_PRIOR_IMAGING = "rereview_prior_imaging", _("Eftergranskning av tidigare bild")
        NO_INDICATION = "no_indication", _("Indikation saknas")
        YOUNG_NO_TRAUMA = "young_no_trauma", _("Ung patient utan trauma")
        XRAY_CANNOT_ASSESS_METASTASIS = (
            "xray_cannot_assess_metastasis",
            _("Slätröntgen kan inte värdera metastaser"),
        )
        METHOD_CHANGE_NOT_ALLOWED = "method_change_not_allowed", _("Metodbyte ej tillåtet")
        MISSING_INFORMATION = "missing_information", _("Komplettering behövs")
        ACCEPTED = "accepted", _("Remissen accepterad")
        ESCALATED = "escalated", _("Akut handläggning")

    kind = models.CharField(_("sort"), max_length=40, choices=Kind.choices)
    title = models.CharField(_("rubrik"), max_length=200)
    body = models.TextField(_("text"))
    position = models.PositiveSmallIntegerField(_("ordning"), default=0)
    is_active = models.BooleanField(_("aktiv"), default=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("svarsmall")
        verbose_name_plural = _("svarsmallar")
        ordering = ["kind", "position", "id"]

    def __str__(self) -> str:
        return self.title


class Reply(models.Model):
    """The written reply to the referrer; every edit of the text is a history version."""

    referral = models.ForeignKey(
        Referral, on_delete=models.PROTECT, related_name="replies", verbose_name=_("remiss")
    )
    assessment = models.ForeignKey(
        Assessment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replies",
        verbose_name=_("bedömning"),
    )
    template = models.ForeignKey(
        ReplyTemplate,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("svarsmall"),
    )
    # The template's history row used, so the exact wording of the template is known later.
    template_history_id = models.PositiveBigIntegerField(_("mallversion"), null=True, blank=True)
    text = models.TextField(_("svarstext"))
    is_final = models.BooleanField(_("slutförd"), default=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, verbose_name=_("författare")
    )
    written_at = models.DateTimeField(_("skriven"))
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("svar")
        verbose_name_plural = _("svar")
        ordering = ["-written_at", "-id"]

    def __str__(self) -> str:
        return f"Svar på {self.referral}"


def due_date_for(received_on: date, priority_weeks: int) -> date:
    return received_on + timedelta(weeks=priority_weeks)


class Role(models.Model):
    """A role is a Django group (name and permissions) with a description for people."""

    group = models.OneToOneField(
        "auth.Group", on_delete=models.PROTECT, related_name="role", verbose_name=_("grupp")
    )
    description = models.TextField(_("beskrivning"))

    class Meta:
        verbose_name = _("roll")
        verbose_name_plural = _("roller")
        ordering = ["group__name"]

    def __str__(self) -> str:
        return self.group.name


class AccessLog(models.Model):
    """Who read, printed, exported or changed which patient's data (PDL 4 kap. 3 §).

    Rows are only ever inserted; nothing in the application updates or deletes them.
    """

    class Action(models.TextChoices):
        READ = "read", _("Läsning")
        PRINT = "print", _("Utskrift")
        EXPORT = "export", _("Export")
        CHANGE = "change", _("Ändring")

    at = models.DateTimeField(_("tidpunkt"), db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, verbose_name=_("användare")
    )
    role = models.CharField(_("roll"), max_length=100, blank=True)
    action = models.CharField(_("åtgärd"), max_length=10, choices=Action.choices)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="access_log", verbose_name=_("patient")
    )
    referral = models.ForeignKey(
        Referral,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="access_log",
        verbose_name=_("remiss"),
    )
    care_unit = models.CharField(_("vårdenhet"), max_length=200)
    view = models.CharField(_("vy"), max_length=100)

    class Meta:
        verbose_name = _("loggpost")
        verbose_name_plural = _("åtkomstlogg")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["patient", "at"], name="accesslog_patient_idx"),
            models.Index(fields=["user", "at"], name="accesslog_user_idx"),
            # The per-referral record's access log, newest first and capped
            # (audit.referral_record): read in index order instead of every row of the
            # referral sorted, however often the referral has been looked at.
            models.Index(fields=["referral", "at"], name="accesslog_referral_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.user} {self.get_action_display()} {self.patient_id}"


# --- Intake: senders, their API tokens, the inbox of rejected messages -------------------


class IntakeFormat(models.TextChoices):
    FHIR = "fhir", _("FHIR R4")
    HL7 = "hl7", _("HL7 v2")
    CSV = "csv", _("CSV (Excel)")


class Sender(models.Model):
    """A system that sends referrals (RIS, e-remiss); its name is the source of its referrals."""

    class Charset(models.TextChoices):
        UTF8 = "utf-8", _("UTF-8")
        LATIN1 = "iso-8859-1", _("ISO-8859-1 (Latin-1)")

    # A slug because it becomes Referral.source, is typed on the command line and is part of
    # the import user's name; it cannot be changed once referrals carry it.
    name = models.SlugField(_("namn"), max_length=50, unique=True)
    description = models.CharField(_("beskrivning"), max_length=200, blank=True)
    default_charset = models.CharField(
        _("standardteckenkodning"),
        max_length=20,
        choices=Charset.choices,
        default=Charset.UTF8,
        help_text=_("Används för HL7-meddelanden där MSH-18 är tomt."),
    )
    order_number_system = models.CharField(
        _("identifierarsystem för remissnummer"),
        max_length=200,
        blank=True,
        help_text=_("Skrivs i ServiceRequest.identifier.system vid export av beslut."),
    )
    requests_per_minute = models.PositiveIntegerField(
        _("anrop per minut"),
        default=120,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
    )
    is_active = models.BooleanField(_("aktiv"), default=True)
    # The inactive account that every history row written by this sender's imports names.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="intake_sender",
        editable=False,
        verbose_name=_("importanvändare"),
    )
    created_at = models.DateTimeField(_("skapad"), auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = _("avsändande system")
        verbose_name_plural = _("avsändande system")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A sender's secret for the HTTP API; only its SHA-256 hash is stored."""

    sender = models.ForeignKey(
        Sender, on_delete=models.PROTECT, related_name="api_tokens", verbose_name=_("avsändare")
    )
    label = models.CharField(_("benämning"), max_length=100, blank=True)
    # The first characters of the token, so that a department head can tell tokens apart.
    token_prefix = models.CharField(_("början av nyckeln"), max_length=12, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        verbose_name=_("skapad av"),
    )
    created_at = models.DateTimeField(_("skapad"), editable=False)
    revoked_at = models.DateTimeField(_("återkallad"), null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("återkallad av"),
    )
    history = HistoricalRecords(excluded_fields=["token_hash"])

    class Meta:
        verbose_name = _("API-nyckel")
        verbose_name_plural = _("API-nycklar")
        ordering = ["sender", "-created_at"]

    def __str__(self) -> str:
        return f"{self.sender} {self.token_prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ApiRequestWindow(models.Model):
    """Requests counted per token and minute, for throttling across all server processes."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    request_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "window_start"], name="one_window_per_token")
        ]

    def __str__(self) -> str:
        return f"{self.token_id} {self.window_start:%H:%M} {self.request_count}"


class IntakeMessage(models.Model):
    """A message that was taken in, kept once per (sender, message key) so a re-delivery is
    recognised as a duplicate even after later messages have changed the referral."""

    sender = models.ForeignKey(
        Sender,
        on_delete=models.PROTECT,
        related_name="intake_messages",
        verbose_name=_("avsändare"),
    )
    format = models.CharField(_("format"), max_length=10, choices=IntakeFormat.choices)
    # HL7: MSH-10; FHIR and CSV: the SHA-256 of the content (they carry no reliable id).
    message_key = models.CharField(_("meddelandenyckel"), max_length=200)
    content_hash = models.CharField(_("innehållets SHA-256"), max_length=64)
    label = models.CharField(_("ursprung"), max_length=300)
    received_at = models.DateTimeField(_("mottaget"), db_index=True)
    raw = models.BinaryField(_("råinnehåll"))
    # One entry per order in the message: {"order_number", "outcome", "referral_id"}.
    outcome = models.JSONField(_("utfall"), default=list)
    warnings = models.TextField(_("varningar"), blank=True)

    class Meta:
        verbose_name = _("mottaget meddelande")
        verbose_name_plural = _("mottagna meddelanden")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "message_key"], name="one_intake_per_sender_message"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender} {self.label}"


class InboxMessage(models.Model):
    """A rejected message, kept byte for byte with its error until it is re-processed or
    dismissed: nothing a sender delivered is dropped silently."""

    class Status(models.TextChoices):
        REJECTED = "rejected", _("Avvisat – väntar på åtgärd")
        REPROCESSED = "reprocessed", _("Ombearbetat")
        DISMISSED = "dismissed", _("Avfört")

    sender = models.ForeignKey(
        Sender, on_delete=models.PROTECT, related_name="inbox_messages", verbose_name=_("avsändare")
    )
    format = models.CharField(_("format"), max_length=10, choices=IntakeFormat.choices)
    received_at = models.DateTimeField(_("mottaget"), db_index=True)
    origin = models.CharField(_("ursprung"), max_length=300)
    message_id = models.CharField(_("meddelande-id"), max_length=200, blank=True)
    order_number = models.CharField(_("remissnummer"), max_length=64, blank=True)
    raw = models.BinaryField(_("råinnehåll"))
    content_hash = models.CharField(_("innehållets SHA-256"), max_length=64)
    error = models.TextField(_("fel"))
    status = models.CharField(
        _("status"), max_length=15, choices=Status.choices, default=Status.REJECTED, db_index=True
    )
    corrected_text = models.TextField(
        _("korrigerat innehåll"),
        blank=True,
        help_text=_("Lämna tomt för att ombearbeta originalet (t.ex. efter ändrad inställning)."),
    )
    # Re-deliveries of the same rejected content are counted here, not stored again.
    delivery_count = models.PositiveIntegerField(_("antal mottagningar"), default=1)
    last_received_at = models.DateTimeField(_("senast mottaget"))
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("hanterat av"),
    )
    handled_at = models.DateTimeField(_("hanterat"), null=True, blank=True)
    dismiss_reason = models.TextField(_("motivering till avförande"), blank=True)
    referral = models.ForeignKey(
        Referral,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("remiss"),
    )
    # raw never changes, so it is not copied into every history row; the counters change on
    # every re-delivery and are not decisions anyone needs to audit.
    history = HistoricalRecords(excluded_fields=["raw", "delivery_count", "last_received_at"])

    class Meta:
        verbose_name = _("inkorgsmeddelande")
        verbose_name_plural = _("inkorg (avvisade meddelanden)")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "content_hash"],
                condition=Q(status="rejected"),
                name="one_open_inbox_message_per_content",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender} {self.origin}"
