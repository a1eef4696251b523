"""Property-based: whatever bytes arrive, the only outcomes are referrals or a rejection kept
raw in the inbox with a reason. No exception escapes, and the parsers' last-resort guard
("internt fel") is never what catches a problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.importers import csv_swedish, fhir, hl7, intake
from triage.models import InboxMessage, IntakeFormat, Referral

DATA = Path(__file__).parent / "data" / "intake"
FHIR_SAMPLE = json.loads((DATA / "fhir" / "service_request_contained.json").read_bytes())
HL7_SAMPLE = (DATA / "hl7" / "orm_o01_v23_latin1.hl7").read_bytes()
CSV_SAMPLE = (DATA / "csv" / "excel_utf8_bom.csv").read_bytes()

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(db):
    return intake.sender_register(name="fuzz", user=None)


def assert_referral_or_inbox(result, raw: bytes) -> None:
    if result.rejected:
        assert result.error.strip()
        assert result.error_code != "exception", result.error
        message = InboxMessage.objects.get(pk=result.inbox_message.pk)
        assert bytes(message.raw) == raw
        assert message.error
    else:
        assert result.orders
        ids = [order.referral_id for order in result.orders]
        assert Referral.objects.filter(pk__in=ids).count() == len(set(ids))


# --- Arbitrary bytes -------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=400))
def test_fhir_arbitrary_bytes(sender, raw):
    assert_referral_or_inbox(fhir.intake_fhir(sender=sender, raw=raw), raw)


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=400))
def test_hl7_arbitrary_bytes(sender, raw):
    assert_referral_or_inbox(hl7.intake_hl7(sender=sender, raw=raw), raw)
    hl7.build_ack(hl7.read_envelope(raw), hl7.intake_hl7(sender=sender, raw=raw))


@PROPERTY_SETTINGS
@given(raw=st.binary(max_size=400))
def test_csv_arbitrary_bytes(sender, raw):
    for source in csv_swedish.csv_sources(raw, origin="fuzz.csv"):
        result = intake.message_intake(sender=sender, format=IntakeFormat.CSV, source=source)
        assert_referral_or_inbox(result, source.raw)


# --- Structured mutations of valid messages --------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.text(max_size=20)
    | st.sampled_from(
        ["2025-03-03", "2025-03-03T10:00:00", "2025-03", "#pat", "urn:oid:1.2.752.129.2.1.3.3"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FHIR_PATHS = [
    ("status",),
    ("intent",),
    ("authoredOn",),
    ("subject",),
    ("subject", "reference"),
    ("identifier",),
    ("identifier", 0, "value"),
    ("code",),
    ("code", "text"),
    ("requester",),
    ("note",),
    ("contained", 0, "identifier", 0, "system"),
    ("contained", 0, "identifier", 0, "value"),
    ("contained", 0, "name"),
    ("contained", 0, "resourceType"),
    ("contained", 3, "practitioner"),
    ("extension",),
]


def _set(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@PROPERTY_SETTINGS
@given(
    changes=st.lists(st.tuples(st.sampled_from(FHIR_PATHS), json_values), min_size=1, max_size=3)
)
def test_fhir_structured_mutations(sender, changes):
    document = json.loads(json.dumps(FHIR_SAMPLE))
    for path, value in changes:
        try:
            _set(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the parent; the document is still fair input
    raw = json.dumps(document).encode()

    assert_referral_or_inbox(fhir.intake_fhir(sender=sender, raw=raw), raw)


HL7_SEGMENTS = HL7_SAMPLE.split(b"\r")[:-1]
hl7_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=("Cs",)), max_size=30
).map(lambda text: text.encode("latin-1"))


@PROPERTY_SETTINGS
@given(
    segment=st.integers(0, len(HL7_SEGMENTS) - 1),
    field=st.integers(0, 25),
    value=hl7_text | st.sampled_from([b"\\", b"\\X\\", b"\\.sp9999999999\\", b"^~&", b"\\Zz\\"]),
    terminator=st.sampled_from([b"\r", b"\n", b"\r\n"]),
)
def test_hl7_structured_mutations(sender, segment, field, value, terminator):
    segments = [part.split(b"|") for part in HL7_SEGMENTS]
    fields = segments[segment]
    while len(fields) <= field:
        fields.append(b"")
    fields[field] = value
    raw = terminator.join(b"|".join(part) for part in segments) + terminator

    result = hl7.intake_hl7(sender=sender, raw=raw)

    assert_referral_or_inbox(result, raw)
    ack, codec = hl7.build_ack(hl7.read_envelope(raw), result)
    assert ack.decode(codec).split("\r")[1].startswith("MSA|A")


CSV_HEADER, CSV_ROW = CSV_SAMPLE.split(b"\r\n")[0:2]


@PROPERTY_SETTINGS
@given(
    column=st.integers(0, 10),
    value=st.text(max_size=25).map(lambda text: text.encode("utf-8", "surrogatepass"))
    | st.sampled_from([b"1,98208E+11", b"8208012396", b"45721", b"6,5", b'"', b";;", b"\x00"]),
)
def test_csv_structured_mutations(sender, column, value):
    cells = CSV_ROW.split(b";")
    cells[column] = value
    raw = CSV_HEADER + b"\r\n" + b";".join(cells) + b"\r\n"

    for source in csv_swedish.csv_sources(raw, origin="fuzz.csv"):
        result = intake.message_intake(sender=sender, format=IntakeFormat.CSV, source=source)
        assert_referral_or_inbox(result, source.raw)
