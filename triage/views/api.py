"""HTTP API for referral systems: FHIR ServiceRequest in, HL7 v2 in, FHIR Task out.

Authenticated only by a sender's API token (`Authorization: Bearer …`), never by a browser
session, and throttled per token. What is refused before it is read as a message (no or bad
token, over the rate, too large, wrong media type) is answered and not stored: the sender
knows it was not taken. Everything read as a message is either stored as referrals before
the answer is sent, or kept in the inbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from functools import wraps

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from triage import services
from triage.importers import export, hl7
from triage.importers.fhir import intake_fhir
from triage.importers.intake import OUTCOME_LABELS, IntakeResult, Outcome
from triage.importers.tokens import api_throttle_hit, api_token_authenticate
from triage.models import AccessLog

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
FHIR_MEDIA_TYPES = frozenset({FHIR_JSON, "application/json"})
HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"
# A referral is a few kilobytes; a bundle of a hundred fits well inside this.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
TASK_SEARCH_PARAMETERS = frozenset(
    {"status", "identifier", "modified", "_lastUpdated", "_count", "_offset", "_format"}
)


def _max_body_bytes() -> int:
    return getattr(settings, "INTAKE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)


def operation_outcome(
    status: int, issues: list[tuple[str, str, str]], headers: dict | None = None
) -> JsonResponse:
    """An OperationOutcome of (severity, code, Swedish diagnostics) issues."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": text}
            for severity, code, text in issues
        ],
    }
    response = JsonResponse(
        body,
        status=status,
        content_type=f"{FHIR_JSON}; charset=utf-8",
        json_dumps_params={"ensure_ascii": False},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _plain(status: int, text: str, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _refusal(kind: str, status: int, code: str, text: str, headers: dict | None = None):
    if kind == "fhir":
        return operation_outcome(status, [("error", code, text)], headers)
    return _plain(status, text, headers)


def sender_api(kind: str) -> Callable:
    """Token, throttle and body size, checked in that order before the view runs."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            token = api_token_authenticate(request.headers.get("Authorization", ""))
            if token is None:
                return _refusal(
                    kind,
                    401,
                    "login",
                    "API-nyckel saknas eller är ogiltig (Authorization: Bearer <nyckel>).",
                    {"WWW-Authenticate": 'Bearer realm="remissprio"'},
                )
            retry_after = api_throttle_hit(token=token)
            if retry_after is not None:
                return _refusal(
                    kind,
                    429,
                    "throttled",
                    f"För många anrop; försök igen om {retry_after} sekunder.",
                    {"Retry-After": str(retry_after)},
                )
            if request.method == "POST":
                try:
                    length = int(request.META.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = 0
                if length > _max_body_bytes():
                    return _refusal(
                        kind,
                        413,
                        "too-costly",
                        f"Meddelandet är större än {_max_body_bytes() // 1024} KiB.",
                    )
            request.api_token = token
            request.intake_sender = token.sender
            try:
                return view(request, *args, **kwargs)
            except DatabaseError:
                # Not acknowledged, so the sender keeps the message and sends it again.
                logger.exception("Database error in the intake API")
                return _refusal(
                    kind,
                    503,
                    "transient",
                    "Tjänsten är tillfälligt otillgänglig; skicka meddelandet igen.",
                    {"Retry-After": "30"},
                )

        return csrf_exempt(wrapped)

    return decorator


def _media_type(request: HttpRequest) -> str:
    return request.content_type.split(";")[0].strip().lower()


@require_POST
@sender_api("fhir")
def fhir_service_request(request: HttpRequest) -> HttpResponse:
    """POST a ServiceRequest or a Bundle of them; answered with an OperationOutcome."""
    if _media_type(request) not in FHIR_MEDIA_TYPES:
        return operation_outcome(
            415,
            [("error", "not-supported", f"Skicka FHIR JSON ({FHIR_JSON}).")],
        )
    result = intake_fhir(sender=request.intake_sender, raw=request.body, origin="HTTP")
    return _fhir_answer(result)


def _fhir_answer(result: IntakeResult) -> JsonResponse:
    if result.rejected:
        # 400 when the resource itself is malformed, 422 when it is valid FHIR that we
        # cannot take (unknown system, state of the referral…).
        status = 400 if result.error_code in ("structure", "exception") else 422
        inbox = result.inbox_message
        text = result.error + (f" (sparat i inkorgen som #{inbox.pk})" if inbox else "")
        return operation_outcome(status, [("error", result.error_code or "invalid", text)])
    issues = []
    for order in result.orders:
        code = "duplicate" if order.outcome == Outcome.UNCHANGED else "informational"
        issues.append(
            ("information", code, f"Remiss {order.order_number}: {_outcome_text(order.outcome)}")
        )
    for warning in result.warnings:
        issues.append(("warning", "informational", warning))
    created = any(order.outcome == Outcome.CREATED for order in result.orders)
    return operation_outcome(201 if created else 200, issues)


def _outcome_text(outcome: Outcome) -> str:
    return OUTCOME_LABELS[outcome]


@require_POST
@sender_api("hl7")
def hl7_message(request: HttpRequest) -> HttpResponse:
    """POST one HL7 v2 message; answered with its ACK (AA, AE or AR) and status 200."""
    raw = request.body
    result = hl7.intake_hl7(sender=request.intake_sender, raw=raw, origin="HTTP")
    ack, codec = hl7.build_ack(hl7.read_envelope(raw), result)
    return HttpResponse(ack, content_type=f"{HL7_MEDIA_TYPE}; charset={codec}")


@require_GET
@sender_api("fhir")
def fhir_task_search(request: HttpRequest) -> HttpResponse:
    """GET the sender's decided referrals as Tasks, with their ServiceRequests included.

    Parameters: status (accepted, rejected, on-hold), identifier (order number),
    modified / _lastUpdated (ge/gt + date or dateTime), _count and _offset for paging.
    """
    sender = request.intake_sender
    unknown = sorted(set(request.GET) - TASK_SEARCH_PARAMETERS)
    if unknown:
        return operation_outcome(
            400,
            [("error", "not-supported", f"Okänd sökparameter: {', '.join(unknown)}.")],
        )
    statuses = list(export.DECIDED_STATUSES)
    wanted_status = request.GET.get("status")
    if wanted_status:
        statuses = [
            status
            for task_status in wanted_status.split(",")
            for status in export.TASK_STATUS_TO_REFERRAL.get(task_status.strip(), [])
        ]
    since = None
    modified = request.GET.get("modified") or request.GET.get("_lastUpdated")
    if modified:
        since = _since(modified)
        if since is None:
            return operation_outcome(
                400,
                [
                    (
                        "error",
                        "value",
                        "modified ska vara ge eller gt följt av ett datum eller en tidpunkt med "
                        "tidszon, t.ex. ge2025-03-01.",
                    )
                ],
            )
    try:
        count = min(int(request.GET.get("_count", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        offset = int(request.GET.get("_offset", 0))
        if count < 1 or offset < 0:
            raise ValueError
    except ValueError:
        return operation_outcome(
            400, [("error", "value", "_count och _offset ska vara positiva heltal.")]
        )
    identifier = request.GET.get("identifier")
    if identifier and "|" in identifier:
        identifier = identifier.split("|", 1)[1]
    referrals = list(
        export.decided_referrals(
            source=sender.name, statuses=statuses, since=since, order_number=identifier or None
        )[offset : offset + count + 1]
    )
    next_url = ""
    if len(referrals) > count:
        referrals = referrals[:count]
        query = request.GET.copy()
        query["_offset"] = str(offset + count)
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    # Patientdatalagen: handing patient data to another system is an export; logged in one
    # insert, and if the log cannot be written the data is not sent.
    services.access_log_write(
        user=sender.user,
        action=AccessLog.Action.EXPORT,
        view="api:fhir-task",
        patient_referrals=[(referral.patient_id, referral.pk) for referral in referrals],
    )
    bundle = export.decisions_bundle(
        referrals,
        senders={sender.name: sender},
        base_url=request.build_absolute_uri("/api/fhir/"),
        next_url=next_url,
    )
    return HttpResponse(
        json.dumps(bundle, ensure_ascii=False),
        content_type=f"{FHIR_JSON}; charset=utf-8",
    )


def _since(value: str) -> datetime | None:
    prefix, text = value[:2], value[2:]
    if prefix not in ("ge", "gt"):
        prefix, text = "ge", value
    try:
        if "T" in text:
            moment = parse_datetime(text)
            if moment is None or timezone.is_naive(moment):
                return None
            return moment + timedelta(microseconds=1) if prefix == "gt" else moment
        day = parse_date(text)
    except ValueError:
        return None
    if day is None:
        return None
    if prefix == "gt":
        day += timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, time.min))
