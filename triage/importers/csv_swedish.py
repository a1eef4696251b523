"""CSV as Swedish Excel saves it: one referral per row, `;` between cells, UTF-8 with BOM
(or without) or Windows-1252, decimal comma, dates as ÅÅÅÅ-MM-DD.

The first row names the columns (any order, case and spacing; see COLUMNS). Every data row
is a message of its own: a problem in a row rejects that row, with its Excel row number,
and the other rows are still taken in. A row that goes to the inbox keeps the header and the
row's own bytes, so it can be corrected and re-processed alone.

A personnummer must reach us as text. When Excel has turned the column into numbers the
cell reads "1,98208E+11" or has lost its leading zero; such a row is refused with a
sentence saying what happened, never guessed at.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation

from triage.importers import examination
from triage.importers.intake import (
    IntakeRejection,
    MessageSource,
    OrderData,
    ParsedMessage,
    identity_for,
    rejecting_parse,
    safe_text,
    sha256_hex,
)

COLUMNS: dict[str, tuple[str, ...]] = {
    "order_number": ("remissnummer", "remiss-id", "remissid", "beställningsnummer", "ordernummer"),
    "personal_number": ("personnummer", "personnr", "pnr", "person-/samordningsnummer"),
    "name": ("namn", "patientnamn", "patientens namn"),
    "given_name": ("förnamn",),
    "family_name": ("efternamn",),
    "written_on": ("remissdatum", "datum"),
    "referring_unit": ("remitterande enhet", "enhet", "vårdenhet"),
    "referring_clinician": ("remittent", "remitterande läkare", "läkare"),
    "examination": ("undersökning", "önskad undersökning", "beställd undersökning"),
    "anamnesis": ("anamnes", "anamnes och frågeställning", "frågeställning"),
    "method_change": ("metodbyte", "metodbyte tillåtet", "metodbyte tillåts"),
    "priority": ("prioritet", "remittentens prioritet", "angelägenhetsgrad"),
    "status": ("status", "åtgärd"),
    "pain_weeks": ("smärtduration (veckor)", "smärtduration", "besvärsduration (veckor)"),
}
REQUIRED_COLUMNS = ("order_number", "personal_number", "written_on")
ORDER_WORDS = frozenset({"", "ny", "aktiv", "ändrad", "ändring", "uppdaterad"})
CANCEL_WORDS = frozenset({"makulerad", "makulera", "makulering", "annullerad", "återkallad"})
_SCIENTIFIC = re.compile(r"\d+(?:[.,]\d+)?[eE][+-]?\d+")
_DECIMAL_NUMBER = re.compile(r"\d+[.,]\d+")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_WHITESPACE = re.compile(r"\s+")


def _normalise_header(text: str) -> str:
    return _WHITESPACE.sub(" ", text.replace("\ufeff", "").strip().casefold())


_COLUMN_FOR_HEADER = {name: key for key, names in COLUMNS.items() for name in names}


class _LineTracker:
    """Hands lines to csv.reader and remembers them, so a record's exact text is known
    even when a quoted cell spans several lines."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self.consumed: list[str] = []

    def __iter__(self) -> _LineTracker:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed.append(line)
        return line

    def take(self) -> str:
        text = "".join(self.consumed)
        self.consumed.clear()
        return text

    def rest(self) -> str:
        return self.take() + "".join(self._lines)


def csv_sources(raw: bytes, *, origin: str, first_data_row: int = 2) -> Iterator[MessageSource]:
    """One message per data row, or one rejected message for a file that cannot be read.

    `first_data_row` is the Excel row number of the first data row: 2 for a file, the
    original row number for a single row re-processed from the inbox.
    """
    try:
        text, codec, bom = _decode(raw)
        tracker = _LineTracker(text)
        reader = csv.reader(tracker, delimiter=";")
        header = next(reader, None)
        header_text = tracker.take()
        columns = _columns(header)
    except IntakeRejection as rejection:
        yield MessageSource(raw=raw, origin=origin, parse=rejecting_parse(rejection))
        return
    except csv.Error as error:
        yield MessageSource(
            raw=raw,
            origin=origin,
            parse=rejecting_parse(
                IntakeRejection(f"Rubrikraden kunde inte läsas: {error}.", code="structure")
            ),
        )
        return

    def encoded(record_text: str) -> bytes:
        return bom + (header_text + record_text).encode(codec)

    row_number = first_data_row - 1  # the header is row 1, as Excel numbers it
    while True:
        row_number += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # The reader cannot be trusted after this point: everything from here on goes
            # to the inbox as one message, so nothing is dropped.
            yield MessageSource(
                raw=encoded(tracker.rest()),
                origin=f"{origin} rad {row_number} och framåt",
                parse=rejecting_parse(
                    IntakeRejection(
                        f"Rad {row_number}: CSV-fel ({error}); resten av filen har inte lästs.",
                        code="structure",
                    )
                ),
            )
            return
        record_text = tracker.take()
        if not any(cell.strip() for cell in row):
            continue
        yield MessageSource(
            raw=encoded(record_text),
            origin=f"{origin} rad {row_number}",
            parse=_row_parser(row, columns, row_number, origin),
        )


