"""Every write: atomic, keyword-only, and recorded in the history with user and reason."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from triage import personnummer, rules
from triage.models import (
    ACTION_TO_STATUS,
    EXAMINATION_ACTIONS,
    AccessLog,
    Assessment,
    Flag,
    GuidelineVersion,
    Patient,
    PriorImaging,
    Referral,
    Reply,
    ReplyTemplate,
    assessment_history,
    due_date_for,
)
from triage.permissions import user_role_names
from triage.reply_text import TemplateBodyError, check_body, unfilled_gaps
from triage.selectors import (
    FLAG_KINDS,
    WORKLIST_ORDER,
    AssessmentInput,
    active_guideline,
    build_facts,
    draft_reply,
    recommendation_fingerprint,
)


class ServiceError(Exception):
    """A refused write, with a Swedish message for the person who tried it.

    `field` names the form field the message belongs next to, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StaleReferral(ServiceError):
    """The referral changed since the form was opened."""


def _save(instance: models.Model, *, user: AbstractBaseUser | None, reason: str) -> None:
    instance._history_user = user
    instance._change_reason = reason
    instance.save()


# --- Patients ---------------------------------------------------------------------------


def patient_register(
    *,
    personal_number: str,
    name: str,
    reference_date: date,
    user: AbstractBaseUser | None,
    reason: str,
) -> Patient:
    """Find the patient by personnummer (any accepted form) or create them; update the name."""
    try:
        identity = personnummer.parse_personnummer(personal_number, reference_date=reference_date)
    except personnummer.PersonnummerError as error:
        raise ServiceError(str(error)) from error
    name = name.strip()
    if not name:
        raise ServiceError(_("Patientens namn saknas."))
    with transaction.atomic():
        patient = (
            Patient.objects.select_for_update().filter(personal_number=identity.number).first()
        )
        if patient is None:
            patient = Patient(
                personal_number=identity.number,
                kind=identity.kind,
                birth_date=identity.birth_date,
                sex=identity.sex,
                name=name,
            )
            _save(patient, user=user, reason=reason)
        elif patient.name != name:
            patient.name = name
            _save(patient, user=user, reason=reason)
    return patient


# --- Referrals ------------------------------------------------------------------------


def referral_create(
    *,
    user: AbstractBaseUser | None,
    reason: str,
    source: str,
    order_number: str,
    patient: Patient,
    received_at: datetime,
    written_on: date,
    referring_unit: str,
    referring_clinician: str,
    requested: str,
    anamnesis: str,
    method_change_allowed: bool = True,
    requested_text: str = "",
    referrer_priority: str = Referral.ReferrerPriority.ROUTINE,
) -> Referral:
    """Store a new referral; the same (source, order number) twice is refused."""
    if requested not in Referral.Examination.values:
        raise ServiceError(_("Okänd undersökning: %(code)s") % {"code": requested})
    if referrer_priority not in Referral.ReferrerPriority.values:
        raise ServiceError(_("Okänd prioritet: %(code)s") % {"code": referrer_priority})
    if written_on > timezone.localdate(received_at):
        raise ServiceError(_("Remissdatumet kan inte ligga efter mottagningsdatumet."))
    if written_on < patient.birth_date:
        raise ServiceError(_("Remissdatumet ligger före patientens födelsedatum."))
    with transaction.atomic():
        if Referral.objects.filter(source=source, order_number=order_number).exists():
            raise ServiceError(
                _("Remissen %(source)s/%(number)s finns redan.")
                % {"source": source, "number": order_number}
            )
        referral = Referral(
            source=source,
            order_number=order_number,
            patient=patient,
            received_at=received_at,
            written_on=written_on,
            referring_unit=referring_unit,
            referring_clinician=referring_clinician,
            requested=requested,
            requested_text=requested_text,
            anamnesis=anamnesis,
            method_change_allowed=method_change_allowed,
            referrer_priority=referrer_priority,
        )
        _save(referral, user=user, reason=reason)
    return referral


def _check_version(referral: Referral, expected_version: int | None) -> None:
    if expected_version is not None and referral.version != expected_version:
        raise StaleReferral(
            _(
                "Remissen har ändrats av någon annan sedan du öppnade den "
                "(nu status: %(status)s). Ladda om sidan för att se ändringen."
            )
            % {"status": referral.get_status_display()}
        )


