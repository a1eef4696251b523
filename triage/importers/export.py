"""Decisions back to the sender: a FHIR Task per decided referral (focus = the ServiceRequest)
with the ServiceRequest as we now hold it, or the same as Swedish-Excel CSV.

Task.status: accepted (examination decided, escalated, converted to re-review), rejected
(returned to the referrer), on-hold (awaiting information). Task.businessStatus says which,
in the code system BUSINESS_STATUS_SYSTEM; statusReason is the reply template used (code
system REPLY_KIND_SYSTEM) or the decided action; owner is the radiologist; output holds the
final reply text, the decided examination and the priority time in weeks.

ServiceRequest.priority: stat when escalated, urgent for a priority time of two weeks or
less, routine otherwise; occurrencePeriod.end is the date by which it is to be done.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from triage import rules
from triage.importers.intake import KIND_SYSTEMS
from triage.models import Assessment, Referral, Reply, Sender

BUSINESS_STATUS_SYSTEM = "urn:remissprio:codesystem:business-status"
REPLY_KIND_SYSTEM = "urn:remissprio:codesystem:reply-kind"
ACTION_SYSTEM = "urn:remissprio:codesystem:decided-action"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
URGENT_WITHIN_WEEKS = 2

S = Referral.Status
TASK_STATUS = {
    S.DECIDED: "accepted",
    S.ESCALATED: "accepted",
    S.REREVIEW: "accepted",
    S.RETURNED: "rejected",
    S.AWAITING_INFORMATION: "on-hold",
}
BUSINESS_STATUS = {
    S.DECIDED: ("decided", "Beslutad"),
    S.ESCALATED: ("escalated", "Akut – eskalerad"),
    S.REREVIEW: ("converted-to-rereview", "Omvandlad till eftergranskning"),
    S.RETURNED: ("returned", "Återsänd till remittenten"),
    S.AWAITING_INFORMATION: ("awaiting-information", "Väntar på komplettering"),
}
SERVICE_REQUEST_STATUS = {
    S.DECIDED: "active",
    S.ESCALATED: "active",
    S.REREVIEW: "active",
    S.RETURNED: "revoked",
    S.AWAITING_INFORMATION: "on-hold",
}
DECIDED_STATUSES = tuple(TASK_STATUS)
TASK_STATUS_TO_REFERRAL = {
    task_status: [status for status, value in TASK_STATUS.items() if value == task_status]
    for task_status in set(TASK_STATUS.values())
}


def decided_referrals(
    *,
    source: str | None = None,
    statuses: Iterable[str] = DECIDED_STATUSES,
    since: datetime | None = None,
    order_number: str | None = None,
) -> QuerySet[Referral]:
    """Decided referrals with what a Task needs, in two queries plus one per prefetch."""
    queryset = (
        Referral.objects.filter(status__in=list(statuses))
        .select_related("patient", "assigned_to")
        .prefetch_related(
            Prefetch(
                "assessments",
                queryset=Assessment.objects.select_related("decided_by").order_by(
                    "-decided_at", "-id"
                ),
            ),
            Prefetch(
                "replies",
                queryset=Reply.objects.filter(is_final=True)
                .select_related("template")
                .order_by("-written_at", "-id"),
            ),
        )
        .order_by("id")
    )
    if source is not None:
        queryset = queryset.filter(source=source)
    if order_number is not None:
        queryset = queryset.filter(order_number=order_number)
    if since is not None:
        # A decision or status change (a referral history row) or a reply after `since`
        # makes the Task new to the sender.
        changed = Referral.history.filter(history_date__gte=since).values("id")
        replied = Reply.objects.filter(written_at__gte=since).values("referral_id")
        queryset = queryset.filter(Q(pk__in=changed) | Q(pk__in=replied))
    return queryset


def _latest(items) -> object | None:
    items = list(items)
    return items[0] if items else None


def _person(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _order_identifier(referral: Referral, system: str) -> dict:
    identifier = {
        "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
        "value": referral.order_number,
    }
    if system:
        identifier["system"] = system
    return identifier


def _patient_identifier(referral: Referral) -> dict:
    patient = referral.patient
    return {"system": KIND_SYSTEMS[patient.kind], "value": patient.personal_number}


def _priority(referral: Referral, assessment: Assessment | None) -> str:
    if referral.status == S.ESCALATED:
        return "stat"
    weeks = assessment.priority_weeks if assessment else None
    if weeks is not None and weeks <= URGENT_WITHIN_WEEKS:
        return "urgent"
    return "routine"


def _last_modified(referral: Referral, assessment, reply) -> datetime:
    moments = [referral.received_at]
    if assessment is not None:
        moments.append(assessment.decided_at)
    if reply is not None:
        moments.append(reply.written_at)
    return max(moments)


def decision_service_request(referral: Referral, *, order_number_system: str = "") -> dict:
    assessment = _latest(referral.assessments.all())
    resource = {
        "resourceType": "ServiceRequest",
        "id": str(referral.pk),
        "identifier": [_order_identifier(referral, order_number_system)],
        "status": SERVICE_REQUEST_STATUS[referral.status],
        "intent": "order",
        "priority": _priority(referral, assessment),
        "code": {
            "coding": [
                {
                    "system": ACTION_SYSTEM,
                    "code": referral.requested,
                    "display": referral.get_requested_display(),
                }
            ],
            "text": referral.requested_text or referral.get_requested_display(),
        },
        "subject": {"identifier": _patient_identifier(referral), "display": referral.patient.name},
        "authoredOn": referral.written_on.isoformat(),
    }
    if referral.due_date:
        resource["occurrencePeriod"] = {"end": referral.due_date.isoformat()}
    return resource


def decision_task(referral: Referral, *, order_number_system: str = "") -> dict:
    assessment = _latest(referral.assessments.all())
    reply = _latest(referral.replies.all())
    code, label = BUSINESS_STATUS[referral.status]
    modified = timezone.localtime(_last_modified(referral, assessment, reply))
    task = {
        "resourceType": "Task",
        "id": str(referral.pk),
        "meta": {"lastUpdated": modified.isoformat()},
        "status": TASK_STATUS[referral.status],
        "businessStatus": {
            "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": code, "display": label}],
            "text": label,
        },
        "intent": "order",
        "focus": {
            "reference": f"ServiceRequest/{referral.pk}",
            "identifier": _order_identifier(referral, order_number_system),
        },
        "for": {"identifier": _patient_identifier(referral), "display": referral.patient.name},
        "lastModified": modified.isoformat(),
    }
    if assessment is not None:
        task["authoredOn"] = timezone.localtime(assessment.decided_at).isoformat()
    reason = _status_reason(assessment, reply)
    if reason:
        task["statusReason"] = reason
    owner = assessment.decided_by if assessment else referral.assigned_to
    if owner is not None:
        task["owner"] = {"type": "Practitioner", "display": _person(owner)}
    outputs = []
    if reply is not None:
        outputs.append({"type": {"text": "Svarstext"}, "valueString": reply.text})
    if assessment is not None:
        outputs.append(
            {
                "type": {"text": "Beslutad åtgärd"},
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": ACTION_SYSTEM,
                            "code": assessment.action,
                            "display": rules.ACTIONS.get(assessment.action, assessment.action),
                        }
                    ]
                },
            }
        )
        if assessment.priority_weeks is not None:
            outputs.append(
                {"type": {"text": "Priotid (veckor)"}, "valueInteger": assessment.priority_weeks}
            )
    if outputs:
        task["output"] = outputs
    return task


def _status_reason(assessment, reply) -> dict | None:
    template = reply.template if reply is not None else None
    if template is not None:
        return {
            "coding": [
                {
                    "system": REPLY_KIND_SYSTEM,
                    "code": template.kind,
                    "display": template.get_kind_display(),
                }
            ],
            "text": template.title,
        }
    if assessment is not None:
        return {"text": rules.ACTIONS.get(assessment.action, assessment.action)}
    return None


def decisions_bundle(
    referrals: Iterable[Referral],
    *,
    senders: dict[str, Sender],
    base_url: str = "",
    bundle_type: str = "searchset",
    next_url: str = "",
) -> dict:
    """Tasks and their ServiceRequests as one Bundle, validated against the FHIR models."""
    entries = []
    task_count = 0
    for referral in referrals:
        sender = senders.get(referral.source)
        system = sender.order_number_system if sender else ""
        task = decision_task(referral, order_number_system=system)
        request = decision_service_request(referral, order_number_system=system)
        task_count += 1
        for resource, mode in ((task, "match"), (request, "include")):
            entry = {
                "fullUrl": f"{base_url}{resource['resourceType']}/{resource['id']}",
                "resource": resource,
            }
            if bundle_type == "searchset":
                entry["search"] = {"mode": mode}
            entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "timestamp": timezone.localtime().isoformat(),
        "entry": entries,
    }
    if bundle_type == "searchset":
        bundle["total"] = task_count
        if next_url:
            bundle["link"] = [{"relation": "next", "url": next_url}]
    # Validating what we send is cheap (well under a millisecond a resource) and means a
    # sender never receives a Task its FHIR library refuses.
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)


CSV_HEADER = [
    "källa",
    "remissnummer",
    "personnummer",
    "patient",
    "status",
    "beslut",
    "priotid (veckor)",
    "senast utförd",
    "beslutad",
    "beslutad av",
    "orsak",
    "svarstext",
]


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to Excel; the apostrophe keeps it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def decisions_csv(referrals: Iterable[Referral]) -> str:
    """The decisions as Swedish Excel reads them: `;`, CRLF; write it with a UTF-8 BOM."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for referral in referrals:
        assessment = _latest(referral.assessments.all())
        reply = _latest(referral.replies.all())
        reason = _status_reason(assessment, reply)
        writer.writerow(
            [
                _cell(value)
                for value in (
                    referral.source,
                    referral.order_number,
                    referral.patient.formatted_number,
                    referral.patient.name,
                    BUSINESS_STATUS[referral.status][1],
                    rules.ACTIONS.get(assessment.action, "") if assessment else "",
                    assessment.priority_weeks if assessment else "",
                    referral.due_date.isoformat() if referral.due_date else "",
                    (
                        timezone.localtime(assessment.decided_at).strftime("%Y-%m-%d %H:%M")
                        if assessment
                        else ""
                    ),
                    _person(assessment.decided_by) if assessment else "",
                    reason["text"] if reason else "",
                    reply.text if reply else "",
                )
            ]
        )
    return out.getvalue()
