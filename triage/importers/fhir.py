"""FHIR R4 in: a ServiceRequest, or a Bundle (transaction or collection) of them, with the
Patient contained or in the bundle.

Resources are validated with the fhir.resources models of release R4B: R4B is R4 with
technical corrections only, and ServiceRequest, Patient, Practitioner, PractitionerRole,
Organization and Bundle are the same in both, so R4 senders validate unchanged.

Mapping and conventions (documented for senders):

- identifier: the order number; one typed PLAC (v2-0203) wins, else the first with a value.
- subject: a Patient with an identifier in the personnummer system
  (urn:oid:1.2.752.129.2.1.3.1) or the samordningsnummer system (…3.3); the value must be
  of the kind its system says. A reference with only an identifier and display also works.
- authoredOn: the referral date; with a time it must carry a time zone.
- status: active and on-hold take the referral in; revoked and entered-in-error cancel it.
- code: the requested examination, read from DICOM modality codings or from the wording of
  the text and displays (see examination.py); anything else is "other" with the text kept.
- reasonCode, reasonReference, note and supportingInfo become the anamnesis, one paragraph
  each; priority (routine when absent) is the referrer's priority, which sorts the worklist.
- requester: PractitionerRole (practitioner and organization), Practitioner or Organization,
  contained, in the bundle or as a display.
- method change: the extension METHOD_CHANGE_EXTENSION with valueBoolean false forbids it;
  so does a note such as "Metodbyte ej tillåtet". Without either it is allowed.

A bundle is taken whole or not at all, so a re-sent or re-processed bundle never half-applies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime

from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from triage.importers import examination
from triage.importers.intake import (
    SYSTEM_KINDS,
    IntakeRejection,
    IntakeResult,
    MessageSource,
    OrderData,
    ParsedMessage,
    identity_for,
    local_date,
    message_intake,
    rejecting_parse,
    safe_text,
    sha256_hex,
)
from triage.models import IntakeFormat, Referral, Sender

METHOD_CHANGE_EXTENSION = "urn:remissprio:extension:method-change-allowed"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ORDER_STATUSES = frozenset({"active", "on-hold"})
CANCEL_STATUSES = frozenset({"revoked", "entered-in-error"})
BUNDLE_TYPES = frozenset({"transaction", "collection"})
_HAS_TIME_ZONE = re.compile(r"(Z|[+-]\d\d:\d\d)$")

_PYDANTIC_PROBLEMS = {
    "missing": "saknas",
    "extra_forbidden": "är inget fält i FHIR R4",
    "json_invalid": "har fel form (objekt väntades)",
    "string_type": "ska vara text",
    "bool_type": "ska vara true eller false",
    "list_type": "ska vara en lista",
    "dict_type": "ska vara ett objekt",
    "model_type": "ska vara ett objekt",
    "int_type": "ska vara ett heltal",
}


def fhir_sources(raw: bytes, *, origin: str, ndjson: bool = False) -> Iterator[MessageSource]:
    """The messages of a request body or file: one JSON document, or one per NDJSON line."""
    if not ndjson:
        yield MessageSource(raw=raw, origin=origin, parse=lambda: parse_fhir(raw))
        return
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        yield MessageSource(raw=line, origin=f"{origin} rad {number}", parse=_parser_for(line))


def _parser_for(raw: bytes) -> Callable[[], ParsedMessage]:
    return lambda: parse_fhir(raw)


def intake_fhir(
    *,
    sender: Sender,
    raw: bytes,
    origin: str = "HTTP",
    received_at: datetime | None = None,
) -> IntakeResult:
    """Take in one FHIR document (ServiceRequest or Bundle) from a sender."""
    source = MessageSource(raw=raw, origin=origin, parse=lambda: parse_fhir(raw))
    return message_intake(
        sender=sender, format=IntakeFormat.FHIR, source=source, received_at=received_at
    )


def unreadable_source(raw: bytes, origin: str, error: str) -> MessageSource:
    return MessageSource(
        raw=raw, origin=origin, parse=rejecting_parse(IntakeRejection(error, code="structure"))
    )


# --- Parsing ---------------------------------------------------------------------------------


def parse_fhir(raw: bytes | str) -> ParsedMessage:
    """A checked ParsedMessage, or IntakeRejection with the reason in Swedish."""
    document = _load_json(raw)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    content_hash = sha256_hex(canonical.encode("ascii"))
    resource_type = document.get("resourceType")
    if resource_type == "ServiceRequest":
        _precheck_service_request(document, "ServiceRequest")
        request = _validate(ServiceRequest, document)
        requests = [(request, _Resolver(request, {}))]
        message_id = request.id or ""
    elif resource_type == "Bundle":
        requests, message_id = _bundle_requests(document)
    else:
        raise IntakeRejection(
            f"Resurstypen {safe_text(resource_type, 60)!s} tas inte emot; skicka en "
            "ServiceRequest eller en Bundle med ServiceRequest.",
            code="not-supported",
        )
    orders = []
    for index, (request, resolver) in enumerate(requests, start=1):
        where = f"ServiceRequest {index}" if len(requests) > 1 else "ServiceRequest"
        orders.append(_order_from(request, resolver, where))
    label = f"FHIR {resource_type}"
    if message_id:
        label += f"/{message_id}"
    label += f" #{content_hash[:10]}"
    return ParsedMessage(
        message_key=content_hash,
        content_hash=content_hash,
        label=label,
        orders=orders,
        message_id=message_id,
    )


def _load_json(raw: bytes | str) -> dict:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise IntakeRejection(
                f"Meddelandet är inte giltig UTF-8 (byte {error.start}); FHIR JSON ska vara UTF-8.",
                code="structure",
            ) from None
    else:
        text = raw
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise IntakeRejection(
            f"Meddelandet är inte giltig JSON: {error.msg} (rad {error.lineno}, "
            f"kolumn {error.colno}).",
            code="structure",
        ) from None
    except RecursionError:
        raise IntakeRejection("JSON-strukturen är för djupt nästlad.", code="structure") from None
    if not isinstance(document, dict) or "resourceType" not in document:
        raise IntakeRejection(
            "Meddelandet är ingen FHIR-resurs (resourceType saknas).", code="structure"
        )
    return document


def _refuse_constant(name: str) -> None:
    raise IntakeRejection(f"JSON-värdet {name} är inte tillåtet i FHIR.", code="structure")


def _validate(model: type, document: dict):
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise IntakeRejection(_validation_message(error), code="structure") from None
    except (KeyError, ValueError, TypeError) as error:
        # fhir.resources raises KeyError for an unknown resourceType inside contained/entry.
        raise IntakeRejection(
            f"Ogiltig FHIR-resurs: okänd resurstyp eller form ({safe_text(error, 100)}).",
            code="structure",
        ) from None


def _validation_message(error: ValidationError) -> str:
    problems = []
    details = error.errors()
    for item in details[:5]:
        location = ".".join(str(part) for part in item.get("loc", ())) or "resursen"
        problem = _PYDANTIC_PROBLEMS.get(item.get("type", ""), "har ett ogiltigt värde")
        if "regex" in str(item.get("msg", "")):
            problem = "har fel format"
        problems.append(f"{location} {problem}")
    more = f" (och {len(details) - 5} fel till)" if len(details) > 5 else ""
    return "Ogiltig FHIR-resurs: " + "; ".join(problems) + more + "."


def _precheck_service_request(document: dict, where: str) -> None:
    # Checked on the JSON before the model, so the sender reads our sentence rather than a
    # regular-expression error from the validator.
    authored = document.get("authoredOn")
    if isinstance(authored, str) and "T" in authored and not _HAS_TIME_ZONE.search(authored):
        raise IntakeRejection(
            f"{where}: authoredOn {safe_text(authored, 40)} har klockslag men ingen tidszon. "
            "Ange tidszonen (t.ex. 2025-03-01T10:15:00+01:00) eller bara datumet.",
            code="value",
        )
    if not document.get("subject"):
        raise IntakeRejection(
            f"{where}: patient saknas (subject ska peka på en Patient, contained eller i bundlen).",
            code="required",
        )


def _bundle_requests(document: dict) -> tuple[list[tuple[ServiceRequest, _Resolver]], str]:
    bundle_type = document.get("type")
    if bundle_type not in BUNDLE_TYPES:
        raise IntakeRejection(
            f"Bundle av typen {safe_text(bundle_type, 40)} tas inte emot; använd transaction "
            "eller collection.",
            code="not-supported",
        )
    entries = document.get("entry")
    if not isinstance(entries, list) or not entries:
        raise IntakeRejection("Bundlen är tom.", code="required")
    request_count = 0
    for index, entry in enumerate(entries, start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise IntakeRejection(f"Bundlens post {index} saknar resurs.", code="structure")
        resource_type = resource.get("resourceType")
        try:
            get_fhir_model_class(str(resource_type))
        except (KeyError, ValueError):
            raise IntakeRejection(
                f"Bundlens post {index}: okänd resurstyp {safe_text(resource_type, 60)}.",
                code="structure",
            ) from None
        if resource_type == "ServiceRequest":
            request_count += 1
            _precheck_service_request(resource, f"Bundlens post {index} (ServiceRequest)")
    if not request_count:
        raise IntakeRejection("Bundlen innehåller ingen ServiceRequest.", code="required")

    bundle = _validate(Bundle, document)
    index_by_reference: dict[str, object] = {}
    for entry in bundle.entry:
        resource = entry.resource
        if entry.fullUrl:
            index_by_reference[entry.fullUrl] = resource
        if getattr(resource, "id", None):
            index_by_reference[f"{resource.get_resource_type()}/{resource.id}"] = resource
    requests = [
        (entry.resource, _Resolver(entry.resource, index_by_reference))
        for entry in bundle.entry
        if entry.resource.get_resource_type() == "ServiceRequest"
    ]
    message_id = bundle.id or (bundle.identifier.value if bundle.identifier else "") or ""
    return requests, message_id


class _Resolver:
    """Finds what a reference points to: a contained resource or a bundle entry."""

    def __init__(self, owner, bundle_index: dict[str, object]) -> None:
        self.contained = {
            f"#{resource.id}": resource for resource in (owner.contained or []) if resource.id
        }
        self.bundle_index = bundle_index

    def __call__(self, reference):
        target = getattr(reference, "reference", None)
        if not target:
            return None
        if target.startswith("#"):
            return self.contained.get(target)
        if target in self.bundle_index:
            return self.bundle_index[target]
        # An absolute URL ending in Type/id points to the bundled resource of that id.
        parts = target.rstrip("/").split("/")
        if len(parts) >= 2:
            return self.bundle_index.get(f"{parts[-2]}/{parts[-1]}")
        return None


# --- Mapping ---------------------------------------------------------------------------------


def _order_from(request: ServiceRequest, resolve: _Resolver, where: str) -> OrderData:
    order_number = _order_number(request, where)
    try:
        return _order_fields(request, resolve, where, order_number)
    except IntakeRejection as rejection:
        rejection.order_number = rejection.order_number or order_number
        raise


def _order_fields(
    request: ServiceRequest, resolve: _Resolver, where: str, order_number: str
) -> OrderData:
    if request.status in ORDER_STATUSES:
        cancel = False
    elif request.status in CANCEL_STATUSES:
        cancel = True
    else:
        raise IntakeRejection(
            f"{where}: status {safe_text(request.status, 30)} tas inte emot "
            "(active eller on-hold för en remiss, revoked för en makulering).",
            code="not-supported",
        )
    # fhir.resources checks that priority is a code, not that it is one of request-priority
    # (our ReferrerPriority codes); an absent priority is routine, as FHIR defines it.
    referrer_priority = request.priority or Referral.ReferrerPriority.ROUTINE
    if referrer_priority not in Referral.ReferrerPriority.values:
        raise IntakeRejection(
            f"{where}: priority {safe_text(referrer_priority, 30)} finns inte i FHIR:s "
            "request-priority (routine, urgent, asap eller stat).",
            code="value",
        )
    written_on = _written_on(request, where)
    personal_number, patient_name = _patient(request, resolve, written_on, where)
    unit, clinician = _requester(request, resolve)

    codings: list[tuple[str, str, str]] = []
    texts: list[str] = []
    if request.code is not None:
        codings = [
            (coding.system or "", coding.code or "", coding.display or "")
            for coding in request.code.coding or []
        ]
        texts = [request.code.text or ""]
    requested, requested_text = examination.examination_from_codings(codings, texts)

    reason_texts = [_concept_text(concept) for concept in request.reasonCode or []]
    reason_texts += [reference.display or "" for reference in request.reasonReference or []]
    note_texts = [note.text or "" for note in request.note or []]
    supporting = [reference.display or "" for reference in request.supportingInfo or []]
    supporting = [text for text in supporting if text]
    anamnesis = examination.join_paragraphs(
        [*reason_texts, *note_texts]
        + ([f"Underlag: {'; '.join(supporting)}"] if supporting else [])
    )
    return OrderData(
        order_number=order_number,
        cancel=cancel,
        personal_number=personal_number,
        patient_name=patient_name,
        written_on=written_on,
        referring_unit=unit,
        referring_clinician=clinician,
        requested=requested,
        requested_text=requested_text,
        anamnesis=anamnesis,
        method_change_allowed=_method_change_allowed(request, reason_texts + note_texts, where),
        referrer_priority=referrer_priority,
    )


def _order_number(request: ServiceRequest, where: str) -> str:
    identifiers = [item for item in request.identifier or [] if item.value]
    placer = [
        item
        for item in identifiers
        if item.type is not None and any(coding.code == "PLAC" for coding in item.type.coding or [])
    ]
    chosen = (placer or identifiers or [None])[0]
    if chosen is None:
        raise IntakeRejection(
            f"{where}: remissnummer saknas (ServiceRequest.identifier).", code="required"
        )
    return chosen.value.strip()


def _written_on(request: ServiceRequest, where: str) -> date:
    authored = request.authoredOn
    if authored is None:
        raise IntakeRejection(f"{where}: remissdatum saknas (authoredOn).", code="required")
    if isinstance(authored, datetime):
        if timezone.is_naive(authored):
            raise IntakeRejection(
                f"{where}: authoredOn har klockslag men ingen tidszon.", code="value"
            )
        return local_date(authored)
    if isinstance(authored, date):
        return authored
    raise IntakeRejection(
        f"{where}: authoredOn {safe_text(authored, 30)} anger inte dag; remissdatumet behövs "
        "med år, månad och dag.",
        code="value",
    )


def _patient(
    request: ServiceRequest, resolve: _Resolver, written_on: date, where: str
) -> tuple[str, str]:
    subject = request.subject
    patient = resolve(subject)
    if patient is None:
        if subject.reference and not subject.identifier:
            raise IntakeRejection(
                f"{where}: patienten {safe_text(subject.reference, 80)} som subject pekar på "
                "finns inte i meddelandet (varken contained eller i bundlen).",
                code="required",
            )
        identifiers = [subject.identifier] if subject.identifier else []
        name = subject.display or ""
        birth_date = None
    elif patient.get_resource_type() != "Patient":
        raise IntakeRejection(
            f"{where}: subject pekar på en {patient.get_resource_type()}, inte en Patient.",
            code="structure",
        )
    else:
        identifiers = list(patient.identifier or [])
        name = _human_name(patient.name)
        birth_date = patient.birthDate

    known = [item for item in identifiers if item.system in SYSTEM_KINDS and item.value]
    if not known:
        if not identifiers:
            raise IntakeRejection(
                f"{where}: patienten saknar personnummer (Patient.identifier).", code="required"
            )
        systems = ", ".join(sorted({str(item.system or "(inget system)") for item in identifiers}))
        raise IntakeRejection(
            f"{where}: okänt identifierarsystem för patienten: {safe_text(systems, 200)}. "
            "Tas emot: personnummer (urn:oid:1.2.752.129.2.1.3.1) och samordningsnummer "
            "(urn:oid:1.2.752.129.2.1.3.3).",
            code="value",
        )
    identities = {
        identity_for(
            item.value,
            expected_kind=SYSTEM_KINDS[item.system],
            reference_date=written_on,
            where=f"{where}: patientens {SYSTEM_KINDS[item.system]}",
        ).number
        for item in known
    }
    if len(identities) > 1:
        raise IntakeRejection(f"{where}: patienten har flera olika personnummer.", code="value")
    number = identities.pop()
    if isinstance(birth_date, date) and birth_date.isoformat().replace("-", "") != _birth(number):
        raise IntakeRejection(
            f"{where}: födelsedatumet {birth_date.isoformat()} stämmer inte med personnumret.",
            code="value",
        )
    return number, name


def _birth(number: str) -> str:
    day = int(number[6:8])
    # A samordningsnummer carries the birth day plus 60.
    return f"{number[:6]}{day - 60 if day > 60 else day:02d}"


def _human_name(names) -> str:
    if not names:
        return ""
    chosen = next((name for name in names if name.use == "official"), names[0])
    if chosen.text:
        return chosen.text.strip()
    return " ".join([*(chosen.given or []), chosen.family or ""]).strip()


def _requester(request: ServiceRequest, resolve: _Resolver) -> tuple[str, str]:
    reference = request.requester
    if reference is None:
        return "", ""
    resource = resolve(reference)
    if resource is None:
        kind = reference.type or (reference.reference or "").split("/")[0]
        display = (reference.display or "").strip()
        return (display, "") if kind == "Organization" else ("", display)
    kind = resource.get_resource_type()
    if kind == "PractitionerRole":
        clinician = _named(resolve, resource.practitioner)
        unit = _named(resolve, resource.organization)
        return unit, clinician
    if kind == "Practitioner":
        return "", _human_name(resource.name)
    if kind == "Organization":
        return (resource.name or "").strip(), ""
    return "", (reference.display or "").strip()


def _named(resolve: _Resolver, reference) -> str:
    if reference is None:
        return ""
    resource = resolve(reference)
    if resource is None:
        return (reference.display or "").strip()
    if resource.get_resource_type() == "Practitioner":
        return _human_name(resource.name) or (reference.display or "").strip()
    return (getattr(resource, "name", None) or reference.display or "").strip()


def _concept_text(concept) -> str:
    if concept.text:
        return concept.text
    return "; ".join(coding.display or coding.code or "" for coding in concept.coding or [])


def _method_change_allowed(request: ServiceRequest, texts: list[str], where: str) -> bool:
    for extension in request.extension or []:
        if extension.url == METHOD_CHANGE_EXTENSION:
            if not isinstance(extension.valueBoolean, bool):
                raise IntakeRejection(
                    f"{where}: tillägget {METHOD_CHANGE_EXTENSION} ska ha valueBoolean.",
                    code="value",
                )
            return extension.valueBoolean
    return not examination.method_change_forbidden_in(texts)