def _transition(referral: Referral, status: str) -> None:
    if not referral.can_transition_to(status):
        raise ServiceError(
            _("En remiss med status ”%(current)s” kan inte få status ”%(new)s”.")
            % {
                "current": referral.get_status_display(),
                "new": Referral.Status(status).label,
            }
        )
    referral.status = status
    referral.version += 1


def referral_set_status(
    *,
    referral: Referral,
    status: str,
    user: AbstractBaseUser | None,
    reason: str,
    expected_version: int | None = None,
) -> Referral:
    """Move a referral to another status, if the workflow allows that step."""
    with transaction.atomic():
        locked = Referral.objects.select_for_update().get(pk=referral.pk)
        _check_version(locked, expected_version)
        _transition(locked, status)
        if status == Referral.Status.NEW:
            locked.assigned_to = None
        _save(locked, user=user, reason=reason)
    return locked


def referral_claim_next(*, user: AbstractBaseUser) -> Referral | None:
    """Give the next unclaimed new referral to this radiologist, in the worklist's order
    (the referrer's acute ones first, then the oldest); None when none is left.

    On PostgreSQL, rows another radiologist is claiming at this moment are skipped rather
    than waited for, so two people pressing "Ta nästa" together get different referrals.
    """
    with transaction.atomic():
        referral = (
            Referral.objects.select_for_update(skip_locked=True)
            .filter(status=Referral.Status.NEW, assigned_to__isnull=True)
            .order_by(*WORKLIST_ORDER)
            .first()
        )
        if referral is None:
            return None
        _transition(referral, Referral.Status.IN_TRIAGE)
        referral.assigned_to = user
        _save(referral, user=user, reason=_("Tagen ur arbetslistan (Ta nästa)"))
    return referral


def referral_open(*, referral: Referral, user: AbstractBaseUser) -> Referral:
    """Claim a new referral that a radiologist opens from the worklist."""
    with transaction.atomic():
        locked = Referral.objects.select_for_update().get(pk=referral.pk)
        if locked.status != Referral.Status.NEW:
            return locked
        _transition(locked, Referral.Status.IN_TRIAGE)
        locked.assigned_to = user
        _save(locked, user=user, reason=_("Öppnad för bedömning"))
    return locked


def referral_emergency_handled(
    *, referral: Referral, note: str, user: AbstractBaseUser, expected_version: int | None = None
) -> Referral:
    """Close an escalated referral: the referrer was reached and the examination is today."""
    note = note.strip()
    if not note:
        raise ServiceError(
            _("Skriv vad som ordnats (t.ex. vem som kontaktades och vilken undersökning)."),
            field="note",
        )
    with transaction.atomic():
        locked = Referral.objects.select_for_update().get(pk=referral.pk)
        _check_version(locked, expected_version)
        if locked.status != Referral.Status.ESCALATED:
            raise ServiceError(_("Remissen är inte eskalerad."))
        _transition(locked, Referral.Status.DECIDED)
        locked.due_date = timezone.localdate()
        locked.assigned_to = user
        _save(locked, user=user, reason=_("Akut handlagd: %(note)s") % {"note": note})
    return locked


def referral_request_information(
    *,
    referral: Referral,
    missing: str,
    user: AbstractBaseUser,
    expected_version: int | None = None,
) -> Reply:
    """Send the referral back for komplettering, with a draft reply listing what is missing."""
    missing = missing.strip()
    if not missing:
        raise ServiceError(_("Skriv vad som saknas i remissen."), field="missing")
    with transaction.atomic():
        locked = Referral.objects.select_for_update().select_related("patient").get(pk=referral.pk)
        _check_version(locked, expected_version)
        _transition(locked, Referral.Status.AWAITING_INFORMATION)
        locked.assigned_to = user
        locked.due_date = None
        _save(
            locked, user=user, reason=_("Komplettering begärd: %(missing)s") % {"missing": missing}
        )
        template, text = draft_reply(
            locked,
            action="return",
            priority_weeks=None,
            recommendation=None,
            missing=missing,
            kind="missing_information",
        )
        reply = reply_save(
            referral=locked,
            text=text or missing,
            template=template,
            user=user,
        )
    return reply


