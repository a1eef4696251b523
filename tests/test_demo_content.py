"""Demo content: templates use whitelisted placeholders; demo referrals match the engine."""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections import Counter

import pytest

from triage.demo_content import DEMO_REFERRALS
from triage.models import Referral
from triage.reply_text import PLACEHOLDERS as REPLY_PLACEHOLDERS
from triage.reply_text import check_body
from triage.rules import DEFAULT_PARAMETERS, Facts, PriorImaging, recommend

# The shipped templates are the data of their migration (the single source).
REPLY_TEMPLATES = importlib.import_module("triage.migrations.0003_reply_templates").TEMPLATES

# Fixed "today": a referral received N days ago was written on REFERENCE_DATE - N days.
REFERENCE_DATE = dt.date(2026, 12, 1)

WHITELIST = {
    "datum",
    "remissdatum",
    "undersokning",
    "tidigare_undersokning",
    "tidigare_datum",
    "tidigare_plats",
    "fynd",
    "forslag",
    "atgard",
    "prioritet",
    "saknas",
    "patient_alder",
}
TEMPLATE_KINDS = {
    "rereview_prior_imaging",
    "young_no_trauma",
    "xray_cannot_assess_metastasis",
    "method_change_not_allowed",
    "no_indication",
    "missing_information",
    "accepted",
    "escalated",
}
# Spec section 3.
ACTIONS = {"escalate", "mri", "ct", "xray", "rereview", "return"}
REPLY_KINDS = {
    "rereview_prior_imaging",
    "no_indication",
    "young_no_trauma",
    "xray_cannot_assess_metastasis",
    "method_change_not_allowed",
    "missing_information",
}
RED_FLAGS = {
    "child_under_18",
    "onset_after_55",
    "night_pain",
    "prior_cancer",
    "inflammatory",
    "systemic_steroids",
    "drug_abuse",
    "weight_loss",
    "severe_restriction",
    "pain_on_minimal_movement",
    "structural_deformity",
}
YELLOW_FLAGS = {"emotional", "cognitive", "behavioural"}
QUESTIONS = {"compression", "degenerative", "metastasis", "other"}
EMERGENCY_SIGNS = {
    "cauda_equina",
    "progressive_neuro_deficit",
    "suspected_infection",
    "major_trauma",
}
MODALITIES = {"ct", "mri", "xray", "scintigraphy"}
REGIONS = {"buk", "aorta", "urinvägar", "ländrygg", "thorax"}
REFERRAL_KEYS = {
    "order_number",
    "received_days_ago",
    "patient",
    "unit",
    "clinician",
    "requested",
    "method_change_allowed",
    "text",
    "prior_imaging",
    "facts",
    "expected_action",
    "demo_state",
}
FACT_KEYS = {
    "pain_weeks",
    "red_flags",
    "yellow_flags",
    "radicular",
    "treatment_weeks",
    "improved",
    "questions",
    "trauma",
    "emergency_signs",
    "mri_contraindicated",
}
IMAGING_KEYS = {"modality", "region", "days_before", "covers_lumbar_spine", "finding", "location"}
HEADING = "{datum} Angående remiss för {undersokning}"
_TOKEN = re.compile(r"\{([^{}]*)\}")


def _ids(referral: dict) -> str:
    return str(referral["order_number"])


def build_facts(referral: dict) -> Facts:
    referral_date = REFERENCE_DATE - dt.timedelta(days=referral["received_days_ago"])
    facts = referral["facts"]
    return Facts(
        referral_date=referral_date,
        age=referral["patient"]["age"],
        pain_weeks=facts["pain_weeks"],
        red_flags=frozenset(facts["red_flags"]),
        yellow_flags=frozenset(facts["yellow_flags"]),
        radicular=facts["radicular"],
        treatment_weeks=facts["treatment_weeks"],
        improved=facts["improved"],
        requested=referral["requested"],
        questions=frozenset(facts["questions"]),
        trauma=facts["trauma"],
        method_change_allowed=referral["method_change_allowed"],
        prior_imaging=tuple(
            PriorImaging(
                modality=prior["modality"],
                region=prior["region"],
                date=referral_date - dt.timedelta(days=prior["days_before"]),
                covers_lumbar_spine=prior["covers_lumbar_spine"],
            )
            for prior in referral["prior_imaging"]
        ),
        emergency_signs=frozenset(facts["emergency_signs"]),
        mri_contraindicated=facts["mri_contraindicated"],
    )


# --- Reply templates ---------------------------------------------------------------------


def test_placeholder_whitelist_is_exactly_the_agreed_names():
    assert set(REPLY_PLACEHOLDERS) == WHITELIST
    assert all(str(text).strip() for text in REPLY_PLACEHOLDERS.values())


@pytest.mark.parametrize("template", REPLY_TEMPLATES, ids=lambda t: f"{t['kind']}-{t['position']}")
def test_template_uses_only_whitelisted_placeholders(template):
    check_body(template["body"])  # raises on an unknown placeholder or unbalanced braces


@pytest.mark.parametrize("template", REPLY_TEMPLATES, ids=lambda t: f"{t['kind']}-{t['position']}")
def test_template_shape(template):
    assert set(template) == {"kind", "title", "body", "position"}
    assert template["kind"] in TEMPLATE_KINDS
    assert template["title"].strip()
    assert template["position"] in (0, 1)
    lines = template["body"].split("\n")
    assert lines[0] == HEADING
    assert len(lines) >= 2 and all(line.strip() == line and line for line in lines)