def _row_parser(row: list[str], columns: dict[str, int], row_number: int, origin: str):
    return lambda: parse_csv_row(row, columns, row_number=row_number, origin=origin)


def _decode(raw: bytes) -> tuple[str, str, bytes]:
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[3:].decode("utf-8"), "utf-8", codecs.BOM_UTF8
        except UnicodeDecodeError as error:
            raise IntakeRejection(
                f"Filen börjar som UTF-8 (BOM) men byte {error.start + 3} är inte UTF-8.",
                code="charset",
            ) from None
    try:
        return raw.decode("utf-8"), "utf-8", b""
    except UnicodeDecodeError:
        pass
    try:
        # Excel's "CSV (semikolonavgränsad)" on Swedish Windows.
        return raw.decode("cp1252"), "cp1252", b""
    except UnicodeDecodeError as error:
        raise IntakeRejection(
            f"Filen är varken UTF-8 eller Windows-1252 (byte 0x{raw[error.start]:02x} på "
            f"position {error.start}).",
            code="charset",
        ) from None


def _columns(header: list[str] | None) -> dict[str, int]:
    if not header or not any(cell.strip() for cell in header):
        raise IntakeRejection("Filen saknar rubrikrad.", code="structure")
    if len(header) == 1 and "," in header[0]:
        raise IntakeRejection(
            "Filen är kommaseparerad; spara den som ”CSV (semikolonavgränsad)” i Excel.",
            code="structure",
        )
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _COLUMN_FOR_HEADER.get(_normalise_header(cell))
        if key is not None and key not in columns:
            columns[key] = index
    missing = [COLUMNS[key][0] for key in REQUIRED_COLUMNS if key not in columns]
    if "name" not in columns and not {"given_name", "family_name"} <= columns.keys():
        missing.append("namn")
    if missing:
        raise IntakeRejection(
            f"Kolumn saknas: {', '.join(missing)}. Rubrikraden ska namnge kolumnerna "
            "remissnummer, personnummer, namn, remissdatum, remitterande enhet, remittent, "
            "undersökning, anamnes (och gärna metodbyte, prioritet, status).",
            code="structure",
        )
    return columns


def parse_csv_row(
    row: list[str], columns: dict[str, int], *, row_number: int, origin: str
) -> ParsedMessage:
    """One row as a ParsedMessage, or IntakeRejection naming the row."""
    cells = {
        key: (row[index].strip() if index < len(row) else "") for key, index in columns.items()
    }
    where = f"Rad {row_number}"
    order_number = cells.get("order_number", "")
    try:
        order = _order(cells, where)
    except IntakeRejection as rejection:
        rejection.order_number = rejection.order_number or order_number[:64]
        raise
    content_hash = sha256_hex(json.dumps(cells, sort_keys=True, ensure_ascii=True).encode("ascii"))
    return ParsedMessage(
        message_key=f"csv:{content_hash}",
        content_hash=content_hash,
        label=f"{origin} rad {row_number}",
        orders=[order],
        message_id=f"{origin} rad {row_number}",
    )


