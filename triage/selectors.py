"""Reads shared by views, services and commands."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.db.models import IntegerField, Q, Subquery
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from triage import rules
from triage.models import (
    Flag,
    GuidelineVersion,
    PriorImaging,
    Referral,
    ReplyTemplate,
    worklist_rank,
)
from triage.reply_text import placeholders_in, render_body


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
) -> rules.Facts:
    """Combine the referral, the patient and what the radiologist entered into engine facts."""
    if prior_imaging is None:
        prior_imaging = prior_imaging_before(referral.patient_id, referral.written_on)
    by_kind: dict[str, set[str]] = {kind: set() for kind in Flag.Kind.values}
    for code in entered.flag_codes:
        by_kind[FLAG_KINDS[code]].add(code)
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
    """The plain strings that fill a reply template's placeholders for this referral.

    The letter goes to a Swedish referrer, so its values are Swedish whatever language the
    radiologist has chosen for the screen.
    """
    with translation.override("sv"):
        return _reply_values(
            referral,
            action=action,
            priority_weeks=priority_weeks,
            suggest=suggest,
            missing=missing,
            prior_imaging=prior_imaging,
            today=today,
        )


def _reply_values(
    referral: Referral,
    *,
    action: str | None,
    priority_weeks: int | None,
    suggest: str | None,
    missing: str,
    prior_imaging: list[PriorImaging] | None,
    today: date | None,
) -> dict[str, str]:
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
        # An emergency is examined with MRI the same day; a return books nothing.
        "atgard": EXAMINATION_PHRASES["mri" if action == "escalate" else action]
        if action in ("mri", "ct", "xray", "escalate")
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
    kind: str | None = None,
) -> tuple[ReplyTemplate | None, str]:
    """The pre-selected template for a decision and its text filled with this referral's values.

    Of a kind's active templates, the first (by order) whose placeholders this referral can
    all fill is chosen, e.g. the variant without an earlier examination when there is none.
    """
    values = reply_values(
        referral,
        action=action,
        priority_weeks=priority_weeks,
        suggest=(recommendation or {}).get("suggest"),
        missing=missing,
    )
    if template is None:
        candidates = list(
            ReplyTemplate.objects.filter(
                kind=kind or reply_kind_for(action, recommendation), is_active=True
            ).order_by("position", "id")
        )
        filled = {name for name, value in values.items() if value}
        template = next(
            (item for item in candidates if placeholders_in(item.body) <= filled),
            candidates[0] if candidates else None,
        )
    if template is None:
        return None, ""
    return template, render_body(template.body, values)


# --- The rule context carried by the triage page ------------------------------------------
# The live recommendation endpoint is called on every change of the form. Instead of
# reading the referral, imaging and guideline again each time, the page carries them as a
# signed token; the decision itself is always recomputed from the database.

_CONTEXT_SALT = "remissprio.triage-context"
CONTEXT_MAX_AGE = 12 * 3600


def sign_rule_context(
    referral: Referral, prior_imaging: list[PriorImaging], guideline: GuidelineVersion
) -> str:
    return signing.dumps(
        {
            "referral": referral.pk,
            "referral_date": referral.written_on.isoformat(),
            "age": referral.patient_age(),
            "requested": referral.requested,
            "method_change_allowed": referral.method_change_allowed,
            "prior_imaging": [
                [
                    item.modality,
                    item.region,
                    item.performed_on.isoformat(),
                    item.covers_lumbar_spine,
                ]
                for item in prior_imaging
            ],
            "guideline": guideline.pk,
            "parameters": {name: getattr(guideline, name) for name in guideline.PARAMETER_FIELDS},
            "label": guideline.label,
        },
        salt=_CONTEXT_SALT,
        compress=True,
    )


def facts_from_signed_context(
    token: str, entered: AssessmentInput, *, referral_id: int
) -> tuple[rules.Facts, rules.Parameters]:
    """Rebuild engine input from a page's signed context; raises signing.BadSignature."""
    context = signing.loads(token, salt=_CONTEXT_SALT, max_age=CONTEXT_MAX_AGE)
    if context["referral"] != referral_id:
        raise signing.BadSignature("context belongs to another referral")
    by_kind: dict[str, set[str]] = {"red": set(), "yellow": set(), "emergency": set()}
    for code in entered.flag_codes:
        by_kind[FLAG_KINDS[code]].add(code)
    facts = rules.Facts(
        referral_date=date.fromisoformat(context["referral_date"]),
        age=context["age"],
        pain_weeks=_number(entered.pain_weeks),
        red_flags=frozenset(by_kind["red"]),
        yellow_flags=frozenset(by_kind["yellow"]),
        radicular=entered.radicular,
        treatment_weeks=_number(entered.treatment_weeks),
        improved=entered.improved,
        requested=context["requested"],
        questions=frozenset(entered.questions),
        trauma=entered.trauma,
        method_change_allowed=context["method_change_allowed"],
        prior_imaging=tuple(
            rules.PriorImaging(modality, region, date.fromisoformat(day), covers)
            for modality, region, day, covers in context["prior_imaging"]
        ),
        emergency_signs=frozenset(by_kind["emergency"]),
        mri_contraindicated=entered.mri_contraindicated,
    )
    params = rules.Parameters(guideline_version=context["label"], **context["parameters"])
    return facts, params


# Flag codes and kinds are fixed by the routine (only labels are editable), so the kind of
# a code is known without asking the database.
FLAG_KINDS: dict[str, str] = {
    **dict.fromkeys(rules.RED_FLAGS, "red"),
    **dict.fromkeys(rules.YELLOW_FLAGS, "yellow"),
    **dict.fromkeys(rules.EMERGENCY_SIGNS, "emergency"),
}


