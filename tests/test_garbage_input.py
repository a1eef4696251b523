"""Garbage posted to every form and endpoint: a clear refusal (4xx), never a 500."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from tests.conftest import make_referral
from triage import services
from triage.importers.intake import sender_register
from triage.importers.tokens import api_token_create
from triage.models import Assessment, Flag, GuidelineVersion, ReplyTemplate
from triage.selectors import AssessmentInput

pytestmark = pytest.mark.django_db

GARBAGE_FORMS = [
    {},
    {"pain_weeks": "1e309", "treatment_weeks": "NaN", "priority_weeks": "-0"},
    {"pain_weeks": "9" * 400, "version": "x", "guideline": "[]", "context": "a" * 5000},
    {"red_flags": ["'; DROP TABLE triage_referral; --"], "questions": ["<script>"]},
    {"action": "launch_missiles", "accept": "1", "shown": ":::::"},
    {"text": "\x00\x01\x02", "template": "999999", "finalize": "1"},
    {
        "missing": "x" * 100_000,
        "information": "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
    },
    {"performed_on": "2025-02-30", "modality": "pet", "region": "", "covers_lumbar_spine": "maybe"},
    {"version": "99999999999999999999999", "guideline": "-1"},
]
RAW_BODIES = [
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
    (b'{"pain_weeks": 6}', "application/json"),
    (b"--boundary\r\nbroken multipart", "multipart/form-data; boundary=boundary"),
]


@pytest.fixture
def decided_referral(radiologist):
    referral = make_referral(order_number="G-1")
    services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"})),
        action="mri",
        priority_weeks=6,
        user=radiologist,
    )
    return referral


def _form_urls(referral, decided) -> list[str]:
    return [
        reverse("triage:take_next"),
        reverse("triage:referral", args=[referral.pk]),
        reverse("triage:recommendation", args=[referral.pk]),
        reverse("triage:prior_imaging_add", args=[referral.pk]),
        reverse("triage:request_information", args=[referral.pk]),
        reverse("triage:information_received", args=[referral.pk]),
        reverse("triage:release", args=[referral.pk]),
        reverse("triage:reopen", args=[decided.pk]),
        reverse("triage:reply", args=[decided.pk]),
    ]


def test_garbage_to_every_radiologist_form_is_refused_without_500(
    client, radiologist, referral, decided_referral
):
    client.force_login(radiologist)
    client.raise_request_exception = False
    before = Assessment.objects.count()
    for url in _form_urls(referral, decided_referral):
        for payload in GARBAGE_FORMS:
            response = client.post(url, payload)
            assert response.status_code < 500, (url, payload, response.status_code)
        for body, content_type in RAW_BODIES:
            response = client.generic("POST", url, body, content_type=content_type)
            assert response.status_code < 500, (url, body, response.status_code)
    assert Assessment.objects.count() == before


def test_garbage_query_parameters_never_500(client, radiologist, auditor, decided_referral):
    client.raise_request_exception = False
    garbage = {
        "page": "-1e9",
        "q": "%00' OR 1=1 --",
        "status": "<x>",
        "requested": "∞",
        "mine": "yes",
        "overdue": "[]",
        "mall": "../../etc",
        "from": "2025-02-30",
        "to": "not a date",
        "user": "abc",
        "kind": "everything",
        "seed": "1e999",
        "sample": "-5",
        "personnummer": "19820801-2397",
        "referral": "\x00",
    }
    client.force_login(radiologist)
    for url in (reverse("triage:worklist"), reverse("triage:reply", args=[decided_referral.pk])):
        assert client.get(url, garbage).status_code < 500
    client.force_login(auditor)
    for name in (
        "audit:timeline",
        "audit:timeline_csv",
        "audit:access_log",
        "audit:patient_extract",
    ):
        response = client.get(reverse(name), garbage)
        assert response.status_code < 500, (name, response.status_code)


def test_garbage_to_admin_forms_never_500(client, department_head):
    department_head.is_staff = True
    department_head.save()
    client.force_login(department_head)
    client.raise_request_exception = False
    template = ReplyTemplate.objects.first()
    urls = [
        reverse("admin:triage_replytemplate_change", args=[template.pk]),
        reverse("admin:triage_replytemplate_add"),
        reverse("admin:triage_guidelineversion_copy"),
        reverse("admin:triage_flag_change", args=[Flag.objects.first().pk]),
        reverse("admin:triage_sender_add"),
        reverse("admin:triage_apitoken_add"),
    ]
    for url in urls:
        for payload in GARBAGE_FORMS + [{"body": "{x", "kind": "??", "position": "-3"}]:
            assert client.post(url, payload).status_code < 500, (url, payload)
    assert GuidelineVersion.objects.filter(is_active=True).count() == 1


def test_garbage_to_the_api_gets_4xx_with_a_message(client, department_head):
    sender = sender_register(name="garbage-ris", user=department_head)
    _token, secret = api_token_create(sender=sender, label="t", user=department_head)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    client.raise_request_exception = False
    bodies = [
        (b"", "application/fhir+json"),
        (b"\xff\xfe\xfd", "application/fhir+json"),
        (b'{"resourceType": "ServiceRequest"', "application/fhir+json"),
        (b"[1, 2, 3]", "application/fhir+json"),
        (b'{"resourceType": "Patient"}', "application/json"),
        (b"MSH|^~\\&|broken", "x-application/hl7-v2+er7"),
        (b"\x00" * 100, "text/plain"),
    ]
    for body, content_type in bodies:
        fhir = client.generic(
            "POST", reverse("api:fhir-servicerequest"), body, content_type=content_type, **auth
        )
        assert 400 <= fhir.status_code < 500, (body, fhir.status_code)
        assert fhir.json()["resourceType"] == "OperationOutcome"
        # HL7 over HTTP answers every message with an ACK; a refusal is MSA|AR or MSA|AE.
        hl7 = client.generic("POST", reverse("api:hl7"), body, content_type=content_type, **auth)
        assert hl7.status_code == 200, (body, hl7.status_code)
        assert b"\rMSA|AR|" in hl7.content or b"\rMSA|AE|" in hl7.content, hl7.content


@pytest.mark.parametrize("bound", [{"date_from": "0001-01-01"}, {"date_to": "9999-12-31"}])
def test_extreme_audit_dates_are_refused_not_500(client, auditor, bound):
    client.force_login(auditor)
    client.raise_request_exception = False
    for name in ("audit:timeline", "audit:timeline_csv", "audit:access_log"):
        response = client.get(reverse(name), bound)
        assert response.status_code == 400, (name, response.status_code)
        assert "Ange ett datum" in response.content.decode()