def referral_add_information(
    *, referral: Referral, information: str, user: AbstractBaseUser | None, reason: str
) -> Referral:
    """The referrer completed the referral: append the text and put it back on the worklist."""
    information = information.strip()
    if not information:
        raise ServiceError(_("Kompletteringen är tom."), field="information")
    with transaction.atomic():
        locked = Referral.objects.select_for_update().get(pk=referral.pk)
        _transition(locked, Referral.Status.NEW)
        stamp = timezone.localtime().strftime("%Y-%m-%d %H:%M")
        locked.anamnesis = f"{locked.anamnesis}\n\nKomplettering {stamp}:\n{information}"
        locked.assigned_to = None
        _save(locked, user=user, reason=reason)
    return locked


# --- Prior imaging -------------------------------------------------------------------------


def prior_imaging_add(
    *,
    patient: Patient,
    modality: str,
    region: str,
    performed_on: date,
    covers_lumbar_spine: bool,
    finding: str = "",
    location: str = "",
    user: AbstractBaseUser | None,
    reason: str,
) -> PriorImaging:
    """Record an earlier examination of the patient."""
    if modality not in PriorImaging.Modality.values:
        raise ServiceError(_("Okänd modalitet: %(code)s") % {"code": modality})
    if performed_on > timezone.localdate():
        raise ServiceError(_("Undersökningsdatumet kan inte ligga i framtiden."))
    if performed_on < patient.birth_date:
        raise ServiceError(_("Undersökningsdatumet ligger före patientens födelsedatum."))
    imaging = PriorImaging(
        patient=patient,
        modality=modality,
        region=region.strip(),
        performed_on=performed_on,
        covers_lumbar_spine=covers_lumbar_spine,
        finding=finding.strip(),
        location=location.strip(),
    )
    with transaction.atomic():
        _save(imaging, user=user, reason=reason)
    return imaging


# --- Decisions -------------------------------------------------------------------------


def validate_assessment_input(entered: AssessmentInput) -> None:
    for label, value in (
        (_("Smärtduration"), entered.pain_weeks),
        (_("Behandlingstid"), entered.treatment_weeks),
    ):
        if value is not None and value < 0:
            raise ServiceError(_("%(field)s kan inte vara negativ.") % {"field": label})
    unknown = sorted(set(entered.flag_codes) - set(FLAG_KINDS))
    if unknown:
        raise ServiceError(_("Okänd flagga: %(codes)s") % {"codes": ", ".join(unknown)})
    bad_questions = sorted(set(entered.questions) - set(rules.QUESTIONS))
    if bad_questions:
        raise ServiceError(
            _("Okänd frågeställning: %(codes)s") % {"codes": ", ".join(bad_questions)}
        )