def recommendation_fingerprint(recommendation: rules.Recommendation | dict) -> str:
    """What the radiologist was shown, in a form a hidden field can carry back."""
    if isinstance(recommendation, dict):
        return f"{recommendation['action']}:{recommendation['priority_weeks']}"
    return f"{recommendation.action}:{recommendation.priority_weeks}"


# --- Worklist ----------------------------------------------------------------------------

WAITING_STATUSES = (
    Referral.Status.ESCALATED,
    Referral.Status.NEW,
    Referral.Status.IN_TRIAGE,
)


@dataclass(frozen=True, slots=True)
class WorklistFilters:
    q: str = ""
    status: str = ""  # "" = waiting for triage, "all" = every status, else one status
    requested: str = ""
    mine: bool = False
    overdue: bool = False


@dataclass(frozen=True, slots=True)
class WorklistPage:
    rows: list[Referral]
    # Per status, counted up to COUNT_CAP + 1: a value above COUNT_CAP means "more than".
    counts: dict[str, int]
    total: int
    number: int
    num_pages: int
    # True when the total passed COUNT_CAP: num_pages then only says whether there is a
    # next page, and the page shows "över 1 000" rather than an exact number.
    capped: bool = False

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.num_pages


# Counts above this are shown as "1 000+". Nobody pages through a thousand referrals, and an
# exact count of every decided referral would scan all of them on every view of the list.
COUNT_CAP = 1000


class SubqueryCount(Subquery):
    """(SELECT COUNT(*) FROM (<subquery>)): the number of rows of a subquery; of a sliced
    one, at most its limit, which reads no more index entries than that."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) counted)"
    output_field = IntegerField()


def _personnummer_candidates(text: str) -> list[str] | None:
    """The 12-digit numbers a typed personnummer can mean, or None if it is not one."""
    digits = text.replace("-", "").replace("+", "").replace(" ", "")
    if not digits.isdigit() or len(digits) not in (10, 12):
        return None
    if len(digits) == 12:
        return [digits]
    return [century + digits for century in ("18", "19", "20")]


WORKLIST_ORDER = (
    # Emergencies and the referrer's acute ones first, then oldest first;
    # worklist_waiting_order_idx and worklist_requested_idx hold exactly this order.
    worklist_rank(),
    "received_at",
    "id",
)


def worklist_page(
    filters: WorklistFilters, *, user, today: date, page: int = 1, per_page: int = 25
) -> WorklistPage:
    """One page of the worklist and the counts per status, in two queries whose cost does
    not grow with the number of referrals: the counts stop at COUNT_CAP + 1 per status, and
    the page's ids are found by OFFSET in the index alone before 25 rows are joined."""
    base = Referral.objects.all()
    q = filters.q.strip()
    if q:
        numbers = _personnummer_candidates(q)
        if numbers is not None:
            base = base.filter(patient__personal_number__in=numbers)
        else:
            # iregex is Unicode-aware on both databases (SQLite runs it in Python), so
            # "åsa" finds "Åsa"; icontains would not on SQLite.
            base = base.filter(patient__name__iregex=re.escape(q))
    if filters.requested:
        base = base.filter(requested=filters.requested)
    if filters.mine:
        base = base.filter(assigned_to=user)
    if filters.overdue:
        base = base.filter(overdue_q(today))

    # One query: a scalar subquery per status, each an index range scan of at most
    # COUNT_CAP + 1 entries, selected "from" one referral row (none: there are no referrals).
    capped_counts = {
        f"n_{status}": SubqueryCount(
            base.filter(status=status).order_by().values("status")[: COUNT_CAP + 1]
        )
        for status in Referral.Status.values
    }
    found = Referral.objects.order_by().values(**capped_counts)[:1]
    counts = {name[2:]: n for row in found for name, n in row.items()}
    if filters.status == "all":
        statuses = list(Referral.Status.values)
    elif filters.status in Referral.Status.values:
        statuses = [filters.status]
    else:
        statuses = list(WAITING_STATUSES)
    total = sum(counts.get(status, 0) for status in statuses)
    capped = any(counts.get(status, 0) > COUNT_CAP for status in statuses)
    number = max(1, page)
    if not capped:
        number = min(number, max(1, -(-total // per_page)))
    # A deferred join: the page's ids (plus one, which says whether a next page exists when
    # the total is capped) by OFFSET over the index, then only those rows joined.
    page_ids = (
        base.filter(status__in=statuses)
        .order_by(*WORKLIST_ORDER)
        .values("pk")[(number - 1) * per_page : number * per_page + 1]
    )
    rows = list(
        Referral.objects.filter(pk__in=page_ids)
        .select_related("patient", "assigned_to")
        .order_by(*WORKLIST_ORDER)
    )
    more = len(rows) > per_page
    rows = rows[:per_page]
    # Capped: num_pages only says whether a next page exists.
    num_pages = (number + 1 if more else number) if capped else max(1, -(-total // per_page))
    return WorklistPage(
        rows=rows,
        counts={status: counts.get(status, 0) for status in Referral.Status.values},
        total=total,
        number=number,
        num_pages=num_pages,
        capped=capped,
    )


def overdue_q(today: date) -> Q:
    """Waiting for triage longer than the department's target, or past the due date."""
    # A plain datetime bound (not received_at__date) so the worklist index can serve it.
    waited_since = timezone.make_aware(
        datetime.combine(today - timedelta(days=settings.TRIAGE_TARGET_DAYS), time.min)
    )
    return Q(status__in=WAITING_STATUSES, received_at__lt=waited_since) | Q(
        status=Referral.Status.DECIDED, due_date__lt=today
    )
