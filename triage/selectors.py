"""Reads shared by views, services and commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils import timezone
from django.utils.translation import gettext as _

from triage import rules
from triage.models import Flag, GuidelineVersion, PriorImaging, Referral, ReplyTemplate
from triage.reply_text import render_body


class NoActiveGuideline(Exception):
    pass


def active_guideline() -> GuidelineVersion:
    version = GuidelineVersion.objects.filter(is_active=True).first()
    if version is None:
        raise NoActiveGuideline(_("Ingen riktlinjeversion är aktiv."))
    return version


@dataclass(frozen=True, slots=True)
class AssessmentInput:
    """What the radiologist enters on the triage form (the referral supplies the rest)."""

    pain_weeks: Decimal | None = None
    flag_codes: frozenset[str] = frozenset()
    radicular: bool = False
    treatment_weeks: Decimal | None = None
    improved: bool | None = None
    trauma: bool = False
    questions: frozenset[str] = frozenset()
    mri_contraindicated: bool = False


def prior_imaging_before(patient_id: int, on: date) -> list[PriorImaging]:
    return list(PriorImaging.objects.filter(patient_id=patient_id, performed_on__lte=on))


def build_facts(
    referral: Referral,
    entered: AssessmentInput,
    *,
    prior_imaging: list[PriorImaging] | None = None,
    flag_kinds: dict[str, str] | None = None,
) -> rules.Facts:
    """Combine the referral, the patient and what the radiologist entered into engine facts."""
    if prior_imaging is None:
        prior_imaging = prior_imaging_before(referral.patient_id, referral.written_on)
    if flag_kinds is None:
        flag_kinds = dict(Flag.objects.values_list("code", "kind"))
    by_kind: dict[str, set[str]] = {kind: set() for kind in Flag.Kind.values}
    for code in entered.flag_codes:
        by_kind[flag_kinds[code]].add(code)
    return rules.Facts(
        referral_date=referral.written_on,
        age=referral.patient_age(),
        pain_weeks=_number(entered.pain_weeks),
        red_flags=frozenset(by_kind[Flag.Kind.RED]),
        yellow_flags=frozenset(by_kind[Flag.Kind.YELLOW]),
        radicular=entered.radicular,
        treatment_weeks=_number(entered.treatment_weeks),
        improved=entered.improved,
        requested=referral.requested,
        questions=frozenset(entered.questions),
        trauma=entered.trauma,
        method_change_allowed=referral.method_change_allowed,
        prior_imaging=tuple(item.to_rule_input() for item in prior_imaging),
        emergency_signs=frozenset(by_kind[Flag.Kind.EMERGENCY]),
        mri_contraindicated=entered.mri_contraindicated,
    )


def _number(value: Decimal | None) -> float | None:
    # The engine compares with plain numbers; Decimal from forms keeps one decimal place.
    return None if value is None else float(value)


# --- Reply texts -----------------------------------------------------------------------

EXAMINATION_PHRASES = {
    "xray": "röntgen LÄNDRYGGRAD",
    "mri": "MR ländrygg",
    "ct": "DT ländrygg",
    "other": "undersökning av ländryggen",
}


def reply_kind_for(action: str, recommendation: dict | None) -> str:
    """The template kind that fits a decision: the engine's own kind when it was followed."""
    if (
        recommendation
        and recommendation.get("action") == action
        and recommendation.get("reply_kind")
    ):
        return recommendation["reply_kind"]
    return {
        "escalate": "escalated",
        "rereview": "rereview_prior_imaging",
        "return": "no_indication",
    }.get(action, "accepted")


def default_template(kind: str) -> ReplyTemplate | None:
    return (
        ReplyTemplate.objects.filter(kind=kind, is_active=True).order_by("position", "id").first()
    )


def reply_values(
    referral: Referral,
    *,
    action: str | None = None,
    priority_weeks: int | None = None,
    suggest: str | None = None,
    missing: str = "",
    prior_imaging: list[PriorImaging] | None = None,
    today: date | None = None,
) -> dict[str, str]:
    """The plain strings that fill a reply template's placeholders for this referral."""
    if prior_imaging is None:
        prior_imaging = prior_imaging_before(referral.patient_id, referral.written_on)
    # The most recent examination that shows the lumbar spine is the one a reply cites.
    earlier = next((item for item in prior_imaging if item.covers_lumbar_spine), None)
    if earlier is None and prior_imaging:
        earlier = prior_imaging[0]
    today = today or timezone.localdate()
    return {
        "datum": today.isoformat(),
        "remissdatum": referral.written_on.isoformat(),
        "undersokning": referral.requested_text or EXAMINATION_PHRASES[referral.requested],
        "tidigare_undersokning": (
            f"{earlier.get_modality_display()} {earlier.region}".strip() if earlier else ""
        ),
        "tidigare_datum": earlier.performed_on.isoformat() if earlier else "",
        "tidigare_plats": earlier.location if earlier else "",
        "fynd": earlier.finding if earlier else "",
        "forslag": rules.SUGGESTIONS.get(suggest or "", ""),
        "atgard": EXAMINATION_PHRASES.get(action or "", "")
        if action in ("mri", "ct", "xray")
        else "",
        "prioritet": _("%(weeks)s veckor") % {"weeks": priority_weeks} if priority_weeks else "",
        "saknas": missing,
        "patient_alder": str(referral.patient_age()),
    }


def draft_reply(
    referral: Referral,
    *,
    action: str,
    priority_weeks: int | None,
    recommendation: dict | None,
    missing: str = "",
    template: ReplyTemplate | None = None,
) -> tuple[ReplyTemplate | None, str]:
    """The pre-selected template for a decision and its text filled with this referral's values."""
    template = template or default_template(reply_kind_for(action, recommendation))
    if template is None:
        return None, ""
    values = reply_values(
        referral,
        action=action,
        priority_weeks=priority_weeks,
        suggest=(recommendation or {}).get("suggest"),
        missing=missing,
    )
    return template, render_body(template.body, values)
