"""HL7 v2 intake: ORM^O01 and OMI^O23, character sets, escapes, segments and the ACK."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from triage.importers import hl7, intake
from triage.importers.intake import IntakeRejection, Outcome
from triage.models import InboxMessage, Referral, Sender

DATA = Path(__file__).parent / "data" / "intake" / "hl7"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def sender(db):
    return intake.sender_register(name="ris-test", user=None)


def take(sender, name: str):
    return hl7.intake_hl7(sender=sender, raw=read(name), origin=name)


def ack_segments(raw: bytes, result) -> list[list[str]]:
    ack, codec = hl7.build_ack(hl7.read_envelope(raw), result)
    return [segment.split("|") for segment in ack.decode(codec).split("\r") if segment]


# --- Parsing, without the database -----------------------------------------------------------


def test_orm_v23_latin1_maps_fields_and_decodes_escapes():
    parsed = hl7.parse_hl7(read("orm_o01_v23_latin1.hl7"), default_charset="utf-8")

    (order,) = parsed.orders
    assert (order.order_number, order.cancel) == ("HL7-1001", False)
    assert (order.personal_number, order.patient_name) == ("198208012396", "Test Testsson")
    assert order.written_on == date(2025, 3, 3)
    assert (order.referring_unit, order.referring_clinician) == (
        "Vårdcentralen Testby",
        "Lena Läkare",
    )
    assert (order.requested, order.requested_text) == ("xray", "Röntgen LÄNDRYGGRAD")
    assert order.anamnesis.splitlines() == [
        "Ont i ländryggen sedan 5 veckor",
        "Ej trauma",
        "Önskar bedömning av degenerativa förändringar",
    ]
    assert parsed.warnings == []
    assert parsed.message_id == "HL7-0001"
    assert order.referrer_priority == "routine"


def test_omi_v251_utf8_reads_samordningsnummer_priority_and_escaped_separators():
    (order,) = hl7.parse_hl7(read("omi_o23_v251_utf8.hl7"), default_charset="utf-8").orders

    assert order.personal_number == "197010632391"
    assert (order.requested, order.referring_clinician) == ("ct", "Olle Ortoped")
    assert order.referrer_priority == "stat"  # TQ1-9 S
    assert "prioritet" not in order.anamnesis
    assert "Fall från stege & smärta L1|L2." in order.anamnesis
    assert order.method_change_allowed is False


@pytest.mark.parametrize(
    ("tq1_priority", "expected"),
    [("S^Stat", "stat"), ("A", "asap"), ("R", "routine"), ("PRN", "routine"), ("STAT", "stat")],
)
def test_hl7_priority_codes_and_words(tq1_priority, expected):
    raw = read("omi_o23_v251_utf8.hl7").replace(b"|S^Stat", f"|{tq1_priority}".encode())

    (order,) = hl7.parse_hl7(raw, default_charset="utf-8").orders

    assert order.referrer_priority == expected


def test_unknown_hl7_priority_is_refused_not_taken_as_routine():
    raw = read("omi_o23_v251_utf8.hl7").replace(b"|S^Stat", b"|X9")

    with pytest.raises(IntakeRejection, match="Prioriteten ”X9”"):
        hl7.parse_hl7(raw, default_charset="utf-8")


def test_referral_taken_in_with_the_old_priority_line_is_unchanged_when_sent_again(sender):
    take(sender, "omi_o23_v251_utf8.hl7")
    referral = Referral.objects.get()
    # As migration 0010 left a referral that an earlier version took in: the priority as
    # the anamnesis's first line as well as in the field; since then decided.
    Referral.objects.filter(pk=referral.pk).update(
        anamnesis="Remittentens prioritet: Akut\n" + referral.anamnesis,
        status=Referral.Status.DECIDED,
    )
    again = read("omi_o23_v251_utf8.hl7").replace(b"|HL7-0003|", b"|HL7-0003B|")

    result = hl7.intake_hl7(sender=sender, raw=again, origin="again")

    assert [order.outcome for order in result.orders] == [Outcome.UNCHANGED]
    assert not result.rejected


def test_crlf_segments_are_accepted_with_a_warning():
    parsed = hl7.parse_hl7(read("orm_o01_v24_crlf.hl7"), default_charset="utf-8")

    assert parsed.orders[0].requested == "mri"
    assert "CRLF" in parsed.warnings[0]


def test_crlf_and_cr_versions_of_a_message_hash_alike():
    cr = read("orm_o01_v23_latin1.hl7")

    assert (
        hl7.parse_hl7(cr, default_charset="utf-8").content_hash
        == hl7.parse_hl7(cr.replace(b"\r", b"\r\n"), default_charset="utf-8").content_hash
    )


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("wrong_charset_utf8_bytes_declared_latin1.hl7", "kodat i UTF-8 men MSH-18"),
        ("wrong_charset_latin1_bytes_declared_utf8.hl7", "stämmer inte med teckenuppsättningen"),
        ("broken_segment.hl7", "Trasigt segment nr 4"),
        ("unknown_identifier_system.hl7", "Okänt identifierarsystem"),
        ("missing_pid.hl7", "PID-segment (patient) saknas"),
    ],
)
def test_failure_files_are_refused_with_a_swedish_reason(name, words):
    with pytest.raises(IntakeRejection) as caught:
        hl7.parse_hl7(read(name), default_charset="utf-8")

    assert words in str(caught.value)


def test_empty_msh18_uses_the_senders_default_charset():
    raw = read("orm_o01_v23_latin1.hl7").replace(b"|SWE|8859/1", b"|SWE|")

    with pytest.raises(IntakeRejection, match="avsändarens standard"):
        hl7.parse_hl7(raw, default_charset="utf-8")
    assert hl7.parse_hl7(raw, default_charset="iso-8859-1").orders[0].patient_name == (
        "Test Testsson"
    )


def test_windows_1252_bytes_under_latin1_are_refused():
    raw = read("orm_o01_v23_latin1.hl7").replace(b"Ont i", "Ont – i".encode("cp1252"))

    with pytest.raises(IntakeRejection, match="Windows-1252"):
        hl7.parse_hl7(raw, default_charset="utf-8")


def test_doubly_encoded_utf8_is_refused():
    raw = read("omi_o23_v251_utf8.hl7").replace("ländrygg".encode(), "lÃ¤ndrygg".encode())

    with pytest.raises(IntakeRejection, match="dubbelkodat"):
        hl7.parse_hl7(raw, default_charset="utf-8")


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        ((b"ORM^O01", b"ADT^A01"), "Meddelandetypen ADT^A01 tas inte emot"),
        ((b"|P|2.3|", b"|P|2.9|"), "HL7-version 2.9 stöds inte"),
        ((b"ORC|NW|", b"ORC|SC|"), "ORC-1 SC stöds inte"),
        ((b"|HL7-0001|", b"||"), "MSH-10"),
        ((b"OBR|1|HL7-1001|", b"OBR|1|HL7-9999|"), "olika remissnummer"),
        ((b"19820801|M", b"19820802|M"), "PID-7 (19820802) stämmer inte"),
    ],
)
def test_envelope_and_order_problems(replace, words):
    raw = read("orm_o01_v23_latin1.hl7").replace(*replace)

    with pytest.raises(IntakeRejection, match=re.escape(words)):
        hl7.parse_hl7(raw, default_charset="utf-8")


def test_cancel_message_is_a_cancel():
    (order,) = hl7.parse_hl7(read("cancel_ca.hl7"), default_charset="utf-8").orders

    assert order.cancel is True


# --- Intake and ACK --------------------------------------------------------------------------


def test_new_order_is_created_and_acknowledged_aa(sender):
    raw = read("orm_o01_v23_latin1.hl7")

    result = take(sender, "orm_o01_v23_latin1.hl7")

    referral = Referral.objects.get(order_number="HL7-1001")
    assert referral.history.get().history_change_reason == (
        "Import från ris-test: HL7 ORM^O01 HL7-0001"
    )
    msh, msa = ack_segments(raw, result)
    assert msh[8] == "ACK^O01"
    assert (msh[2], msh[4]) == ("REMISSPRIO", "RIS")  # sender and receiver swapped
    assert msh[17] == "8859/1"
    assert msa[:3] == ["MSA", "AA", "HL7-0001"]


def test_same_message_twice_is_aa_duplicate_and_one_history_row(sender):
    take(sender, "orm_o01_v23_latin1.hl7")

    again = take(sender, "orm_o01_v23_latin1.hl7")

    assert again.duplicate_message
    assert hl7.ack_code(again) == "AA"
    assert "redan mottaget" in again.describe()
    assert Referral.objects.get().history.count() == 1


def test_same_control_id_with_other_content_is_refused(sender):
    take(sender, "orm_o01_v23_latin1.hl7")
    raw = read("orm_o01_v23_latin1.hl7").replace(b"5 veckor", b"9 veckor")

    result = hl7.intake_hl7(sender=sender, raw=raw)

    assert result.rejected and "redan tagits emot" in result.error
    assert hl7.ack_code(result) == "AE"


def test_xo_updates_and_ca_cancels(sender):
    take(sender, "orm_o01_v23_latin1.hl7")

    changed = take(sender, "change_xo.hl7")
    cancelled = take(sender, "cancel_ca.hl7")

    assert [order.outcome for order in changed.orders] == [Outcome.UPDATED]
    assert [order.outcome for order in cancelled.orders] == [Outcome.CANCELLED]
    referral = Referral.objects.get()
    assert "7 veckor" in referral.anamnesis
    assert referral.status == Referral.Status.CANCELLED
    reasons = [row.history_change_reason for row in referral.history.order_by("history_id")]
    assert reasons[1].endswith("HL7-0005") and reasons[2].endswith("HL7-0004")


def test_charset_contradiction_is_quarantined_raw_and_answered_ar(sender):
    raw = read("wrong_charset_utf8_bytes_declared_latin1.hl7")

    result = take(sender, "wrong_charset_utf8_bytes_declared_latin1.hl7")

    message = InboxMessage.objects.get()
    assert bytes(message.raw) == raw
    assert message.message_id == "HL7-0006"
    assert not Referral.objects.exists()
    segments = ack_segments(raw, result)
    assert segments[1][:3] == ["MSA", "AR", "HL7-0006"]


def test_content_error_is_ae_with_err_segment_in_251(sender):
    raw = read("omi_o23_v251_utf8.hl7").replace(b"^^^&1.2.752.129.2.1.3.3&ISO^NNSWE", b"")

    result = hl7.intake_hl7(sender=sender, raw=raw)

    msh, msa, err = ack_segments(raw, result)
    assert msh[8] == "ACK^O23^ACK"
    assert msa[1] == "AE"
    assert err[0] == "ERR" and err[4] == "E"
    assert "personnummer" in err[8]


def test_quarantined_message_is_taken_after_the_sender_default_is_fixed(sender, department_head):
    from triage.importers.inbox import inbox_reprocess

    raw = read("orm_o01_v23_latin1.hl7").replace(b"|SWE|8859/1", b"|SWE|")
    result = hl7.intake_hl7(sender=sender, raw=raw)
    assert result.rejected
    sender.default_charset = Sender.Charset.LATIN1
    intake.sender_save(sender=sender, user=department_head, reason="RIS skickar Latin-1")

    (again,) = inbox_reprocess(message=result.inbox_message, user=department_head)

    assert not again.rejected
    assert Referral.objects.get().patient.name == "Test Testsson"


def test_two_messages_in_one_request_are_refused(sender):
    raw = read("orm_o01_v23_latin1.hl7") + read("change_xo.hl7")

    result = hl7.intake_hl7(sender=sender, raw=raw)

    assert result.rejected and "ett meddelande per anrop" in result.error


def test_ack_for_garbage_is_ar_without_message_id(sender):
    result = hl7.intake_hl7(sender=sender, raw=b"hello")

    ack, _codec = hl7.build_ack(hl7.read_envelope(b"hello"), result)
    assert ack.split(b"\r")[1].startswith(b"MSA|AR||")


def test_import_command_splits_batch_file_and_reports_each_message(sender, tmp_path, capsys):
    call_command("import_referrals", str(DATA / "batch_two_messages.hl7"), "--source", "ris-test")

    output = capsys.readouterr().out
    assert "meddelande 1: skapad (HL7-1011)" in output
    assert "meddelande 2: skapad (HL7-1012)" in output
    assert Referral.objects.count() == 2


def test_import_command_exits_non_zero_when_a_message_is_rejected(sender, capsys):
    with pytest.raises(CommandError) as caught:
        call_command(
            "import_referrals",
            str(DATA / "orm_o01_v23_latin1.hl7"),
            str(DATA / "broken_segment.hl7"),
            "--source",
            "ris-test",
        )

    assert caught.value.returncode == 1
    output = capsys.readouterr().out
    assert "orm_o01_v23_latin1.hl7 (HL7 v2):" in output
    assert "avvisad – Trasigt segment nr 4" in output
    assert "Totalt: 1 skapad, 0 uppdaterad, 0 oförändrad dubblett, 0 makulerad, 1 avvisad" in output
