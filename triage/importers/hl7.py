"""HL7 v2 in: ORM^O01 (2.3, 2.4) and OMI^O23 (2.5.1) orders, answered with an ACK.

Parsed with python-hl7 (small, pure Python, about 0.3 ms a message here; hl7apy's structure
validation cost about 8 ms a message and would not change what we accept). What we read:

- MSH-18 gives the character set (8859/1, UNICODE UTF-8, ASCII); empty means the sender's
  default. Bytes that contradict it are refused and kept raw: invalid UTF-8, C1 control
  bytes or valid multi-byte UTF-8 under 8859/1, doubly encoded UTF-8 ("Ã¤").
- Segments end in CR; CRLF and LF are accepted with a warning.
- PID-3: the repetition whose assigning authority (PID-3.4) is the personnummer OID
  1.2.752.129.2.1.3.1 or the samordningsnummer OID …3.3 (cross-checked against the value),
  or whose identifier type (PID-3.5) is NNSWE or PN. PID-5 name, PID-7 cross-checked.
- ORC-1: NW new, XO change, CA cancel. ORC-2 (or OBR-2) is the placer order number.
- ORC-9 (else OBR-6, else MSH-7) the referral date; ORC-12 (else OBR-16) the referring
  clinician; ORC-21 (else ORC-17) the referring unit.
- OBR-4 the requested examination; OBR-31, OBR-13 and NTE-3 the anamnesis; TQ1-9 (or the
  priority of ORC-7/OBR-27) the referrer's priority (S acute, A as soon as possible, else
  routine), which sorts the worklist. IPC and PV1 are accepted and unused.
- Method change: a text such as "Metodbyte ej tillåtet" in OBR-13 or an NTE forbids it.

A message is taken whole or not at all.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

import hl7 as hl7_library
from django.utils import timezone

from triage.importers import examination
from triage.importers.intake import (
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
from triage.models import IntakeFormat, Sender

# python-hl7 logs (with a traceback) every escape sequence it cannot map; a sender's typo
# is reported to the sender in the ACK, not as an error in our log.
logging.getLogger("hl7").setLevel(logging.CRITICAL)

SUPPORTED_TYPES = frozenset({("ORM", "O01"), ("OMI", "O23")})
SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
CHARSETS = {
    "8859/1": "iso-8859-1",
    "ISO-8859-1": "iso-8859-1",
    "ISO 8859-1": "iso-8859-1",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ASCII": "ascii",
}
MSH18_FOR_CODEC = {"iso-8859-1": "8859/1", "utf-8": "UNICODE UTF-8", "ascii": "ASCII"}
OID_KINDS = {
    "1.2.752.129.2.1.3.1": "personnummer",
    "1.2.752.129.2.1.3.3": "samordningsnummer",
}
NATIONAL_ID_TYPES = frozenset({"NNSWE", "PN"})
# Escape sequences we read differently from python-hl7's defaults: line breaks become
# newlines in the anamnesis, highlighting marks disappear instead of turning into "_".
_UNESCAPE_MAP = {".br": "\n", ".sp": "\n", ".ce": "\n", "H": "", "N": ""}
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_DTM = re.compile(
    r"(?P<date>\d{8})(?P<time>\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?(?P<zone>[+-]\d{4})?"
)
_MESSAGE_START = re.compile(rb"(?:^|(?<=[\r\n]))MSH")
_BATCH_SEGMENT = re.compile(rb"[\r\n](?:BTS|FTS|BHS|FHS)")
# ACK codes: structural problems are "rejected" (AR), content problems "error" (AE).
_AR_CODES = frozenset({"structure", "not-supported", "charset", "exception"})
_HL7_ERROR_CODES = {
    "structure": "100^Segment sequence error",
    "required": "101^Required field missing",
    "value": "102^Data type error",
    "invalid": "102^Data type error",
    "charset": "102^Data type error",
    "not-supported": "200^Unsupported message type",
    "conflict": "205^Duplicate key identifier",
    "business-rule": "207^Application internal error",
    "exception": "207^Application internal error",
}


@dataclass(slots=True)
class Envelope:
    """What the MSH segment says, read without trusting the rest of the message."""

    field_separator: str = "|"
    encoding_characters: str = "^~\\&"
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_code: str = ""
    trigger_event: str = ""
    control_id: str = ""
    version: str = ""
    charset: str = ""
    found: bool = False


def read_envelope(raw: bytes | str) -> Envelope:
    """The MSH fields of a message, best effort; never raises."""
    envelope = Envelope()
    try:
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
        start = data.find(b"MSH")
        if start < 0 or len(data) < start + 8:
            return envelope
        end = len(data)
        for terminator in (b"\r", b"\n"):
            position = data.find(terminator, start)
            if position >= 0:
                end = min(end, position)
        # Latin-1 maps every byte to one character, so the ASCII MSH fields survive whatever
        # the real character set is.
        line = data[start:end].decode("latin-1")
        separator = line[3]
        fields = line.split(separator)
        envelope.field_separator = separator
        envelope.encoding_characters = fields[1][:4] if len(fields) > 1 else "^~\\&"
        component = envelope.encoding_characters[:1] or "^"

        def msh(number: int) -> str:
            # MSH-1 is the separator itself, so MSH-n is fields[n - 1].
            return fields[number - 1] if len(fields) >= number else ""

        envelope.sending_application = msh(3)
        envelope.sending_facility = msh(4)
        envelope.receiving_application = msh(5)
        envelope.receiving_facility = msh(6)
        message_type = msh(9).split(component)
        envelope.message_code = message_type[0]
        envelope.trigger_event = message_type[1] if len(message_type) > 1 else ""
        envelope.control_id = msh(10)
        envelope.version = msh(12).split(component)[0]
        envelope.charset = msh(18).split(envelope.encoding_characters[1:2] or "~")[0].strip()
        envelope.found = True
    except Exception:  # best effort by design: the parser reports the real problem
        return envelope
    return envelope


def hl7_sources(raw: bytes, *, origin: str, default_charset: str) -> Iterator[MessageSource]:
    """The messages of a file: each MSH starts one; batch header and trailer lines are skipped."""
    starts = [match.start() for match in _MESSAGE_START.finditer(raw)]
    if not starts:
        yield MessageSource(
            raw=raw,
            origin=origin,
            parse=rejecting_parse(
                IntakeRejection("Filen innehåller inget HL7-meddelande (MSH).", code="structure")
            ),
        )
        return
    leading = raw[: starts[0]]
    if leading.strip() and not re.fullmatch(rb"(?:(?:FHS|BHS)[^\r\n]*[\r\n]+)*", leading):
        yield MessageSource(
            raw=leading,
            origin=f"{origin} före första MSH",
            parse=rejecting_parse(
                IntakeRejection(
                    "Text före första MSH-segmentet är inget HL7-meddelande.", code="structure"
                )
            ),
        )
    for number, start in enumerate(starts, start=1):
        end = starts[number] if number < len(starts) else len(raw)
        chunk = raw[start:end]
        trailer = _BATCH_SEGMENT.search(chunk)
        if trailer:
            chunk = chunk[: trailer.start() + 1]
        yield MessageSource(
            raw=chunk,
            origin=f"{origin} meddelande {number}",
            parse=_parser_for(chunk, default_charset),
        )


def _parser_for(raw: bytes, default_charset: str):
    return lambda: parse_hl7(raw, default_charset=default_charset)


def intake_hl7(
    *,
    sender: Sender,
    raw: bytes,
    origin: str = "HTTP",
    received_at: datetime | None = None,
) -> IntakeResult:
    """Take in one HL7 message from a sender (one per HTTP request)."""

    def parse() -> ParsedMessage:
        if len(_MESSAGE_START.findall(raw)) > 1:
            raise IntakeRejection(
                "Anropet innehåller flera HL7-meddelanden; skicka ett meddelande per anrop.",
                code="structure",
            )
        return parse_hl7(raw, default_charset=sender.default_charset)

    source = MessageSource(raw=raw, origin=origin, parse=parse)
    return message_intake(
        sender=sender, format=IntakeFormat.HL7, source=source, received_at=received_at
    )


# --- Parsing ---------------------------------------------------------------------------------


def parse_hl7(raw: bytes | str, *, default_charset: str) -> ParsedMessage:
    """A checked ParsedMessage, or IntakeRejection with the reason in Swedish."""
    envelope = read_envelope(raw)
    try:
        return _parse(raw, envelope, default_charset)
    except IntakeRejection as rejection:
        rejection.message_id = rejection.message_id or envelope.control_id
        raise


def _parse(raw: bytes | str, envelope: Envelope, default_charset: str) -> ParsedMessage:
    warnings: list[str] = []
    text = _decode(raw, envelope, default_charset) if isinstance(raw, bytes) else raw
    # MLLP framing characters, when a sender saved the frame with the message.
    text = text.strip("\x0b\x1c")
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
        warnings.append(
            "Segmenten avslutas med CRLF eller LF i stället för CR; meddelandet togs emot ändå."
        )
    segments_text = [segment for segment in text.strip("\r").split("\r") if segment.strip()]
    if not segments_text or not segments_text[0].startswith("MSH"):
        raise IntakeRejection("Meddelandet börjar inte med ett MSH-segment.", code="structure")
    separator = envelope.field_separator
    for number, segment in enumerate(segments_text, start=1):
        segment_id = segment[:3]
        if not _SEGMENT_ID.fullmatch(segment_id) or (len(segment) > 3 and segment[3] != separator):
            raise IntakeRejection(
                f"Trasigt segment nr {number}: ”{safe_text(segment[:30], 40)}” har inget "
                "giltigt segment-id följt av fältavgränsare.",
                code="structure",
            )
    _check_envelope(envelope)
    try:
        message = hl7_library.parse("\r".join(segments_text))
    except Exception as error:  # python-hl7 raises several kinds on malformed separators
        raise IntakeRejection(
            f"HL7-meddelandet kunde inte delas upp i fält ({safe_text(error, 100)}).",
            code="structure",
        ) from None

    content_hash = sha256_hex(_hash_text(segments_text, separator).encode("utf-8"))
    orders = _orders(message, envelope)
    return ParsedMessage(
        message_key=f"msh10:{envelope.control_id}",
        content_hash=content_hash,
        label=f"HL7 {envelope.message_code}^{envelope.trigger_event} {envelope.control_id}",
        orders=orders,
        message_id=envelope.control_id,
        warnings=warnings,
    )


def _hash_text(segments: list[str], separator: str) -> str:
    # MSH-7 (time of the message) is left out: a re-sent message often gets a new
    # timestamp but is the same message.
    fields = segments[0].split(separator)
    if len(fields) > 6:
        fields[6] = ""
    return "\r".join([separator.join(fields), *segments[1:]])


def _decode(raw: bytes, envelope: Envelope, default_charset: str) -> str:
    declared = envelope.charset.upper()
    if declared and declared not in CHARSETS:
        raise IntakeRejection(
            f"Teckenuppsättningen {safe_text(envelope.charset, 40)} i MSH-18 stöds inte; "
            "använd 8859/1 eller UNICODE UTF-8.",
            code="charset",
        )
    codec = CHARSETS[declared] if declared else default_charset
    source = f"MSH-18 ({envelope.charset})" if declared else "avsändarens standard (MSH-18 tomt)"
    try:
        text = raw.decode("utf-8-sig" if codec == "utf-8" else codec)
    except (UnicodeDecodeError, LookupError) as error:
        position = getattr(error, "start", 0)
        raise IntakeRejection(
            f"Meddelandets byte stämmer inte med teckenuppsättningen {codec} enligt {source}: "
            f"ogiltig byte 0x{raw[position]:02x} på position {position}. Meddelandet har inte "
            "tolkats för att inte lagra förvanskad text.",
            code="charset",
        ) from None
    if codec == "iso-8859-1":
        # Valid multi-byte UTF-8 first: its continuation bytes (0x80-0xbf) would otherwise be
        # reported as Windows-1252 control bytes.
        if re.search(rb"[\x80-\xff]", raw) and _is_utf8(raw):
            raise IntakeRejection(
                f"Meddelandet är kodat i UTF-8 men {source} anger ISO-8859-1; å, ä och ö skulle "
                "bli fel. Rätta MSH-18 eller avsändarens standardteckenkodning.",
                code="charset",
            )
        control = re.search(rb"[\x80-\x9f]", raw)
        if control:
            raise IntakeRejection(
                f"Meddelandet innehåller byte 0x{control.group()[0]:02x} som inte är ett tecken "
                f"i ISO-8859-1 (troligen Windows-1252), men {source} anger ISO-8859-1.",
                code="charset",
            )
    if codec == "utf-8" and re.search("[ÃÂ][\u0080-\u00bf]", text):
        raise IntakeRejection(
            "Meddelandet ser ut att vara dubbelkodat (t.ex. ”Ã¤” i stället för ”ä”): UTF-8 som "
            "har kodats om en gång till. Avsändaren behöver rätta sin teckenkodning.",
            code="charset",
        )
    return text


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_envelope(envelope: Envelope) -> None:
    if (envelope.message_code, envelope.trigger_event) not in SUPPORTED_TYPES:
        raise IntakeRejection(
            f"Meddelandetypen {safe_text(envelope.message_code, 10)}^"
            f"{safe_text(envelope.trigger_event, 10)} tas inte emot; skicka ORM^O01 eller "
            "OMI^O23.",
            code="not-supported",
        )
    if envelope.version not in SUPPORTED_VERSIONS:
        raise IntakeRejection(
            f"HL7-version {safe_text(envelope.version, 10) or '(saknas)'} stöds inte "
            "(2.3, 2.3.1, 2.4, 2.5 eller 2.5.1).",
            code="not-supported",
        )
    if not envelope.control_id.strip():
        raise IntakeRejection("MSH-10 (meddelande-id) saknas.", code="required")


# --- Reading fields -----------------------------------------------------------------------------


def _value(message, segment, field_number: int, component: int = 1, repetition: int = 1) -> str:
    """One component of one field, unescaped; "" when the message does not go that deep."""
    if field_number >= len(segment):
        return ""
    node = segment[field_number]
    for index in (repetition, component):
        if isinstance(node, str):
            if index != 1:
                return ""
            continue
        if index > len(node):
            return ""
        node = node[index - 1]
    while not isinstance(node, str):
        node = node[0] if len(node) else ""
    return message.unescape(node, app_map=_UNESCAPE_MAP).replace("\r", "\n").strip()


def _subcomponents(text: str, separator: str) -> list[str]:
    return [part.strip() for part in text.split(separator)]


def _repetitions(segment, field_number: int) -> int:
    if field_number >= len(segment):
        return 0
    node = segment[field_number]
    return 1 if isinstance(node, str) else len(node)


@dataclass(slots=True)
class _OrderGroup:
    orc: object | None = None
    obr: object | None = None
    notes: list[str] = field(default_factory=list)
    tq1: object | None = None


def _orders(message, envelope: Envelope) -> list[OrderData]:
    pid = None
    groups: list[_OrderGroup] = []
    for segment in message:
        segment_id = str(segment[0])
        if segment_id == "PID":
            if pid is not None:
                raise IntakeRejection("Meddelandet har mer än ett PID-segment.", code="structure")
            pid = segment
        elif segment_id == "ORC":
            groups.append(_OrderGroup(orc=segment))
        elif segment_id == "OBR":
            if not groups or groups[-1].obr is not None:
                groups.append(_OrderGroup())
            groups[-1].obr = segment
        elif segment_id == "NTE" and groups:
            groups[-1].notes.append(
                "\n".join(
                    _value(message, segment, 3, repetition=index)
                    for index in range(1, _repetitions(segment, 3) + 1)
                )
            )
        elif segment_id == "TQ1" and groups:
            groups[-1].tq1 = segment
    if pid is None:
        raise IntakeRejection("PID-segment (patient) saknas.", code="required")
    if not groups:
        raise IntakeRejection("ORC- och OBR-segment (beställning) saknas.", code="required")
    return [_order(message, envelope, pid, group) for group in groups]


def _order(message, envelope: Envelope, pid, group: _OrderGroup) -> OrderData:
    orc, obr = group.orc, group.obr
    order_number = ""
    try:
        placer_orc = _value(message, orc, 2) if orc is not None else ""
        placer_obr = _value(message, obr, 2) if obr is not None else ""
        if placer_orc and placer_obr and placer_orc != placer_obr:
            raise IntakeRejection(
                f"ORC-2 ({safe_text(placer_orc, 64)}) och OBR-2 ({safe_text(placer_obr, 64)}) "
                "anger olika remissnummer.",
                code="value",
            )
        order_number = placer_orc or placer_obr
        if not order_number:
            raise IntakeRejection("Remissnummer saknas (ORC-2/OBR-2).", code="required")
        return _order_fields(message, envelope, pid, group, order_number)
    except IntakeRejection as rejection:
        rejection.order_number = rejection.order_number or order_number[:64]
        raise


def _order_fields(
    message, envelope: Envelope, pid, group: _OrderGroup, order_number: str
) -> OrderData:
    orc, obr = group.orc, group.obr
    control = _value(message, orc, 1).upper() if orc is not None else "NW"
    if control in ("NW", "XO"):
        cancel = False
        if obr is None:
            raise IntakeRejection(
                "OBR-segment (undersökning) saknas för beställningen.", code="required"
            )
    elif control == "CA":
        cancel = True
    else:
        raise IntakeRejection(
            f"ORC-1 {safe_text(control, 10) or '(tomt)'} stöds inte; använd NW (ny), XO "
            "(ändring) eller CA (makulering).",
            code="not-supported",
        )

    written_on = _written_on(message, envelope, orc, obr)
    personal_number = _personal_number(message, pid, written_on)
    birth = _value(message, pid, 7)[:8]
    if birth and birth != _birth_digits(personal_number):
        raise IntakeRejection(
            f"Födelsedatumet i PID-7 ({safe_text(birth, 8)}) stämmer inte med personnumret.",
            code="value",
        )
    patient_name = _name(message, pid)

    clinician = _person(message, orc, 12) if orc is not None else ""
    if not clinician and obr is not None:
        clinician = _person(message, obr, 16)
    unit = _value(message, orc, 21) if orc is not None else ""
    if not unit and orc is not None:
        unit = _value(message, orc, 17, component=2) or _value(message, orc, 17)

    requested, requested_text = examination.OTHER, ""
    anamnesis_parts: list[str] = []
    texts: list[str] = []
    if obr is not None:
        codings = [
            (
                _value(message, obr, 4, component=3),
                _value(message, obr, 4, component=1),
                _value(message, obr, 4, component=2),
            ),
            (
                _value(message, obr, 4, component=6),
                _value(message, obr, 4, component=4),
                _value(message, obr, 4, component=5),
            ),
        ]
        codings = [coding for coding in codings if coding[1] or coding[2]]
        requested, requested_text = examination.examination_from_codings(
            codings, [_value(message, obr, 4, component=2)]
        )
        reasons = [
            _value(message, obr, 31, component=2, repetition=index)
            or _value(message, obr, 31, repetition=index)
            for index in range(1, _repetitions(obr, 31) + 1)
        ]
        texts = [*reasons, _value(message, obr, 13), *group.notes]
        anamnesis_parts = texts
        referrer_priority = _priority(message, group)
    else:
        texts = list(group.notes)
        anamnesis_parts = texts
        referrer_priority = "routine"
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
        anamnesis=examination.join_paragraphs(anamnesis_parts),
        method_change_allowed=not examination.method_change_forbidden_in(texts),
        referrer_priority=referrer_priority,
    )


def _priority(message, group: _OrderGroup) -> str:
    code = ""
    if group.tq1 is not None:
        code = _value(message, group.tq1, 9)
    if not code and group.orc is not None:
        code = _value(message, group.orc, 7, component=6)
    if not code and group.obr is not None:
        code = _value(message, group.obr, 27, component=6)
    # Some senders write the word ("STAT", "Akut") where the table code belongs.
    priority = examination.HL7_PRIORITIES.get(code.strip().upper())
    priority = priority or examination.priority_from_word(code)
    if priority is not None:
        return priority
    # Never guess "routine" for a code we do not know: it may mean acute.
    raise IntakeRejection(
        f"Prioriteten ”{safe_text(code, 20)}” (TQ1-9, ORC-7.6 eller OBR-27.6) känns inte "
        "igen; HL7-tabell 0027 har S (akut), A (snarast), R (rutin), P, C, T och PRN.",
        code="value",
    )


def _written_on(message, envelope: Envelope, orc, obr) -> date:
    candidates = [
        ("ORC-9", _value(message, orc, 9) if orc is not None else ""),
        ("OBR-6", _value(message, obr, 6) if obr is not None else ""),
        ("MSH-7", _value(message, message.segment("MSH"), 7)),
    ]
    for name, text in candidates:
        if text:
            return _dtm_date(text, name)
    raise IntakeRejection("Remissdatum saknas (ORC-9, OBR-6 och MSH-7 är tomma).", code="required")


def _dtm_date(text: str, name: str) -> date:
    match = _DTM.fullmatch(text.strip())
    if match is None:
        raise IntakeRejection(
            f"{name} ({safe_text(text, 30)}) är ingen HL7-tidpunkt (ÅÅÅÅMMDD[TTMM[SS]][+ZZZZ]).",
            code="value",
        )
    digits = match.group("date")
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise IntakeRejection(
            f"{name} ({safe_text(text, 30)}) är inget giltigt datum.", code="value"
        ) from None
    time_digits, zone = match.group("time"), match.group("zone")
    if not (time_digits and zone):
        # Without an offset the time is the sender's local, Swedish time: the date stands.
        return day
    hour, minute = int(time_digits[:2]), int(time_digits[2:4] or 0)
    if hour > 23 or minute > 59:
        raise IntakeRejection(f"{name} ({safe_text(text, 30)}) har ogiltig tid.", code="value")
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    if offset >= timedelta(hours=24):
        raise IntakeRejection(f"{name} ({safe_text(text, 30)}) har ogiltig tidszon.", code="value")
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt_timezone(sign * offset))
    return local_date(moment)


def _personal_number(message, pid, written_on: date) -> str:
    subcomponent_separator = message.separators[4] if len(message.separators) > 4 else "&"
    seen_authorities: list[str] = []
    for index in range(1, _repetitions(pid, 3) + 1):
        value = _value(message, pid, 3, repetition=index)
        if not value:
            continue
        authority_parts = _subcomponents(_raw_component(pid, 3, 4, index), subcomponent_separator)
        type_code = _value(message, pid, 3, component=5, repetition=index).upper()
        oids = {part.removeprefix("urn:oid:") for part in authority_parts if part}
        kinds = {OID_KINDS[oid] for oid in oids if oid in OID_KINDS}
        if kinds:
            return identity_for(
                value,
                expected_kind=kinds.pop() if len(kinds) == 1 else None,
                reference_date=written_on,
                where="PID-3",
            ).number
        if type_code in NATIONAL_ID_TYPES:
            return identity_for(
                value, expected_kind=None, reference_date=written_on, where="PID-3"
            ).number
        seen_authorities.append("&".join(part for part in authority_parts if part) or "(tom)")
    if not seen_authorities:
        raise IntakeRejection("Patientens personnummer saknas (PID-3).", code="required")
    raise IntakeRejection(
        "Okänt identifierarsystem i PID-3.4: "
        f"{safe_text(', '.join(seen_authorities), 200)}. Tas emot: personnummer "
        "(1.2.752.129.2.1.3.1), samordningsnummer (1.2.752.129.2.1.3.3) eller "
        "identifierartyp NNSWE/PN.",
        code="value",
    )


def _birth_digits(number: str) -> str:
    day = int(number[6:8])
    # A samordningsnummer carries the birth day plus 60.
    return f"{number[:6]}{day - 60 if day > 60 else day:02d}"


def _raw_component(segment, field_number: int, component: int, repetition: int) -> str:
    """A component with its subcomponent separators intact (for an HD such as
    "SKV&1.2.752.129.2.1.3.1&ISO")."""
    if field_number >= len(segment):
        return ""
    node = segment[field_number]
    for index in (repetition, component):
        if isinstance(node, str):
            return node if index == 1 else ""
        if index > len(node):
            return ""
        node = node[index - 1]
    return str(node)


def _name(message, pid) -> str:
    family = _value(message, pid, 5, component=1)
    given = _value(message, pid, 5, component=2)
    return " ".join(part for part in (given, family) if part)


def _person(message, segment, field_number: int) -> str:
    family = _value(message, segment, field_number, component=2)
    given = _value(message, segment, field_number, component=3)
    name = " ".join(part for part in (given, family) if part)
    return name or _value(message, segment, field_number, component=1)


# --- Acknowledgement ---------------------------------------------------------------------------


def ack_code(result: IntakeResult) -> str:
    if not result.rejected:
        return "AA"
    return "AR" if result.error_code in _AR_CODES else "AE"


def build_ack(envelope: Envelope, result: IntakeResult) -> tuple[bytes, str]:
    """The ACK bytes and their character set, as the sender's own MSH-18 asks for."""
    code = ack_code(result)
    codec = CHARSETS.get(envelope.charset.upper(), "utf-8")
    separator = envelope.field_separator if envelope.found else "|"
    encoding = envelope.encoding_characters if envelope.found else "^~\\&"
    component = encoding[0]
    version = envelope.version if envelope.version in SUPPORTED_VERSIONS else "2.5.1"
    trigger = envelope.trigger_event or "O01"
    message_type = component.join(
        ["ACK", trigger] if version.startswith("2.3") else ["ACK", trigger, "ACK"]
    )
    now = timezone.localtime()
    text = result.error if result.rejected else result.describe()
    msh = [
        "MSH",
        encoding,
        envelope.receiving_application,
        envelope.receiving_facility,
        envelope.sending_application,
        envelope.sending_facility,
        now.strftime("%Y%m%d%H%M%S%z"),
        "",
        message_type,
        uuid.uuid4().hex[:20],
        "P",
        version,
        "",  # MSH-13 to MSH-17
        "",
        "",
        "",
        "",
        MSH18_FOR_CODEC.get(codec, "UNICODE UTF-8") if envelope.charset else "",
    ]
    segments = [
        separator.join(msh),
        separator.join(
            ["MSA", code, envelope.control_id, _escape(text[:200], encoding, separator)]
        ),
    ]
    if code != "AA" and not version.startswith(("2.3", "2.4")):
        error_code = _HL7_ERROR_CODES.get(result.error_code, "207^Application internal error")
        segments.append(
            separator.join(
                [
                    "ERR",
                    "",
                    "",
                    error_code.replace("^", component) + f"{component}HL70357",
                    "E",
                    "",
                    "",
                    "",
                    _escape(text, encoding, separator),
                ]
            )
        )
    body = "\r".join(segments) + "\r"
    return body.encode(codec, "replace"), codec


def _escape(text: str, encoding: str, separator: str = "|") -> str:
    escape = encoding[2] if len(encoding) > 2 else "\\"
    specials = {
        escape: "E",
        separator: "F",
        encoding[0]: "S",
        encoding[1] if len(encoding) > 1 else "~": "R",
        encoding[3] if len(encoding) > 3 else "&": "T",
    }
    out = []
    for character in text:
        if character in specials:
            out.append(f"{escape}{specials[character]}{escape}")
        elif character == "\n":
            out.append(f"{escape}.br{escape}")
        elif ord(character) >= 32:
            out.append(character)
    return "".join(out)
