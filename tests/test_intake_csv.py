"""CSV from Swedish Excel: encodings, number-mangled personnummer, rows, the command's report."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from triage.importers import csv_swedish, inbox, intake
from triage.importers.intake import IntakeRejection, Outcome
from triage.models import InboxMessage, Referral

DATA = Path(__file__).parent / "data" / "intake" / "csv"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def sender(db):
    return intake.sender_register(name="excel", user=None)


def parsed_rows(name: str):
    """(origin, order or rejection text) for every row, without the database."""
    rows = []
    for source in csv_swedish.csv_sources(read(name), origin=name):
        try:
            rows.append((source.origin, source.parse().orders[0]))
        except IntakeRejection as rejection:
            rows.append((source.origin, str(rejection)))
    return rows


def take(sender, name: str):
    return list(
        intake.sources_intake(
            sender=sender,
            format="csv",
            sources=csv_swedish.csv_sources(read(name), origin=name),
        )
    )


def test_utf8_with_bom_quoted_multiline_cell_and_decimal_comma():
    (_, first), (origin, second) = parsed_rows("excel_utf8_bom.csv")

    assert (first.personal_number, first.requested, first.method_change_allowed) == (
        "198208012396",
        "xray",
        True,
    )
    assert origin == "excel_utf8_bom.csv rad 3"
    assert second.method_change_allowed is False
    assert second.anamnesis.splitlines() == [
        'Radikulär smärta höger ben; "sciatica".',
        "Metodbyte ok.",
        "Smärtduration enligt remissen: 6,5 veckor",
    ]


def test_windows_1252_file_keeps_swedish_letters():
    ((_, order),) = parsed_rows("excel_windows1252.csv")

    assert (order.referring_unit, order.referring_clinician) == (
        "Hälsocentralen Åby",
        "Örjan Öberg",
    )
    assert order.requested == "xray"
    assert order.anamnesis.endswith("Smärtduration enligt remissen: 3,5 veckor")


def test_excel_number_corruption_is_an_error_for_that_row_with_its_number():
    rows = dict(parsed_rows("excel_number_corruption.csv"))

    assert rows["excel_number_corruption.csv rad 2"].order_number == "CSV-3001"
    assert rows["excel_number_corruption.csv rad 3"].startswith(
        "Rad 3: personnumret ”1,98208E+11” är ett tal i exponentform"
    )
    assert rows["excel_number_corruption.csv rad 4"].startswith(
        "Rad 4: personnumret ”1012384” har 7 siffror – inledande siffror (nollor)"
    )
    assert "Excel-datumtal" in rows["excel_number_corruption.csv rad 5"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("missing_column.csv", "Kolumn saknas: personnummer"),
        ("comma_separated.csv", "kommaseparerad"),
    ],
)
def test_unreadable_file_is_one_rejection(name, words):
    ((origin, error),) = parsed_rows(name)

    assert origin == name
    assert words in error


def test_file_that_is_neither_utf8_nor_windows_1252_is_refused():
    raw = read("excel_windows1252.csv") + b"\x81\r\n"

    (source,) = csv_swedish.csv_sources(raw, origin="x.csv")
    with pytest.raises(IntakeRejection, match="varken UTF-8 eller Windows-1252"):
        source.parse()


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("abc", "är inget antal veckor"),
        ("-1", "är inget antal veckor"),
        ("NaN", "är inget antal veckor"),
    ],
)
def test_bad_pain_duration_is_a_row_error(cell, words):
    raw = read("excel_windows1252.csv").replace(b";3,5;", f";{cell};".encode())

    ((_, error),) = [
        (source.origin, _error(source)) for source in csv_swedish.csv_sources(raw, origin="x.csv")
    ]
    assert words in error


def _error(source) -> str:
    try:
        source.parse()
    except IntakeRejection as rejection:
        return str(rejection)
    return ""


def test_rows_are_taken_and_duplicate_row_is_unchanged(sender):
    results = take(sender, "duplicate_rows.csv")

    assert [result.orders[0].outcome for result in results] == [
        Outcome.CREATED,
        Outcome.UNCHANGED,
    ]
    referral = Referral.objects.get()
    assert referral.history.get().history_change_reason == (
        "Import från excel: duplicate_rows.csv rad 2"
    )


def test_cancel_row_cancels(sender):
    take(sender, "excel_utf8_bom.csv")

    (result,) = take(sender, "cancel.csv")

    assert result.orders[0].outcome == Outcome.CANCELLED
    assert Referral.objects.get(order_number="CSV-1001").status == Referral.Status.CANCELLED


def test_bad_rows_go_to_inbox_with_header_and_row_bytes_and_good_rows_are_taken(sender):
    results = take(sender, "excel_number_corruption.csv")

    assert [result.rejected for result in results] == [False, True, True, True]
    message = InboxMessage.objects.get(origin="excel_number_corruption.csv rad 3")
    raw = read("excel_number_corruption.csv")
    header_end = raw.index(b"\r\n") + 2
    third_row = raw.splitlines(keepends=True)[2]
    assert bytes(message.raw) == raw[:header_end] + third_row
    assert message.order_number == "CSV-3002"


def test_corrected_row_is_reprocessed_and_keeps_its_row_number(sender, department_head):
    take(sender, "excel_number_corruption.csv")
    message = InboxMessage.objects.get(origin="excel_number_corruption.csv rad 3")
    corrected = bytes(message.raw).decode("utf-8-sig").replace("1,98208E+11", "19940101-2381")

    (result,) = inbox.inbox_reprocess(
        message=message, user=department_head, corrected_text=corrected
    )

    assert not result.rejected
    referral = Referral.objects.get(order_number="CSV-3002")
    assert referral.history.get().history_change_reason.startswith(
        "Import från excel: excel_number_corruption.csv rad 3"
    )


def test_whole_file_rejection_splits_into_rows_after_correction(sender, department_head):
    (result,) = take(sender, "missing_column.csv")
    corrected = (
        "Remissnummer;Personnummer;Namn;Remissdatum\r\n"
        "CSV-4001;19820801-2396;Test Testsson;2025-03-05\r\n"
        "CSV-4002;19940101-2381;Tova Testsson;2025-03-05\r\n"
    )

    results = inbox.inbox_reprocess(
        message=result.inbox_message, user=department_head, corrected_text=corrected
    )

    assert [r.orders[0].outcome for r in results] == [Outcome.CREATED, Outcome.CREATED]
    result.inbox_message.refresh_from_db()
    assert result.inbox_message.status == InboxMessage.Status.REPROCESSED


def test_command_reports_every_row_and_exits_non_zero(sender, capsys):
    with pytest.raises(CommandError) as caught:
        call_command("import_referrals", str(DATA / "excel_number_corruption.csv"))

    assert caught.value.returncode == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "excel_number_corruption.csv (CSV (Excel)):"
    assert lines[1] == "  rad 2: skapad (CSV-3001)"
    assert lines[2].startswith("  rad 3: avvisad – Rad 3: personnumret ”1,98208E+11”")
    assert (
        lines[-1]
        == "  Summa: 1 skapad, 0 uppdaterad, 0 oförändrad dubblett, 0 makulerad, 3 avvisad"
    )


def test_command_exits_zero_when_everything_is_taken(sender, capsys):
    call_command("import_referrals", str(DATA / "excel_utf8_bom.csv"))
    call_command("import_referrals", str(DATA / "excel_utf8_bom.csv"))

    output = capsys.readouterr().out
    assert "rad 2: oförändrad dubblett (CSV-1001) – meddelandet var redan mottaget" in output


def test_command_needs_source_when_several_senders_exist(sender):
    intake.sender_register(name="ris2", user=None)

    with pytest.raises(CommandError, match="--source"):
        call_command("import_referrals", str(DATA / "excel_utf8_bom.csv"))


def test_line_breaks_inside_a_cell_compare_equal_whatever_their_ending(sender):
    lf = read("excel_utf8_bom.csv")
    crlf = lf.replace(b'ben; ""sciatica"".\nMetodbyte', b'ben; ""sciatica"".\r\nMetodbyte')
    list(
        intake.sources_intake(
            sender=sender, format="csv", sources=csv_swedish.csv_sources(lf, origin="a.csv")
        )
    )

    results = list(
        intake.sources_intake(
            sender=sender, format="csv", sources=csv_swedish.csv_sources(crlf, origin="b.csv")
        )
    )

    assert [result.orders[0].outcome for result in results] == [Outcome.UNCHANGED] * 2


def test_priority_column_in_swedish_words_and_unknown_word_rejects_the_row():
    raw = (
        "Remissnummer;Personnummer;Namn;Remissdatum;Undersökning;Anamnes;Prioritet\r\n"
        "P-1;19820801-2396;Test Testsson;2025-03-03;MR ländrygg;Misstänkt cauda equina;Akut\r\n"
        "P-2;19820801-2396;Test Testsson;2025-03-03;MR ländrygg;Ischias;\r\n"
        "P-3;19820801-2396;Test Testsson;2025-03-03;MR ländrygg;Ischias;brådskande\r\n"
        "P-4;19820801-2396;Test Testsson;2025-03-03;MR ländrygg;Ischias;Hög\r\n"
    ).encode()

    rows = []
    for source in csv_swedish.csv_sources(raw, origin="prio.csv"):
        try:
            rows.append(source.parse().orders[0].referrer_priority)
        except IntakeRejection as rejection:
            rows.append(str(rejection))

    assert rows[:3] == ["stat", "routine", "urgent"]
    assert rows[3].startswith("Rad 5: prioritet ”Hög” känns inte igen")