def assessment_decide(
    *,
    referral: Referral,
    entered: AssessmentInput,
    action: str,
    priority_weeks: int | None,
    override_reason: str = "",
    user: AbstractBaseUser,
    expected_version: int | None = None,
    expected_guideline_id: int | None = None,
    expected_fingerprint: str | None = None,
) -> Assessment:
    """Record the radiologist's decision with the recommendation it was shown, and apply it.

    The recommendation is computed again here from the same facts and the active guideline,
    so what is stored is what the engine says, not what a client claims it said.
    """
    validate_assessment_input(entered)
    if action not in rules.ACTIONS:
        raise ServiceError(_("Okänd åtgärd: %(code)s") % {"code": action}, field="action")
    if action == "escalate":
        # An emergency is never queued for weeks, whatever the form said.
        priority_weeks = 0
    elif action in EXAMINATION_ACTIONS:
        if priority_weeks is None or not 1 <= priority_weeks <= 52:
            raise ServiceError(
                _("Ange priotid i veckor (1–52) för en undersökning."), field="priority_weeks"
            )
    else:
        priority_weeks = None

    with transaction.atomic():
        locked = Referral.objects.select_for_update().select_related("patient").get(pk=referral.pk)
        _check_version(locked, expected_version)
        _transition(locked, ACTION_TO_STATUS[action])  # refused before anything is written
        guideline = active_guideline()
        if expected_guideline_id is not None and guideline.pk != expected_guideline_id:
            raise StaleReferral(
                _("Riktlinjen har bytts till version %(label)s sedan du öppnade sidan.")
                % {"label": guideline.label}
            )
        recommendation = rules.recommend(build_facts(locked, entered), guideline.to_parameters())
        if (
            expected_fingerprint is not None
            and recommendation_fingerprint(recommendation) != expected_fingerprint
        ):
            # Accepting means accepting what was on screen; if it differs, show it again.
            raise StaleReferral(
                _("Förslaget har ändrats (nu: %(action)s). Kontrollera och godkänn igen.")
                % {"action": rules.ACTIONS[recommendation.action]}
            )
        if (
            recommendation.action == "escalate"
            and action != "escalate"
            and not override_reason.strip()
        ):
            raise ServiceError(
                _("Akuta tecken finns: remissen eskaleras, eller motivera avvikelsen."),
                field="override_reason",
            )
        is_override = (action, priority_weeks) != (
            recommendation.action,
            recommendation.priority_weeks,
        )
        if is_override and not override_reason.strip():
            raise ServiceError(
                _("Motivera varför du avviker från förslaget (%(action)s).")
                % {"action": rules.ACTIONS[recommendation.action]},
                field="override_reason",
            )

        now = timezone.now()
        assessment = Assessment(
            referral=locked,
            guideline_version=guideline,
            pain_weeks=entered.pain_weeks,
            radicular=entered.radicular,
            treatment_weeks=entered.treatment_weeks,
            improved=entered.improved,
            trauma=entered.trauma,
            questions=sorted(entered.questions),
            mri_contraindicated=entered.mri_contraindicated,
            recommendation=rules.recommendation_to_dict(recommendation),
            recommended_action=recommendation.action,
            recommended_priority_weeks=recommendation.priority_weeks,
            action=action,
            priority_weeks=priority_weeks,
            override_reason=override_reason.strip() if is_override else "",
            decided_by=user,
            decided_at=now,
        )
        reason = (
            _("Beslut med avvikelse från förslaget") if is_override else _("Beslut enligt förslag")
        )
        _save_with_flags(
            assessment,
            Flag.objects.filter(code__in=entered.flag_codes),
            user=user,
            reason=reason,
        )

        locked.assigned_to = user
        locked.due_date = (
            due_date_for(timezone.localdate(locked.received_at), priority_weeks)
            if action in EXAMINATION_ACTIONS
            else None
        )
        _save(locked, user=user, reason=reason)
    # Nothing is read after the commit: a lost connection now must not turn a stored
    # decision into an error page.
    return assessment


def _save_with_flags(assessment: Assessment, flags, *, user: AbstractBaseUser, reason: str) -> None:
    """Save a new decision and its flags, with one history row holding both (instead of
    one per m2m signal)."""
    assessment.skip_history_when_saving = True
    try:
        assessment.save()
    finally:
        del assessment.skip_history_when_saving
    # A new decision has no links yet, so they are inserted directly, ids returned, rather
    # than through flags.set(), which reads the existing links first.
    through = Assessment.flags.through
    links = through.objects.bulk_create(
        [through(assessment_id=assessment.pk, flag_id=flag.pk) for flag in flags]
    )
    if not getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
        return  # simple-history's own switch (the benchmark's baseline), as its signals obey
    assessment._history_user = user
    assessment._change_reason = reason
    if all(link.pk is not None for link in links):
        # The history copies these links without reading them back (AssessmentHistory).
        assessment._history_flag_links = links
    assessment_history.create_historical_record(assessment, "+")


# --- Replies ---------------------------------------------------------------------------


def reply_save(
    *,
    referral: Referral,
    text: str,
    user: AbstractBaseUser,
    template: ReplyTemplate | None = None,
    assessment: Assessment | None = None,
    final: bool = False,
    reply: Reply | None = None,
) -> Reply:
    """Write or revise the reply text; a final reply can no longer be changed."""
    text = text.strip()
    if not text:
        raise ServiceError(_("Svarstexten är tom."), field="text")
    gaps = unfilled_gaps(text)
    if final and gaps:
        # A letter must not leave the department with "[fynd]" in it.
        raise ServiceError(
            _("Fyll i eller ta bort: %(gaps)s") % {"gaps": ", ".join(f"[{gap}]" for gap in gaps)},
            field="text",
        )
    with transaction.atomic():
        # Lock the referral so that two saves of the same reply (a double click, two tabs)
        # are serialised: the second one finds the first one's reply instead of adding one.
        Referral.objects.select_for_update().filter(pk=referral.pk).exists()
        if reply is None and assessment is not None:
            reply = Reply.objects.filter(referral=referral, assessment=assessment).first()
        if reply is None:
            reply = Reply(referral=referral, assessment=assessment, author=user)
        else:
            reply = Reply.objects.select_for_update().get(pk=reply.pk)
            if reply.is_final:
                raise ServiceError(_("Svaret är redan slutfört och kan inte ändras."))
        if template is not None:
            reply.template = template
            latest = template.history.order_by("-history_id").values_list("history_id", flat=True)
            reply.template_history_id = latest.first()
        reply.text = text
        reply.is_final = final
        reply.author = user
        reply.written_at = timezone.now()
        _save(reply, user=user, reason=_("Svar slutfört") if final else _("Svar sparat"))
    return reply


