"""The HTTP API for referral systems, the department head's admin for it, decision export,
and the same message delivered twice at the same moment (PostgreSQL)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_user, run_together
from triage import services
from triage.importers import intake, tokens
from triage.models import (
    AccessLog,
    ApiToken,
    InboxMessage,
    Referral,
    ReplyTemplate,
    Sender,
)
from triage.permissions import Role
from triage.selectors import AssessmentInput

DATA = Path(__file__).parent / "data" / "intake"
FHIR_URL = "/api/fhir/ServiceRequest"
HL7_URL = "/api/hl7"
TASK_URL = "/api/fhir/Task"
RED_FLAG_FACTS = AssessmentInput(
    pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"}), questions=frozenset({"other"})
)


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def sender(db):
    return intake.sender_register(name="ris-test", user=None)


@pytest.fixture
def secret(sender, department_head) -> str:
    return tokens.api_token_create(sender=sender, label="RIS", user=department_head)[1]


def post(client, url: str, body: bytes, secret: str | None, content_type: str):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
    return client.post(url, data=body, content_type=content_type, **headers)


def post_fhir(client, body: bytes, secret: str | None):
    return post(client, FHIR_URL, body, secret, "application/fhir+json")


def post_hl7(client, body: bytes, secret: str | None):
    return post(client, HL7_URL, body, secret, "x-application/hl7-v2+er7")


def get_tasks(client, secret: str, **params):
    return client.get(TASK_URL, params, HTTP_AUTHORIZATION=f"Bearer {secret}")


# --- Authentication, throttling, limits -----------------------------------------------------


@pytest.mark.parametrize("url", [FHIR_URL, HL7_URL, TASK_URL])
def test_request_without_token_is_401_and_not_stored(client, sender, url):
    response = client.post(url, data=b"{}", content_type="application/fhir+json")

    assert response.status_code in (401, 405)
    if url != TASK_URL:
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not InboxMessage.objects.exists()


def test_browser_session_is_not_an_api_login(client, sender, department_head):
    client.force_login(department_head)

    response = post_fhir(client, read("fhir/service_request_contained.json"), None)

    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


def test_revoked_token_and_inactive_sender_are_refused(client, sender, secret, department_head):
    token = ApiToken.objects.get()
    tokens.api_token_revoke(token=token, user=department_head)
    assert post_fhir(client, b"{}", secret).status_code == 401

    fresh = tokens.api_token_create(sender=sender, label="ny", user=department_head)[1]
    sender.is_active = False
    intake.sender_save(sender=sender, user=department_head, reason="Avvecklad")
    assert post_fhir(client, b"{}", fresh).status_code == 401


def test_only_hash_of_token_is_stored(sender, secret):
    token = ApiToken.objects.get()

    assert secret not in (token.token_hash, token.token_prefix)
    assert token.token_hash == tokens.token_hash(secret)
    assert secret.startswith(token.token_prefix)


def test_throttle_answers_429_with_retry_after(client, sender, secret):
    sender.requests_per_minute = 2
    intake.sender_save(sender=sender, user=None, reason="test")
    body = read("fhir/service_request_contained.json")

    statuses = [post_fhir(client, body, secret).status_code for _ in range(3)]

    assert statuses[:2] == [201, 200]
    response = post_fhir(client, body, secret)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60


def test_throttle_window_is_per_minute(sender, secret):
    token = ApiToken.objects.select_related("sender").get()
    token.sender.requests_per_minute = 1
    start = timezone.now().replace(second=10, microsecond=0)

    assert tokens.api_throttle_hit(token=token, now=start) is None
    assert tokens.api_throttle_hit(token=token, now=start + timedelta(seconds=5)) == 45
    assert tokens.api_throttle_hit(token=token, now=start + timedelta(minutes=1)) is None


@override_settings(INTAKE_MAX_BODY_BYTES=1000)
def test_oversized_body_is_413_operation_outcome(client, sender, secret):
    response = post_fhir(client, b" " * 2000, secret)

    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"
    assert not InboxMessage.objects.exists()


def test_wrong_media_type_is_415(client, sender, secret):
    response = post(client, FHIR_URL, b"{}", secret, "text/plain")

    assert response.status_code == 415


def test_get_is_not_allowed_on_intake_endpoints(client, sender, secret):
    response = client.get(FHIR_URL, HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 405


# --- FHIR and HL7 in ----------------------------------------------------------------------------


def test_fhir_post_creates_then_acknowledges_duplicate(client, sender, secret):
    body = read("fhir/service_request_contained.json")

    first = post_fhir(client, body, secret)
    second = post_fhir(client, body, secret)

    assert first.status_code == 201
    assert first["Content-Type"].startswith("application/fhir+json")
    assert first.json()["issue"][0]["diagnostics"] == "Remiss FHIR-1001: skapad"
    assert second.status_code == 200
    assert second.json()["issue"][0] == {
        "severity": "information",
        "code": "duplicate",
        "diagnostics": "Remiss FHIR-1001: oförändrad dubblett",
    }
    assert Referral.objects.get().history.count() == 1


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("fhir/not_json.json", 400, "structure"),
        ("fhir/missing_subject.json", 422, "required"),
        ("fhir/date_without_offset.json", 422, "value"),
        ("fhir/unknown_identifier_system.json", 422, "value"),
    ],
)
def test_fhir_rejection_is_operation_outcome_and_kept_in_inbox(
    client, sender, secret, name, status, code
):
    response = post_fhir(client, read(name), secret)

    assert response.status_code == status
    issue = response.json()["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", code)
    message = InboxMessage.objects.get()
    assert f"inkorgen som #{message.pk}" in issue["diagnostics"]
    assert bytes(message.raw) == read(name)


def test_hl7_post_answers_with_ack(client, sender, secret):
    response = post_hl7(client, read("hl7/orm_o01_v23_latin1.hl7"), secret)

    assert response.status_code == 200
    assert response["Content-Type"] == "x-application/hl7-v2+er7; charset=iso-8859-1"
    assert b"\rMSA|AA|HL7-0001|" in response.content
    assert Referral.objects.get().order_number == "HL7-1001"


def test_hl7_rejection_is_ar_ack_with_status_200(client, sender, secret):
    response = post_hl7(client, read("hl7/broken_segment.hl7"), secret)

    assert response.status_code == 200
    assert b"\rMSA|AR|HL7-0008|Trasigt segment" in response.content
    assert InboxMessage.objects.get().message_id == "HL7-0008"


# --- Decisions out ---------------------------------------------------------------------------


def _decided(sender, radiologist, order_number="FHIR-1001"):
    from triage.importers import fhir

    document = json.loads(read("fhir/service_request_contained.json"))
    document["identifier"][0]["value"] = order_number
    fhir.intake_fhir(sender=sender, raw=json.dumps(document).encode())
    referral = Referral.objects.get(source=sender.name, order_number=order_number)
    assessment = services.assessment_decide(
        referral=referral, entered=RED_FLAG_FACTS, action="mri", priority_weeks=6, user=radiologist
    )
    services.reply_save(
        referral=referral,
        text="MR ländrygg inom 6 veckor.",
        template=ReplyTemplate.objects.filter(kind="accepted").first(),
        assessment=assessment,
        final=True,
        user=radiologist,
    )
    referral.refresh_from_db()
    return referral


def test_task_search_returns_own_decided_referrals_with_service_request(
    client, sender, secret, radiologist
):
    referral = _decided(sender, radiologist)
    other = intake.sender_register(name="annat-ris", user=None)

    response = get_tasks(client, secret)

    assert response.status_code == 200
    bundle = response.json()
    assert (bundle["type"], bundle["total"]) == ("searchset", 1)
    task, request = (entry["resource"] for entry in bundle["entry"])
    assert task["resourceType"] == "Task"
    assert task["status"] == "accepted"
    assert task["businessStatus"]["coding"][0]["code"] == "decided"
    assert task["focus"]["reference"] == f"ServiceRequest/{referral.pk}"
    assert task["focus"]["identifier"]["value"] == "FHIR-1001"
    assert task["owner"]["display"] == radiologist.get_full_name()
    assert task["statusReason"]["coding"][0]["code"] == "accepted"
    outputs = {output["type"]["text"]: output for output in task["output"]}
    assert outputs["Svarstext"]["valueString"] == "MR ländrygg inom 6 veckor."
    assert outputs["Priotid (veckor)"]["valueInteger"] == 6
    assert request["resourceType"] == "ServiceRequest"
    assert request["priority"] == "routine"
    assert request["occurrencePeriod"]["end"] == referral.due_date.isoformat()
    assert other.name not in json.dumps(bundle)


def test_task_search_does_not_show_other_senders_referrals(client, sender, secret, radiologist):
    other = intake.sender_register(name="annat-ris", user=None)
    _decided(other, radiologist)

    bundle = get_tasks(client, secret).json()

    assert bundle["total"] == 0 and "entry" not in bundle


def test_task_search_filters_by_status_and_logs_the_export(client, sender, secret, radiologist):
    referral = _decided(sender, radiologist)

    assert get_tasks(client, secret, status="rejected").json()["total"] == 0
    assert get_tasks(client, secret, status="accepted", identifier="FHIR-1001").json()["total"] == 1
    log = AccessLog.objects.filter(action=AccessLog.Action.EXPORT).get()
    assert (log.user, log.patient_id, log.referral) == (
        sender.user,
        referral.patient_id,
        referral,
    )


def test_task_search_refuses_unknown_parameters_and_bad_dates(client, sender, secret):
    assert get_tasks(client, secret, patient="x").status_code == 400
    assert get_tasks(client, secret, modified="ge2025-13-40").status_code == 400
    assert get_tasks(client, secret, modified="ge2025-01-01").status_code == 200


def test_task_search_pages_with_next_link(client, sender, secret, radiologist):
    _decided(sender, radiologist, "FHIR-1001")
    _decided(sender, radiologist, "FHIR-1002")

    first = get_tasks(client, secret, _count=1).json()
    next_url = first["link"][0]["url"]
    second = client.get(next_url, HTTP_AUTHORIZATION=f"Bearer {secret}").json()

    assert first["entry"][0]["resource"]["focus"]["identifier"]["value"] == "FHIR-1001"
    assert second["entry"][0]["resource"]["focus"]["identifier"]["value"] == "FHIR-1002"
    assert "link" not in second


def test_export_decisions_command_writes_csv_and_fhir(
    sender, radiologist, department_head, tmp_path
):
    _decided(sender, radiologist)
    csv_path, json_path = tmp_path / "beslut.csv", tmp_path / "beslut.json"

    call_command("export_decisions", "--format", "csv", "-o", str(csv_path), "--user", "chef")
    call_command("export_decisions", "--format", "fhir", "-o", str(json_path), "--user", "chef")

    text = csv_path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeffkälla;remissnummer;personnummer")
    assert "ris-test;FHIR-1001;19820801-2396;Test Testsson;Beslutad;MR;6;" in text
    bundle = json.loads(json_path.read_text(encoding="utf-8"))
    assert bundle["type"] == "collection"
    assert [entry["resource"]["resourceType"] for entry in bundle["entry"]] == [
        "Task",
        "ServiceRequest",
    ]
    assert AccessLog.objects.filter(user=department_head, action="export").count() == 2


# --- Admin for department heads -------------------------------------------------------------


@pytest.fixture
def head_client(client, department_head):
    department_head.is_staff = True
    department_head.save()
    client.force_login(department_head)
    return client


def test_department_head_registers_sender_with_import_account(head_client, department_head):
    response = head_client.post(
        reverse("admin:triage_sender_add"),
        {
            "name": "nytt-ris",
            "description": "RIS Norra",
            "default_charset": "iso-8859-1",
            "order_number_system": "",
            "requests_per_minute": "60",
            "is_active": "on",
            "change_reason": "Ny anslutning",
        },
    )

    assert response.status_code == 302
    sender = Sender.objects.get(name="nytt-ris")
    assert sender.user.username == "sender:nytt-ris" and not sender.user.is_active
    assert sender.history.get().history_user == department_head


def test_token_created_in_admin_is_shown_once(head_client, sender):
    response = head_client.post(
        reverse("admin:triage_apitoken_add"),
        {"sender": sender.pk, "label": "RIS prod"},
        follow=True,
    )

    token = ApiToken.objects.get()
    shown = [str(message) for message in response.context["messages"]]
    secret_line = next(line for line in shown if "Ny API-nyckel" in line)
    secret = secret_line.split("<code>")[1].split("</code>")[0]
    assert tokens.token_hash(secret) == token.token_hash
    page = head_client.get(reverse("admin:triage_apitoken_change", args=[token.pk]))
    assert secret not in page.content.decode()


def test_revoke_action_revokes_token(head_client, sender, secret, department_head):
    token = ApiToken.objects.get()

    head_client.post(
        reverse("admin:triage_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    token.refresh_from_db()
    assert token.revoked_by == department_head
    assert tokens.api_token_authenticate(f"Bearer {secret}") is None


def test_inbox_shows_raw_and_error_and_dismisses_with_reason(head_client, sender, department_head):
    from triage.importers import hl7

    hl7.intake_hl7(sender=sender, raw=read("hl7/wrong_charset_utf8_bytes_declared_latin1.hl7"))
    message = InboxMessage.objects.get()
    url = reverse("admin:triage_inboxmessage_change", args=[message.pk])

    page = head_client.get(url).content.decode()
    assert "kodat i UTF-8" in page
    assert "PID|||198208012396" in page

    refused = head_client.post(url, {"corrected_text": "", "action": "dismiss", "reason": ""})
    assert refused.status_code == 200  # the form asks for the reason
    head_client.post(url, {"corrected_text": "", "action": "dismiss", "reason": "Fel avsändare"})

    message.refresh_from_db()
    assert (message.status, message.dismiss_reason) == ("dismissed", "Fel avsändare")


def test_inbox_reprocess_in_admin_takes_corrected_message(head_client, sender):
    from triage.importers import hl7

    raw = read("hl7/unknown_identifier_system.hl7")
    hl7.intake_hl7(sender=sender, raw=raw)
    message = InboxMessage.objects.get()
    corrected = raw.decode("latin-1").replace(
        "12345678^^^SUS&1.2.752.97.1&ISO^MR", "198208012396^^^&1.2.752.129.2.1.3.1&ISO"
    )

    head_client.post(
        reverse("admin:triage_inboxmessage_change", args=[message.pk]),
        {"corrected_text": corrected, "action": "reprocess", "reason": ""},
    )

    message.refresh_from_db()
    assert message.status == "reprocessed"
    assert message.referral.order_number == "HL7-1009"


@pytest.mark.parametrize("role", [Role.RADIOLOGIST, Role.AUDITOR, None])
@pytest.mark.parametrize("model", ["sender", "apitoken", "inboxmessage", "intakemessage"])
def test_intake_admin_is_denied_to_other_roles(client, db, role, model):
    user = make_user(f"u-{role}", *([role] if role else []))
    user.is_staff = True
    user.save()
    client.force_login(user)

    response = client.get(reverse(f"admin:triage_{model}_changelist"))

    assert response.status_code == 403


@pytest.mark.parametrize("model", ["sender", "apitoken", "inboxmessage", "intakemessage"])
def test_intake_admin_lists_for_department_head(head_client, sender, model):
    assert head_client.get(reverse(f"admin:triage_{model}_changelist")).status_code == 200


def test_inbox_cannot_be_deleted_or_added(head_client, sender):
    assert head_client.get(reverse("admin:triage_inboxmessage_add")).status_code == 403


# --- The same message twice at the same moment, on PostgreSQL -------------------------------


def _slow_down(monkeypatch, name: str, seconds: float = 0.5) -> None:
    # Holds the first transaction open after its writes, so the second worker really
    # meets it on the unique index instead of arriving after the commit.
    original = getattr(intake, name)

    def slow(*args, **kwargs):
        result = original(*args, **kwargs)
        time.sleep(seconds)
        return result

    monkeypatch.setattr(intake, name, slow)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_same_message_posted_twice_at_once_gives_one_referral_and_one_history_row(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs two real PostgreSQL connections; run with DATABASE_URL=postgres://…")
    head = make_user("chef-c", Role.DEPARTMENT_HEAD)
    sender = intake.sender_register(name="ris-c", user=None)
    secret = tokens.api_token_create(sender=sender, label="c", user=head)[1]
    body = read("fhir/service_request_contained.json")
    _slow_down(monkeypatch, "_apply_order")

    def deliver():
        started = time.monotonic()
        response = post_fhir(Client(), body, secret)
        return response, time.monotonic() - started

    timed = sorted(run_together(deliver, deliver), key=lambda item: item[0].status_code)
    (duplicate, duplicate_seconds), (created, _seconds) = timed

    assert (duplicate.status_code, created.status_code) == (200, 201)
    assert duplicate.json()["issue"][0]["code"] == "duplicate"
    # The duplicate waited on the first delivery's open transaction (held 0.5 s) rather
    # than arriving after it: the two really were at the same moment.
    assert duplicate_seconds >= 0.4
    referral = Referral.objects.get()
    assert referral.history.count() == 1
    assert referral.patient.history.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_versions_of_one_order_at_once_give_one_referral(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs two real PostgreSQL connections; run with DATABASE_URL=postgres://…")
    from triage.importers import fhir

    sender = intake.sender_register(name="ris-d", user=None)
    original, updated = (
        read("fhir/service_request_contained.json"),
        read("fhir/service_request_updated.json"),
    )
    monkeypatch.setattr(
        services,
        "referral_create",
        _sleeping_after(services.referral_create),
    )

    results = run_together(
        lambda: fhir.intake_fhir(sender=sender, raw=original),
        lambda: fhir.intake_fhir(sender=sender, raw=updated),
    )

    assert all(not isinstance(result, Exception) for result in results), results
    outcomes = sorted(result.orders[0].outcome for result in results)
    assert outcomes == ["created", "updated"]
    referral = Referral.objects.get()
    assert referral.history.count() == 2
    assert referral.patient.history.count() == 1


def _sleeping_after(function, seconds: float = 0.5):
    def slow(*args, **kwargs):
        result = function(*args, **kwargs)
        time.sleep(seconds)
        return result

    return slow