def test_every_template_kind_is_present_with_a_default():
    kinds = Counter(t["kind"] for t in REPLY_TEMPLATES)
    assert set(kinds) == TEMPLATE_KINDS
    assert kinds["rereview_prior_imaging"] == 2
    positions = Counter((t["kind"], t["position"]) for t in REPLY_TEMPLATES)
    assert all(count == 1 for count in positions.values()), "duplicate position in a kind"
    assert all((kind, 0) in positions for kind in TEMPLATE_KINDS)


def test_every_reply_kind_of_the_engine_has_a_template():
    assert {t["kind"] for t in REPLY_TEMPLATES} >= REPLY_KINDS


def test_templates_keep_the_seed_wording():
    bodies = "\n".join(t["body"] for t in REPLY_TEMPLATES)
    for phrase in (
        "Patienten har genomgått flera DT undersökningar, bl a "
        "{tidigare_undersokning} {tidigare_datum}.",
        "En slätröntgen torde inte bidra till något ytterligare och aktuell remiss "
        "återsändes utan åtgärd.",
        "I avsaknad av trauma förefaller inte en röntgenundersökning, med den strålning "
        "det medför, motiverad på denna unga patient.",
        "En vanlig röntgenundersökning av kotpelaren kan inte användas för att värdera "
        "eventuella metastaser.",
        "För ev. metastasvärdering föreslås {forslag}.",
        "Remissen sänds åter, då vi enligt er inte har tillåtelse att ändra undersökningsmetod.",
        "{saknas}",
        "{atgard} med prioritet {prioritet}",
    ):
        assert phrase in bodies, phrase


# --- Demo referrals ----------------------------------------------------------------------


def test_order_numbers_are_unique():
    numbers = [r["order_number"] for r in DEMO_REFERRALS]
    assert len(numbers) == len(set(numbers))
    assert all(re.fullmatch(r"RIS-\d{2}-\d{5}", n) for n in numbers)


def test_demo_referral_count_and_states():
    assert 35 <= len(DEMO_REFERRALS) <= 45
    states = Counter(r["demo_state"] for r in DEMO_REFERRALS)
    assert set(states) == {"new", "decided"}
    assert 6 <= states["decided"] <= 10
    days = [r["received_days_ago"] for r in DEMO_REFERRALS]
    assert all(0 <= d <= 40 for d in days)
    assert sum(d > 21 for d in days) >= 3


@pytest.mark.parametrize("referral", DEMO_REFERRALS, ids=_ids)
def test_demo_referral_shape(referral):
    assert set(referral) - {"referrer_priority"} == REFERRAL_KEYS
    assert referral.get("referrer_priority", "routine") in Referral.ReferrerPriority.values
    patient = referral["patient"]
    assert set(patient) == {"name", "sex", "age"}
    assert patient["sex"] in ("F", "M")
    assert isinstance(patient["age"], int) and 0 <= patient["age"] <= 110
    assert referral["requested"] in ("xray", "mri", "ct", "other")
    assert isinstance(referral["method_change_allowed"], bool)
    assert referral["expected_action"] in ACTIONS
    text = referral["text"]
    assert "Anamnes:" in text and "Frågeställning:" in text
    facts = referral["facts"]
    assert set(facts) == FACT_KEYS
    assert set(facts["red_flags"]) <= RED_FLAGS
    assert "child_under_18" not in facts["red_flags"], "the engine adds it from the age"
    assert set(facts["yellow_flags"]) <= YELLOW_FLAGS
    assert facts["questions"] and set(facts["questions"]) <= QUESTIONS
    assert set(facts["emergency_signs"]) <= EMERGENCY_SIGNS
    for prior in referral["prior_imaging"]:
        assert set(prior) == IMAGING_KEYS
        assert prior["modality"] in MODALITIES
        assert prior["region"] in REGIONS
        assert isinstance(prior["days_before"], int) and prior["days_before"] > 0
        assert prior["finding"].strip() and prior["location"].strip()


@pytest.mark.parametrize("referral", DEMO_REFERRALS, ids=_ids)
def test_expected_action_matches_engine(referral):
    recommendation = recommend(build_facts(referral))
    assert recommendation.action == referral["expected_action"]


def test_every_action_and_reply_kind_occurs():
    recommendations = [recommend(build_facts(r), DEFAULT_PARAMETERS) for r in DEMO_REFERRALS]
    assert {r.action for r in recommendations} == ACTIONS
    assert {r.reply_kind for r in recommendations} - {None} == REPLY_KINDS
    assert {r.indication for r in recommendations} == {"met", "borderline", "not_met", "unknown"}


def test_demo_covers_the_interesting_situations():
    facts = [(r, r["facts"]) for r in DEMO_REFERRALS]
    signs = Counter(s for _, f in facts for s in f["emergency_signs"])
    assert signs["cauda_equina"] >= 1 and signs["suspected_infection"] >= 1
    assert any(r["patient"]["age"] < 18 for r, _ in facts)
    assert any(f["mri_contraindicated"] for _, f in facts)
    assert any(f["yellow_flags"] and not f["red_flags"] for _, f in facts)
    assert any(f["radicular"] and f["improved"] is True for _, f in facts)
    assert any(f["radicular"] and f["improved"] is False for _, f in facts)
    assert any(f["pain_weeks"] is None for _, f in facts)
    assert any(f["pain_weeks"] is not None and 3 <= f["pain_weeks"] < 4 for _, f in facts)
    assert any(
        p["covers_lumbar_spine"] and p["days_before"] > 400
        for r, _ in facts
        for p in r["prior_imaging"]
    )