# --- Guideline versions --------------------------------------------------------------------


def guideline_activate(
    *, version: GuidelineVersion, user: AbstractBaseUser | None, reason: str
) -> GuidelineVersion:
    """Make this version the active one; the previous one is deactivated in the same step."""
    with transaction.atomic():
        current = list(
            GuidelineVersion.objects.select_for_update()
            .filter(is_active=True)
            .exclude(pk=version.pk)
        )
        for old in current:
            old.is_active = False
            _save(old, user=user, reason=reason)
        version.full_clean()
        version.is_active = True
        _save(version, user=user, reason=reason)
    return version


# --- Access log ------------------------------------------------------------------------


def access_log_write(
    *,
    user: AbstractBaseUser,
    action: str,
    view: str,
    patient_referrals: Iterable[tuple[int, int | None]],
) -> None:
    """Log that `user` saw these (patient, referral) pairs, in one insert.

    Raises if the rows cannot be written: the caller must then not show the data.
    """
    now = timezone.now()
    role = ", ".join(sorted(user_role_names(user)))
    rows = [
        AccessLog(
            at=now,
            user=user,
            role=role,
            action=action,
            patient_id=patient_id,
            referral_id=referral_id,
            care_unit=settings.CARE_UNIT,
            view=view,
        )
        for patient_id, referral_id in dict.fromkeys(patient_referrals)
    ]
    if rows:
        AccessLog.objects.bulk_create(rows)


# --- Reference data edited by department heads ------------------------------------------


def reply_template_save(
    *, template: ReplyTemplate, user: AbstractBaseUser, reason: str
) -> ReplyTemplate:
    """Save a reply template after checking its placeholders; the old wording stays in history."""
    try:
        check_body(template.body)
    except TemplateBodyError as error:
        raise ServiceError(str(error), field="body") from error
    with transaction.atomic():
        _save(template, user=user, reason=reason)
    return template


def guideline_version_save(
    *, version: GuidelineVersion, user: AbstractBaseUser, reason: str
) -> GuidelineVersion:
    """Save an inactive guideline version; one that is active or was used is frozen."""
    if version.pk is not None:
        stored = GuidelineVersion.objects.get(pk=version.pk)
        if stored.is_active or Assessment.objects.filter(guideline_version=stored).exists():
            raise ServiceError(
                _(
                    "Version %(label)s är aktiv eller har använts för beslut och kan inte "
                    "ändras. Skapa en ny version."
                )
                % {"label": stored.label}
            )
    version.full_clean()
    with transaction.atomic():
        _save(version, user=user, reason=reason)
    return version


def guideline_version_copy(*, user: AbstractBaseUser, reason: str) -> GuidelineVersion:
    """A new, inactive version that starts as a copy of the active one."""
    active = active_guideline()
    labels = GuidelineVersion.objects.values_list("label", flat=True)
    next_number = 1 + max((int(label) for label in labels if label.isdigit()), default=0)
    copy = GuidelineVersion(
        label=str(next_number),
        valid_from=timezone.localdate(),
        is_active=False,
        note=_("Kopia av version %(label)s") % {"label": active.label},
        **{name: getattr(active, name) for name in GuidelineVersion.PARAMETER_FIELDS},
    )
    with transaction.atomic():
        _save(copy, user=user, reason=reason)
    return copy


def flag_save(*, flag: Flag, user: AbstractBaseUser, reason: str) -> Flag:
    """Save a flag's label or order; codes and kinds are the routine's and never change."""
    stored = Flag.objects.get(pk=flag.pk)
    if (stored.code, stored.kind) != (flag.code, flag.kind):
        raise ServiceError(_("Flaggans kod och sort kan inte ändras."))
    with transaction.atomic():
        _save(flag, user=user, reason=reason)
    return flag