def _order(cells: dict[str, str], where: str) -> OrderData:
    order_number = cells.get("order_number", "")
    if not order_number:
        raise IntakeRejection(f"{where}: remissnummer saknas.", code="required")
    written_on = _written_on(cells.get("written_on", ""), where)
    personal_number = _personal_number(cells.get("personal_number", ""), written_on, where)

    status = cells.get("status", "").casefold()
    if status in CANCEL_WORDS:
        cancel = True
    elif status in ORDER_WORDS:
        cancel = False
    else:
        raise IntakeRejection(
            f"{where}: status ”{safe_text(status, 30)}” känns inte igen (tom, ”ny”, ”ändrad” "
            "eller ”makulerad”).",
            code="value",
        )
    name = cells.get("name") or " ".join(
        part for part in (cells.get("given_name", ""), cells.get("family_name", "")) if part
    )
    anamnesis = cells.get("anamnesis", "")
    method_cell = cells.get("method_change", "")
    method_change_allowed = examination.parse_yes_no(method_cell)
    if method_cell and method_change_allowed is None:
        raise IntakeRejection(
            f"{where}: metodbyte ”{safe_text(method_cell, 30)}” ska vara ja eller nej.",
            code="value",
        )
    if method_change_allowed is None:
        method_change_allowed = not examination.method_change_forbidden_in([anamnesis])
    priority_cell = cells.get("priority", "")
    referrer_priority = examination.priority_from_word(priority_cell)
    if referrer_priority is None:
        raise IntakeRejection(
            f"{where}: prioritet ”{safe_text(priority_cell, 30)}” känns inte igen (tom, "
            "”rutin”, ”brådskande”, ”snarast” eller ”akut”).",
            code="value",
        )
    pain_line = _pain_line(cells.get("pain_weeks", ""), where)
    requested, requested_text = examination.examination_from_codings(
        [], [cells.get("examination", "")]
    )
    return OrderData(
        order_number=order_number,
        cancel=cancel,
        personal_number=personal_number,
        patient_name=name,
        written_on=written_on,
        referring_unit=cells.get("referring_unit", ""),
        referring_clinician=cells.get("referring_clinician", ""),
        requested=requested,
        requested_text=requested_text,
        anamnesis=examination.join_paragraphs([anamnesis, pain_line]),
        method_change_allowed=method_change_allowed,
        referrer_priority=referrer_priority,
    )


def _personal_number(text: str, written_on: date, where: str) -> str:
    if not text:
        raise IntakeRejection(f"{where}: personnummer saknas.", code="required")
    shown = safe_text(text, 30)
    if _SCIENTIFIC.fullmatch(text):
        raise IntakeRejection(
            f"{where}: personnumret ”{shown}” är ett tal i exponentform – Excel har gjort om "
            "kolumnen till tal och siffror har gått förlorade. Formatera kolumnen som Text och "
            "spara filen igen.",
            code="value",
        )
    if _DECIMAL_NUMBER.fullmatch(text):
        raise IntakeRejection(
            f"{where}: personnumret ”{shown}” är ett decimaltal – Excel har gjort om kolumnen "
            "till tal. Formatera kolumnen som Text och spara filen igen.",
            code="value",
        )
    if text.isdigit() and text.isascii() and len(text) in (7, 8, 9, 11):
        raise IntakeRejection(
            f"{where}: personnumret ”{shown}” har {len(text)} siffror – inledande siffror "
            "(nollor) har troligen försvunnit när Excel tolkade det som ett tal. Formatera "
            "kolumnen som Text och spara filen igen.",
            code="value",
        )
    return identity_for(
        text, expected_kind=None, reference_date=written_on, where=f"{where}: personnumret"
    ).number


def _written_on(text: str, where: str) -> date:
    if not text:
        raise IntakeRejection(f"{where}: remissdatum saknas.", code="required")
    match = _DATE.fullmatch(text)
    if match is None:
        hint = (
            " Cellen ser ut som ett Excel-datumtal; formatera kolumnen som datum ÅÅÅÅ-MM-DD."
            if text.isdigit()
            else ""
        )
        raise IntakeRejection(
            f"{where}: remissdatum ”{safe_text(text, 30)}” ska skrivas ÅÅÅÅ-MM-DD.{hint}",
            code="value",
        )
    year, month, day, hour, minute, second = match.groups()
    try:
        written = date(int(year), int(month), int(day))
        # Only the date is kept; the time is checked so that a garbled cell is not trusted.
        if hour is not None and not (int(hour) < 24 and int(minute) < 60 and int(second or 0) < 60):
            raise ValueError
    except ValueError:
        raise IntakeRejection(
            f"{where}: remissdatum ”{safe_text(text, 30)}” finns inte i kalendern.",
            code="value",
        ) from None
    return written


def _pain_line(text: str, where: str) -> str:
    if not text:
        return ""
    # Decimal comma as Swedish Excel writes it; a point is accepted from other tools.
    cleaned = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        weeks = Decimal(cleaned)
    except InvalidOperation:
        weeks = None
    if weeks is None or not weeks.is_finite() or weeks < 0 or weeks > 5200:
        raise IntakeRejection(
            f"{where}: smärtdurationen ”{safe_text(text, 30)}” är inget antal veckor "
            "(skriv t.ex. 6,5).",
            code="value",
        )
    shown = format(weeks.normalize(), "f").replace(".", ",")
    return f"Smärtduration enligt remissen: {shown} veckor"
