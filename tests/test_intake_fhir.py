"""FHIR R4 intake: mapping, duplicates, updates, cancels, every rejection kept in the inbox."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from triage.importers import examination, fhir, inbox, intake
from triage.importers.intake import IntakeRejection, Outcome
from triage.models import InboxMessage, IntakeMessage, Referral

DATA = Path(__file__).parent / "data" / "intake" / "fhir"


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def sender(db):
    return intake.sender_register(name="ris-test", user=None)


def take(sender, name: str):
    return fhir.intake_fhir(sender=sender, raw=read(name), origin=name)


# --- Mapping, without the database ---------------------------------------------------------


def test_contained_service_request_maps_every_field():
    parsed = fhir.parse_fhir(read("service_request_contained.json"))

    (order,) = parsed.orders
    assert order.order_number == "FHIR-1001"
    assert order.cancel is False
    assert order.personal_number == "198208012396"
    assert order.patient_name == "Test Testsson"
    assert order.written_on == date(2025, 3, 3)
    assert (order.referring_unit, order.referring_clinician) == (
        "Vårdcentralen Testby",
        "Lena Läkare",
    )
    assert (order.requested, order.requested_text) == ("mri", "MR ländrygg")
    assert order.anamnesis.splitlines() == [
        "Lumbago ischias",
        "Ländryggssmärta sedan 6 veckor, utstrålning i vänster ben. Nattlig smärta.",
    ]
    assert order.method_change_allowed is True
    assert order.referrer_priority == "routine"


def test_bundle_resolves_bundled_patient_priority_and_method_change_extension():
    parsed = fhir.parse_fhir(read("bundle_transaction.json"))

    first, second = parsed.orders
    assert first.personal_number == second.personal_number == "197010632391"
    assert first.patient_name == "Samuel Samordning"
    assert (first.requested, first.method_change_allowed) == ("xray", False)
    assert first.referrer_priority == "urgent"
    assert "prioritet" not in first.anamnesis  # a field of its own, not a line of text
    assert second.referrer_priority == "routine"
    assert first.referring_clinician == "Dr Bo Bundle"
    assert (second.requested, second.referring_unit) == ("ct", "Ortopedmottagningen")
    assert parsed.message_id == "bundle-1"


def test_authored_late_evening_utc_is_next_day_in_stockholm():
    parsed = fhir.parse_fhir(read("bundle_transaction.json"))

    assert parsed.orders[1].written_on == date(2025, 3, 5)


def test_revoked_status_is_a_cancel():
    (order,) = fhir.parse_fhir(read("service_request_revoked.json")).orders

    assert order.cancel is True


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("date_without_offset.json", "ingen tidszon"),
        ("missing_subject.json", "patient saknas"),
        ("unknown_identifier_system.json", "okänt identifierarsystem"),
        ("samordningsnummer_under_personnummer_system.json", "är ett samordningsnummer"),
        ("not_json.json", "inte giltig JSON"),
    ],
)
def test_failure_files_are_refused_with_a_swedish_reason(name, words):
    with pytest.raises(IntakeRejection) as caught:
        fhir.parse_fhir(read(name))

    assert words in str(caught.value)


def test_personnummer_value_under_samordningsnummer_system_is_refused():
    document = json.loads(read("service_request_contained.json"))
    document["contained"][0]["identifier"][0]["system"] = intake.SAMORDNINGSNUMMER_SYSTEM

    with pytest.raises(
        IntakeRejection, match="är ett personnummer men anges som samordningsnummer"
    ):
        fhir.parse_fhir(json.dumps(document).encode())


def test_bare_date_keeps_date_precision_and_partial_date_is_refused():
    document = json.loads(read("service_request_contained.json"))
    document["authoredOn"] = "2025-02-28"
    assert fhir.parse_fhir(json.dumps(document).encode()).orders[0].written_on == date(2025, 2, 28)

    document["authoredOn"] = "2025-02"
    with pytest.raises(IntakeRejection, match="anger inte dag"):
        fhir.parse_fhir(json.dumps(document).encode())


def test_birth_date_that_contradicts_personnummer_is_refused():
    document = json.loads(read("service_request_contained.json"))
    document["contained"][0]["birthDate"] = "1982-08-02"

    with pytest.raises(IntakeRejection, match="stämmer inte med personnumret"):
        fhir.parse_fhir(json.dumps(document).encode())


@pytest.mark.parametrize("status", ["draft", "completed", "unknown"])
def test_statuses_that_are_not_orders_or_cancels_are_refused(status):
    document = json.loads(read("service_request_contained.json"))
    document["status"] = status

    with pytest.raises(IntakeRejection, match=f"status {status} tas inte emot"):
        fhir.parse_fhir(json.dumps(document).encode())


def test_unknown_resource_type_inside_bundle_is_refused_not_crashed():
    document = json.loads(read("bundle_transaction.json"))
    document["entry"][0]["resource"]["resourceType"] = "Nonsense"

    with pytest.raises(IntakeRejection, match="okänd resurstyp Nonsense"):
        fhir.parse_fhir(json.dumps(document).encode())


def test_note_convention_forbids_method_change():
    document = json.loads(read("service_request_contained.json"))
    document["note"].append({"text": "Metodbyte tillåts inte."})

    assert fhir.parse_fhir(json.dumps(document).encode()).orders[0].method_change_allowed is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MR ländrygg", "mri"),
        ("Slätröntgen ländrygg", "xray"),
        ("röntgen LÄNDRYGGRAD", "xray"),
        ("Ländryggsröntgen", "xray"),
        ("DT ländrygg", "ct"),
        ("Skiktröntgen ländrygg", "ct"),
        ("CT Lumbar spine", "ct"),
        ("XR Lumbar spine 2 Views", "xray"),
        ("Magnetic resonance imaging of lumbar spine", "mri"),
        ("Plain X-ray of lumbar spine", "xray"),
        ("Skelettscintigrafi", "other"),
        ("MR eller DT ländrygg", "other"),
        ("", "other"),
    ],
)
def test_examination_text_maps_to_requested_examination(text, expected):
    assert examination.examination_from_codings([], [text])[0] == expected


def test_dicom_modality_coding_decides_over_text():
    coding = [(examination.DICOM_MODALITY_SYSTEM, "MR", "")]

    assert examination.examination_from_codings(coding, ["Ländrygg"]) == ("mri", "Ländrygg")


# --- Intake with the database ----------------------------------------------------------------


def test_new_service_request_creates_referral_with_sender_as_history_author(sender):
    result = take(sender, "service_request_contained.json")

    assert not result.rejected
    referral = Referral.objects.get(source="ris-test", order_number="FHIR-1001")
    assert [(order.outcome, order.referral_id) for order in result.orders] == [
        (Outcome.CREATED, referral.pk)
    ]
    history = referral.history.get()
    assert history.history_user == sender.user
    assert history.history_change_reason.startswith("Import från ris-test: FHIR ServiceRequest")


def test_same_message_twice_is_an_acknowledged_duplicate_without_history(sender):
    take(sender, "service_request_contained.json")

    again = take(sender, "service_request_contained.json")

    assert again.duplicate_message and not again.rejected
    assert [order.outcome for order in again.orders] == [Outcome.UNCHANGED]
    assert Referral.objects.get().history.count() == 1
    assert IntakeMessage.objects.count() == 1


def test_changed_content_updates_referral_with_message_as_reason(sender):
    take(sender, "service_request_contained.json")

    result = take(sender, "service_request_updated.json")

    assert [order.outcome for order in result.orders] == [Outcome.UPDATED]
    referral = Referral.objects.get()
    assert "domningar i vänster fot" in referral.anamnesis
    assert referral.version == 2
    latest = referral.history.first()
    assert latest.history_user == sender.user
    assert result.label in latest.history_change_reason


def test_raised_priority_updates_referral_and_sorts_it_first(sender):
    take(sender, "service_request_contained.json")
    document = json.loads(read("service_request_contained.json"))
    document["priority"] = "stat"

    result = fhir.intake_fhir(sender=sender, raw=json.dumps(document).encode())

    assert [order.outcome for order in result.orders] == [Outcome.UPDATED]
    referral = Referral.objects.get()
    assert referral.referrer_priority == "stat"
    before, after = referral.history.order_by("history_id")
    assert (before.referrer_priority, after.referrer_priority) == ("routine", "stat")
    assert after.history_user == sender.user


def test_unknown_priority_code_is_refused_by_the_fhir_model():
    document = json.loads(read("service_request_contained.json"))
    document["priority"] = "emergency"

    with pytest.raises(IntakeRejection, match="priority"):
        fhir.parse_fhir(json.dumps(document).encode())


def test_older_message_delivered_again_after_update_does_not_revert_it(sender):
    take(sender, "service_request_contained.json")
    take(sender, "service_request_updated.json")

    take(sender, "service_request_contained.json")

    assert "domningar" in Referral.objects.get().anamnesis


def test_revoked_cancels_and_repeated_cancel_is_unchanged(sender):
    take(sender, "service_request_contained.json")

    result = take(sender, "service_request_revoked.json")

    assert [order.outcome for order in result.orders] == [Outcome.CANCELLED]
    assert Referral.objects.get().status == Referral.Status.CANCELLED
    document = json.loads(read("service_request_revoked.json"))
    document["note"] = [{"text": "Makulerad av remittent"}]
    resent = fhir.intake_fhir(sender=sender, raw=json.dumps(document).encode())
    assert [order.outcome for order in resent.orders] == [Outcome.UNCHANGED]


def test_cancel_of_unknown_order_goes_to_inbox(sender):
    result = take(sender, "service_request_revoked.json")

    assert result.rejected
    assert "inte har tagits emot" in result.inbox_message.error


def test_change_after_decision_is_kept_in_inbox_not_applied(sender):
    take(sender, "service_request_contained.json")
    referral = Referral.objects.get()
    referral.status = Referral.Status.DECIDED
    referral.save()

    result = take(sender, "service_request_updated.json")

    assert result.rejected and "tar inte emot ändringar automatiskt" in result.error
    assert "domningar" not in Referral.objects.get().anamnesis


def test_update_of_referral_awaiting_information_returns_it_to_worklist(sender):
    take(sender, "service_request_contained.json")
    referral = Referral.objects.get()
    referral.status = Referral.Status.AWAITING_INFORMATION
    referral.save()

    take(sender, "service_request_updated.json")

    assert Referral.objects.get().status == Referral.Status.NEW


@pytest.mark.parametrize(
    "name",
    [
        "date_without_offset.json",
        "missing_subject.json",
        "unknown_identifier_system.json",
        "samordningsnummer_under_personnummer_system.json",
        "not_json.json",
    ],
)
def test_rejected_message_is_stored_raw_with_error_source_and_time(sender, name):
    result = take(sender, name)

    message = InboxMessage.objects.get()
    assert result.inbox_message == message
    assert bytes(message.raw) == read(name)
    assert message.error == result.error
    assert (message.sender, message.origin, message.status) == (
        sender,
        name,
        InboxMessage.Status.REJECTED,
    )
    assert message.received_at is not None
    assert not Referral.objects.exists()


def test_same_rejected_message_twice_is_counted_not_stored_twice(sender):
    take(sender, "missing_subject.json")

    take(sender, "missing_subject.json")

    assert InboxMessage.objects.get().delivery_count == 2


def test_bundle_is_taken_whole_or_not_at_all(sender):
    document = json.loads(read("bundle_transaction.json"))
    document["entry"][2]["resource"]["authoredOn"] = "2025-03-04T10:00:00"

    result = fhir.intake_fhir(sender=sender, raw=json.dumps(document).encode())

    assert result.rejected and "Bundlens post 3" in result.error
    assert not Referral.objects.exists()


def test_bundle_creates_one_referral_per_service_request(sender):
    result = take(sender, "bundle_transaction.json")

    assert [order.outcome for order in result.orders] == [Outcome.CREATED, Outcome.CREATED]
    assert set(Referral.objects.values_list("order_number", flat=True)) == {
        "FHIR-2001",
        "FHIR-2002",
    }


def test_corrected_inbox_message_is_reprocessed_by_department_head(sender, department_head):
    take(sender, "date_without_offset.json")
    message = InboxMessage.objects.get()
    corrected = (
        read("date_without_offset.json")
        .decode()
        .replace('"2025-03-03T09:15:00"', '"2025-03-03T09:15:00+01:00"')
    )

    (result,) = inbox.inbox_reprocess(
        message=message, user=department_head, corrected_text=corrected
    )

    assert not result.rejected
    message.refresh_from_db()
    referral = Referral.objects.get(order_number="FHIR-1002")
    assert (message.status, message.referral, message.handled_by) == (
        InboxMessage.Status.REPROCESSED,
        referral,
        department_head,
    )
    assert bytes(message.raw) == read("date_without_offset.json")  # the original is kept
    assert referral.received_at == message.received_at
    history = referral.history.get()
    assert history.history_user == department_head
    assert f"(inkorg #{message.pk})" in history.history_change_reason


def test_reprocess_that_fails_again_keeps_message_with_new_error(sender, department_head):
    take(sender, "missing_subject.json")
    message = InboxMessage.objects.get()

    (result,) = inbox.inbox_reprocess(message=message, user=department_head)

    assert result.rejected
    message.refresh_from_db()
    assert message.status == InboxMessage.Status.REJECTED
    assert InboxMessage.objects.count() == 1


def test_dismiss_requires_reason_and_records_it(sender, department_head):
    take(sender, "missing_subject.json")
    message = InboxMessage.objects.get()

    with pytest.raises(intake.services.ServiceError):
        inbox.inbox_dismiss(message=message, user=department_head, reason="  ")
    inbox.inbox_dismiss(message=message, user=department_head, reason="Skickad på nytt av RIS")

    message.refresh_from_db()
    assert (message.status, message.dismiss_reason, message.handled_by) == (
        InboxMessage.Status.DISMISSED,
        "Skickad på nytt av RIS",
        department_head,
    )
    assert message.history.first().history_user == department_head
