"""Tests of the pure recommendation engine (triage.rules): no database, no Django."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.rules import (
    ACTIONS,
    DEFAULT_PARAMETERS,
    EMERGENCY_SIGNS,
    INDICATIONS,
    MODALITIES,
    QUESTIONS,
    RED_FLAGS,
    REPLY_KINDS,
    REQUESTED_EXAMINATIONS,
    SUGGESTIONS,
    WARNINGS,
    YELLOW_FLAGS,
    Facts,
    FactsError,
    Message,
    Parameters,
    PriorImaging,
    Recommendation,
    facts_from_dict,
    recommend,
    recommendation_to_dict,
)

ROOT = Path(__file__).resolve().parents[1]
VIGNETTES_PATH = Path(__file__).resolve().parents[2] / "shared" / "cases" / "vignettes.json"
VIGNETTES = json.loads(VIGNETTES_PATH.read_text(encoding="utf-8"))

REFERRAL = date(2025, 3, 10)
SWEDISH_LETTERS = set("åäöÅÄÖ")


# --- builders ---------------------------------------------------------------


def make_facts(**overrides) -> Facts:
    """A 50-year-old with 10 weeks of pain, no flags, MRI requested; override what matters."""
    values = {
        "referral_date": REFERRAL,
        "age": 50,
        "pain_weeks": 10,
        "requested": "mri",
        "questions": {"other"},
    }
    values.update(overrides)
    for name in ("red_flags", "yellow_flags", "questions", "emergency_signs"):
        if name in values:
            values[name] = frozenset(values[name])
    if "prior_imaging" in values:
        values["prior_imaging"] = tuple(values["prior_imaging"])
    return Facts(**values)


def ct(day: date, *, covers: bool = True, region: str = "buk") -> PriorImaging:
    return PriorImaging("ct", region, day, covers)


def warning_codes(rec: Recommendation) -> list[str]:
    return [w.code for w in rec.warnings]


def reason_codes(rec: Recommendation) -> list[str]:
    return [r.code for r in rec.reasons]


def valid_facts_dict(**overrides) -> dict:
    data = {
        "referral_date": "2025-03-10",
        "age": 50,
        "pain_weeks": 10,
        "red_flags": ["night_pain"],
        "yellow_flags": [],
        "radicular": False,
        "treatment_weeks": None,
        "improved": None,
        "requested": "mri",
        "questions": ["other"],
        "trauma": False,
        "method_change_allowed": True,
        "prior_imaging": [
            {"modality": "ct", "region": "buk", "date": "2025-01-08", "covers_lumbar_spine": True}
        ],
        "emergency_signs": [],
        "mri_contraindicated": False,
    }
    data.update(overrides)
    return data


# --- I1: red flags ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pain_weeks", "indication", "criteria", "action", "priority", "warnings"),
    [
        pytest.param(2.9, "not_met", (), "return", None, [], id="2.9-weeks-not-met"),
        pytest.param(3, "borderline", (), "mri", 6, ["borderline_duration"], id="3-weeks"),
        pytest.param(3.9, "borderline", (), "mri", 6, ["borderline_duration"], id="3.9-weeks"),
        pytest.param(4, "met", ("I1",), "mri", 6, [], id="4-weeks-met"),
    ],
)
def test_red_flag_duration_bounds_give_borderline_then_met(
    pain_weeks, indication, criteria, action, priority, warnings
):
    rec = recommend(make_facts(red_flags={"night_pain"}, pain_weeks=pain_weeks))

    assert rec.indication == indication
    assert rec.criteria == criteria
    assert rec.action == action
    assert rec.priority_weeks == priority
    assert warning_codes(rec) == warnings


def test_long_duration_without_red_flag_is_not_i1():
    rec = recommend(make_facts(pain_weeks=20))

    assert rec.indication == "not_met"
    assert rec.reply_kind == "no_indication"


# --- I2: yellow flags -------------------------------------------------------


@pytest.mark.parametrize(
    ("pain_weeks", "indication", "action", "priority", "warnings"),
    [
        pytest.param(7.9, "not_met", "return", None, [], id="7.9-weeks-not-met"),
        pytest.param(8, "met", "mri", 8, ["local_rule_yellow"], id="8-weeks-met"),
    ],
)
def test_yellow_flag_bound_is_inclusive_at_8_weeks(
    pain_weeks, indication, action, priority, warnings
):
    rec = recommend(make_facts(yellow_flags={"emotional"}, pain_weeks=pain_weeks))

    assert rec.indication == indication
    assert rec.criteria == (("I2",) if indication == "met" else ())
    assert rec.action == action
    assert rec.priority_weeks == priority
    assert warning_codes(rec) == warnings


def test_red_and_yellow_flags_together_get_red_priority_and_no_yellow_warning():
    rec = recommend(make_facts(red_flags={"night_pain"}, yellow_flags={"cognitive"}))

    assert rec.criteria == ("I1", "I2")
    assert rec.priority_weeks == 6
    assert "local_rule_yellow" not in warning_codes(rec)


# --- I3: radicular pain -----------------------------------------------------


@pytest.mark.parametrize(
    ("radicular", "treatment_weeks", "improved", "pain_weeks", "indication", "criteria"),
    [
        pytest.param(True, 5.9, False, 10, "not_met", (), id="5.9-weeks-treatment"),
        pytest.param(True, 6, False, 10, "met", ("I3",), id="6-weeks-not-improved"),
        pytest.param(True, 6, True, 10, "not_met", (), id="6-weeks-improved"),
        pytest.param(True, 6, None, 10, "not_met", (), id="6-weeks-improvement-unknown"),
        pytest.param(True, None, False, 10, "not_met", (), id="treatment-unknown"),
        pytest.param(False, 6, False, 10, "not_met", (), id="not-radicular"),
        pytest.param(True, 6, False, None, "met", ("I3",), id="no-duration-i3-decides"),
        pytest.param(True, 6, None, None, "unknown", (), id="no-duration-nothing-decides"),
    ],
)
def test_radicular_criterion_needs_6_weeks_treatment_without_improvement(
    radicular, treatment_weeks, improved, pain_weeks, indication, criteria
):
    rec = recommend(
        make_facts(
            radicular=radicular,
            treatment_weeks=treatment_weeks,
            improved=improved,
            pain_weeks=pain_weeks,
        )
    )

    assert rec.indication == indication
    assert rec.criteria == criteria
    if indication == "met":
        assert (rec.action, rec.priority_weeks) == ("mri", 8)


# --- ages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "pain_weeks", "indication", "warnings", "child_reason"),
    [
        pytest.param(17, 4, "met", ["child"], True, id="17-child-flag-meets-i1"),
        pytest.param(17, 1, "not_met", ["child"], True, id="17-short-pain-still-warns"),
        pytest.param(18, 4, "not_met", [], False, id="18-adult"),
        pytest.param(None, 4, "not_met", [], False, id="age-unknown"),
    ],
)
def test_child_under_18_is_added_by_the_engine(age, pain_weeks, indication, warnings, child_reason):
    rec = recommend(make_facts(age=age, pain_weeks=pain_weeks))

    assert rec.indication == indication
    assert warning_codes(rec) == warnings
    assert ("child_under_18" in reason_codes(rec)) is child_reason


def test_child_flag_ticked_and_derived_is_counted_once():
    rec = recommend(make_facts(age=12, pain_weeks=4, red_flags={"child_under_18"}))

    assert rec.criteria == ("I1",)
    assert warning_codes(rec) == ["child"]


def test_child_flag_is_not_added_to_the_callers_facts():
    facts = make_facts(age=12)

    recommend(facts)

    assert facts.red_flags == frozenset()


@pytest.mark.parametrize(
    ("age", "requested", "trauma", "reply_kind"),
    [
        pytest.param(39, "xray", False, "young_no_trauma", id="39-xray"),
        pytest.param(40, "xray", False, "no_indication", id="40-xray"),
        pytest.param(39, "xray", True, "no_indication", id="39-xray-trauma"),
        pytest.param(39, "mri", False, "no_indication", id="39-mri"),
        pytest.param(None, "xray", False, "no_indication", id="age-unknown"),
    ],
)
def test_young_patient_without_trauma_gets_radiation_reply_for_xray(
    age, requested, trauma, reply_kind
):
    rec = recommend(make_facts(age=age, requested=requested, trauma=trauma, pain_weeks=2))

    assert (rec.action, rec.reply_kind, rec.suggest) == ("return", reply_kind, None)


@pytest.mark.parametrize(
    ("age", "questions", "prior_imaging", "method_change_allowed", "action"),
    [
        pytest.param(65, {"compression"}, [], True, "xray", id="65-compression"),
        pytest.param(64, {"compression"}, [], True, "mri", id="64-compression"),
        pytest.param(65, {"degenerative"}, [], True, "xray", id="65-degenerative"),
        pytest.param(
            65, {"compression", "metastasis"}, [], True, "mri", id="65-metastasis-excludes"
        ),
        pytest.param(65, {"other"}, [], True, "mri", id="65-other-question"),
        pytest.param(None, {"compression"}, [], True, "mri", id="age-unknown"),
        pytest.param(
            65, {"compression"}, [ct(date(2019, 5, 1))], True, "mri", id="65-old-lumbar-imaging"
        ),
        pytest.param(
            65,
            {"compression"},
            [ct(date(2025, 1, 8), covers=False, region="thorax")],
            True,
            "xray",
            id="65-imaging-not-covering-lumbar",
        ),
        pytest.param(65, {"compression"}, [], False, "xray", id="65-change-not-allowed"),
    ],
)
def test_plain_xray_is_accepted_for_older_patient_with_compression_or_degeneration(
    age, questions, prior_imaging, method_change_allowed, action
):
    facts = make_facts(
        age=age,
        red_flags={"onset_after_55"},
        pain_weeks=6,
        requested="xray",
        questions=questions,
        prior_imaging=prior_imaging,
        method_change_allowed=method_change_allowed,
    )

    rec = recommend(facts)

    assert rec.action == action
    assert rec.priority_weeks == 6


def test_older_patient_requesting_mri_gets_mri():
    rec = recommend(
        make_facts(age=80, red_flags={"onset_after_55"}, questions={"compression"}, pain_weeks=6)
    )

    assert rec.action == "mri"


@pytest.mark.parametrize(
    ("age", "red_flags", "questions", "pain_weeks", "requested", "allowed", "fires"),
    [
        pytest.param(65, set(), {"compression"}, 2, "xray", True, True, id="65-returned"),
        pytest.param(64, set(), {"compression"}, 2, "xray", True, False, id="64-returned"),
        pytest.param(
            64, {"systemic_steroids"}, {"compression"}, 2, "xray", True, True, id="64-steroids"
        ),
        pytest.param(65, set(), {"degenerative"}, 2, "xray", True, False, id="65-no-compression"),
        pytest.param(None, set(), {"compression"}, 2, "xray", True, False, id="age-unknown"),
        pytest.param(
            65, {"onset_after_55"}, {"compression"}, 6, "xray", True, False, id="65-xray-booked"
        ),
        pytest.param(
            70, {"onset_after_55"}, {"compression"}, 6, "ct", False, True, id="70-method-return"
        ),
    ],
)
def test_fragility_fracture_warning_only_when_returning_a_compression_question(
    age, red_flags, questions, pain_weeks, requested, allowed, fires
):
    facts = make_facts(
        age=age,
        red_flags=red_flags,
        questions=questions,
        pain_weeks=pain_weeks,
        requested=requested,
        method_change_allowed=allowed,
    )

    rec = recommend(facts)

    assert ("fragility_fracture" in warning_codes(rec)) is fires
    if fires:
        assert rec.action == "return"


# --- recent imaging -----------------------------------------------------------


@pytest.mark.parametrize(
    ("referral_date", "imaging_date", "months", "recent"),
    [
        pytest.param(date(2025, 3, 10), date(2024, 3, 10), 12, True, id="12-months-to-the-day"),
        pytest.param(date(2025, 3, 10), date(2024, 3, 9), 12, False, id="one-day-more"),
        pytest.param(date(2025, 3, 10), date(2025, 3, 10), 12, True, id="same-day"),
        pytest.param(date(2025, 3, 10), date(2025, 3, 11), 12, False, id="after-referral"),
        pytest.param(date(2025, 3, 31), date(2025, 2, 28), 1, True, id="month-end-clamped"),
        pytest.param(date(2025, 3, 31), date(2025, 2, 27), 1, False, id="month-end-day-before"),
        pytest.param(date(2024, 3, 31), date(2024, 2, 29), 1, True, id="leap-month-end"),
        pytest.param(date(2024, 3, 31), date(2024, 2, 28), 1, False, id="leap-day-before"),
        pytest.param(date(2024, 2, 29), date(2023, 2, 28), 12, True, id="leap-day-referral"),
        pytest.param(date(2024, 2, 29), date(2023, 2, 27), 12, False, id="leap-day-before"),
        pytest.param(date(2025, 1, 15), date(2024, 12, 15), 1, True, id="year-wrap"),
        pytest.param(date(2025, 1, 15), date(2024, 12, 14), 1, False, id="year-wrap-before"),
        pytest.param(date(2025, 3, 10), date(2025, 3, 10), 0, True, id="zero-months-same-day"),
        pytest.param(date(2025, 3, 10), date(2025, 3, 9), 0, False, id="zero-months-day-before"),
    ],
)
def test_recent_imaging_window_counts_calendar_months_inclusively(
    referral_date, imaging_date, months, recent
):
    facts = make_facts(
        referral_date=referral_date,
        red_flags={"night_pain"},
        requested="xray",
        prior_imaging=[ct(imaging_date)],
    )

    rec = recommend(facts, Parameters(recent_imaging_months=months))

    assert rec.action == ("rereview" if recent else "mri")


def test_imaging_not_covering_the_lumbar_spine_is_never_recent():
    facts = make_facts(
        red_flags={"night_pain"},
        requested="xray",
        prior_imaging=[ct(REFERRAL, covers=False, region="thorax")],
    )

    rec = recommend(facts)

    assert rec.action == "mri"
    assert "recent_imaging" not in warning_codes(rec)


def test_xray_request_with_recent_ct_becomes_rereview():
    facts = make_facts(
        red_flags={"night_pain"}, requested="xray", prior_imaging=[ct(date(2025, 1, 8))]
    )

    rec = recommend(facts)

    assert rec.action == "rereview"
    assert rec.reply_kind == "rereview_prior_imaging"
    assert rec.suggest == "mri"
    assert rec.priority_weeks is None
    assert rec.warnings == ()


@pytest.mark.parametrize(
    ("requested", "pain_weeks", "red_flags", "questions", "action", "suggest"),
    [
        pytest.param("ct", 10, {"night_pain"}, {"other"}, "rereview", "mri", id="ct-met"),
        pytest.param(
            "xray",
            10,
            {"prior_cancer"},
            {"metastasis"},
            "rereview",
            "mri_or_scintigraphy",
            id="xray-metastasis",
        ),
        pytest.param("xray", 3, {"night_pain"}, {"other"}, "rereview", "mri", id="borderline"),
        pytest.param("mri", 2, set(), {"other"}, "rereview", None, id="mri-not-met"),
        pytest.param("mri", None, set(), {"other"}, "rereview", None, id="mri-unknown"),
        pytest.param("mri", 10, {"night_pain"}, {"other"}, "mri", None, id="mri-met-books-mri"),
        pytest.param("other", 10, {"night_pain"}, {"other"}, "mri", None, id="other-met-books-mri"),
    ],
)
def test_recent_imaging_rereview_depends_on_request_and_indication(
    requested, pain_weeks, red_flags, questions, action, suggest
):
    facts = make_facts(
        requested=requested,
        pain_weeks=pain_weeks,
        red_flags=red_flags,
        questions=questions,
        prior_imaging=[ct(date(2025, 1, 8))],
    )

    rec = recommend(facts)

    assert rec.action == action
    assert rec.suggest == suggest
    if action == "rereview":
        assert rec.reply_kind == "rereview_prior_imaging"
    else:
        assert "recent_imaging" in warning_codes(rec)


def test_rereview_reason_names_the_newest_recent_imaging():
    facts = make_facts(
        red_flags={"night_pain"},
        requested="xray",
        prior_imaging=[ct(date(2024, 6, 1)), ct(date(2025, 2, 3), region="aorta")],
    )

    rec = recommend(facts)

    text = rec.reasons[-1].text
    assert rec.reasons[-1].code == "rereview_prior_imaging"
    assert "2025-02-03" in text
    assert "aorta" in text
    assert "12 månader" in text


@pytest.mark.parametrize(
    ("pain_weeks", "red_flags", "action", "reply_kind"),
    [
        pytest.param(10, {"night_pain"}, "mri", None, id="met-books-mri"),
        pytest.param(2, set(), "return", "no_indication", id="not-met-returned"),
    ],
)
def test_trauma_blocks_the_rereview(pain_weeks, red_flags, action, reply_kind):
    facts = make_facts(
        pain_weeks=pain_weeks,
        red_flags=red_flags,
        requested="xray",
        trauma=True,
        prior_imaging=[ct(date(2025, 1, 8))],
    )

    rec = recommend(facts)

    assert (rec.action, rec.reply_kind) == (action, reply_kind)
    assert "recent_imaging" in warning_codes(rec)


# --- emergency ----------------------------------------------------------------

EMERGENCY_SCENARIOS = {
    "no-criteria": {"pain_weeks": 0.5},
    "red-flag-met": {"red_flags": {"night_pain", "weight_loss"}},
    "yellow-met": {"yellow_flags": {"emotional"}},
    "radicular-met": {"radicular": True, "treatment_weeks": 8, "improved": False},
    "recent-ct-xray-request": {
        "red_flags": {"night_pain"},
        "requested": "xray",
        "prior_imaging": [ct(date(2025, 1, 8))],
    },
    "xray-metastasis-no-change": {
        "red_flags": {"prior_cancer"},
        "requested": "xray",
        "questions": {"metastasis"},
        "method_change_allowed": False,
    },
    "unknown-duration": {"pain_weeks": None},
    "mri-contraindicated": {"red_flags": {"night_pain"}, "mri_contraindicated": True},
    "older-xray-path": {
        "age": 80,
        "red_flags": {"onset_after_55"},
        "requested": "xray",
        "questions": {"compression"},
    },
}


@pytest.mark.parametrize("sign", list(EMERGENCY_SIGNS))
@pytest.mark.parametrize("scenario", list(EMERGENCY_SCENARIOS))
def test_emergency_sign_escalates_with_priority_zero_whatever_else_holds(sign, scenario):
    facts = make_facts(emergency_signs={sign}, **EMERGENCY_SCENARIOS[scenario])

    rec = recommend(facts)

    assert rec.action == "escalate"
    assert rec.priority_weeks == 0
    assert rec.priority_weeks not in (6, 8)
    assert rec.reply_kind is None
    assert rec.suggest is None
    assert warning_codes(rec)[0] == "emergency_outside_routine"
    assert rec.reasons[0].code == "emergency"
    assert EMERGENCY_SIGNS[sign] in rec.reasons[0].text


def test_emergency_keeps_the_computed_indication():
    facts = make_facts(emergency_signs={"suspected_infection"}, red_flags={"night_pain"})

    rec = recommend(facts)

    assert (rec.indication, rec.criteria) == ("met", ("I1",))
    assert reason_codes(rec) == ["emergency", "I1"]


def test_emergency_reason_lists_every_sign():
    rec = recommend(make_facts(emergency_signs=set(EMERGENCY_SIGNS)))

    assert all(label in rec.reasons[0].text for label in EMERGENCY_SIGNS.values())


# --- method -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "questions", "contraindicated", "action", "reply_kind", "suggest"),
    [
        pytest.param(
            "xray",
            {"metastasis"},
            False,
            "return",
            "xray_cannot_assess_metastasis",
            "mri_or_scintigraphy",
            id="xray-metastasis",
        ),
        pytest.param(
            "xray", {"other"}, False, "return", "method_change_not_allowed", "mri", id="xray"
        ),
        pytest.param("ct", {"other"}, False, "return", "method_change_not_allowed", "mri", id="ct"),
        pytest.param(
            "other", {"other"}, False, "return", "method_change_not_allowed", "mri", id="other"
        ),
        pytest.param("mri", {"other"}, False, "mri", None, None, id="mri-kept"),
        pytest.param("mri", {"other"}, True, "ct", None, None, id="mri-contraindicated"),
        pytest.param("ct", {"other"}, True, "ct", None, None, id="ct-contraindicated"),
        pytest.param(
            "xray",
            {"other"},
            True,
            "return",
            "method_change_not_allowed",
            "mri",
            id="xray-contraindicated",
        ),
        pytest.param(
            "xray",
            {"metastasis"},
            True,
            "return",
            "xray_cannot_assess_metastasis",
            "mri_or_scintigraphy",
            id="xray-metastasis-contraindicated",
        ),
    ],
)
def test_method_change_not_allowed_returns_unsuitable_requests(
    requested, questions, contraindicated, action, reply_kind, suggest
):
    facts = make_facts(
        red_flags={"night_pain"},
        requested=requested,
        questions=questions,
        method_change_allowed=False,
        mri_contraindicated=contraindicated,
    )

    rec = recommend(facts)

    assert (rec.action, rec.reply_kind, rec.suggest) == (action, reply_kind, suggest)
    assert rec.priority_weeks == (6 if action in ("mri", "ct") else None)


@pytest.mark.parametrize("requested", list(REQUESTED_EXAMINATIONS))
def test_mri_contraindicated_books_ct_with_warning(requested):
    facts = make_facts(red_flags={"night_pain"}, requested=requested, mri_contraindicated=True)

    rec = recommend(facts)

    assert (rec.action, rec.priority_weeks) == ("ct", 6)
    assert warning_codes(rec) == ["mri_contraindicated"]


@pytest.mark.parametrize("requested", list(REQUESTED_EXAMINATIONS))
def test_method_change_allowed_books_mri_whatever_was_requested(requested):
    rec = recommend(make_facts(red_flags={"night_pain"}, requested=requested))

    assert (rec.action, rec.reply_kind, rec.priority_weeks) == ("mri", None, 6)


def test_borderline_indication_also_gets_a_method():
    facts = make_facts(red_flags={"night_pain"}, pain_weeks=3.5, mri_contraindicated=True)

    rec = recommend(facts)

    assert (rec.indication, rec.action, rec.priority_weeks) == ("borderline", "ct", 6)
    assert warning_codes(rec) == ["borderline_duration", "mri_contraindicated"]


def test_borderline_red_flag_with_radicular_criterion_gets_red_priority():
    facts = make_facts(
        red_flags={"night_pain"},
        pain_weeks=3,
        radicular=True,
        treatment_weeks=6,
        improved=False,
    )

    rec = recommend(facts)

    assert (rec.indication, rec.criteria, rec.priority_weeks) == ("met", ("I3",), 6)
    assert warning_codes(rec) == ["borderline_duration"]


# --- no indication ----------------------------------------------------------


def test_unknown_duration_returns_for_missing_information():
    rec = recommend(make_facts(red_flags={"night_pain"}, pain_weeks=None))

    assert rec.indication == "unknown"
    assert (rec.action, rec.reply_kind, rec.suggest, rec.priority_weeks) == (
        "return",
        "missing_information",
        None,
        None,
    )


def test_not_met_returns_with_no_indication():
    rec = recommend(make_facts(pain_weeks=2))

    assert (rec.indication, rec.action, rec.reply_kind) == ("not_met", "return", "no_indication")


# --- warnings -----------------------------------------------------------------

RECENT_CT = [ct(date(2025, 1, 8))]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, [], id="none"),
        pytest.param(
            {"emergency_signs": {"major_trauma"}},
            ["emergency_outside_routine"],
            id="emergency-fires",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "pain_weeks": 3},
            ["borderline_duration"],
            id="borderline-fires",
        ),
        pytest.param({"red_flags": {"night_pain"}, "pain_weeks": 4}, [], id="borderline-not"),
        pytest.param(
            {"red_flags": {"night_pain"}, "pain_weeks": 2.9}, [], id="borderline-not-too-short"
        ),
        pytest.param(
            {"red_flags": {"prior_cancer"}}, ["malignancy_fast_track"], id="malignancy-cancer"
        ),
        pytest.param(
            {"questions": {"metastasis"}}, ["malignancy_fast_track"], id="malignancy-question"
        ),
        pytest.param(
            {"red_flags": {"prior_cancer"}, "questions": {"metastasis"}},
            ["malignancy_fast_track"],
            id="malignancy-once",
        ),
        pytest.param({"red_flags": {"drug_abuse"}}, ["infection_risk"], id="infection-drugs"),
        pytest.param(
            {"red_flags": {"systemic_steroids"}}, ["infection_risk"], id="infection-steroids"
        ),
        pytest.param(
            {"red_flags": {"drug_abuse", "systemic_steroids"}},
            ["infection_risk"],
            id="infection-once",
        ),
        pytest.param(
            {"red_flags": {"weight_loss"}}, [], id="infection-malignancy-inflammatory-not"
        ),
        pytest.param(
            {"age": 70, "requested": "xray", "questions": {"compression"}, "pain_weeks": 2},
            ["fragility_fracture"],
            id="fragility-fires",
        ),
        pytest.param(
            {"yellow_flags": {"behavioural"}}, ["local_rule_yellow"], id="yellow-only-fires"
        ),
        pytest.param(
            {
                "yellow_flags": {"behavioural"},
                "radicular": True,
                "treatment_weeks": 6,
                "improved": False,
            },
            [],
            id="yellow-with-radicular-not",
        ),
        pytest.param({"age": 17, "pain_weeks": 1}, ["child"], id="child-fires"),
        pytest.param({"age": 18, "pain_weeks": 1}, [], id="child-not-at-18"),
        pytest.param({"red_flags": {"inflammatory"}}, ["inflammatory"], id="inflammatory-fires"),
        pytest.param(
            {"red_flags": {"night_pain"}, "prior_imaging": RECENT_CT},
            ["recent_imaging"],
            id="recent-imaging-fires",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "requested": "xray", "prior_imaging": RECENT_CT},
            [],
            id="recent-imaging-not-when-rereview",
        ),
        pytest.param(
            {
                "red_flags": {"night_pain"},
                "requested": "xray",
                "prior_imaging": [ct(date(2024, 12, 29))],
            },
            ["prior_imaging_predates_onset"],
            id="predates-onset-fires",
        ),
        pytest.param(
            {
                "red_flags": {"night_pain"},
                "requested": "xray",
                "prior_imaging": [ct(date(2024, 12, 30))],
            },
            [],
            id="predates-onset-not-on-onset-day",
        ),
        pytest.param(
            {
                "red_flags": {"night_pain"},
                "requested": "xray",
                "prior_imaging": [ct(date(2024, 6, 1)), ct(date(2025, 1, 8))],
            },
            [],
            id="predates-onset-not-when-newer-imaging",
        ),
        pytest.param(
            {"pain_weeks": None, "prior_imaging": [ct(date(2024, 6, 1))]},
            [],
            id="predates-onset-not-without-duration",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "mri_contraindicated": True},
            ["mri_contraindicated"],
            id="mri-contraindicated-fires",
        ),
        pytest.param(
            {"pain_weeks": 2, "mri_contraindicated": True}, [], id="mri-contraindicated-not"
        ),
    ],
)
def test_each_safety_warning_fires_only_when_its_condition_holds(overrides, expected):
    rec = recommend(make_facts(**overrides))

    assert warning_codes(rec) == expected


def test_warnings_follow_the_table_order_without_duplicates():
    facts = make_facts(
        age=17,
        pain_weeks=3.5,
        red_flags={"prior_cancer", "drug_abuse", "systemic_steroids", "inflammatory"},
        questions={"metastasis", "compression"},
        prior_imaging=RECENT_CT,
        emergency_signs={"cauda_equina", "suspected_infection"},
    )

    rec = recommend(facts)

    assert warning_codes(rec) == [
        "emergency_outside_routine",
        "borderline_duration",
        "malignancy_fast_track",
        "infection_risk",
        "child",
        "inflammatory",
        "recent_imaging",
    ]


def test_return_warnings_follow_the_table_order():
    facts = make_facts(
        age=70,
        red_flags={"systemic_steroids"},
        requested="ct",
        questions={"compression"},
        method_change_allowed=False,
        trauma=True,  # keeps the recent imaging from turning this into a rereview
        prior_imaging=[ct(date(2024, 6, 1))],
    )

    rec = recommend(facts)

    assert rec.action == "return"
    assert warning_codes(rec) == ["infection_risk", "fragility_fracture", "recent_imaging"]


def test_warning_texts_are_swedish_and_borderline_names_the_bounds():
    facts = make_facts(red_flags={"night_pain", "prior_cancer"}, pain_weeks=3)

    rec = recommend(facts, Parameters(red_flag_weeks=5, red_flag_borderline_weeks=3.5))

    assert rec.indication == "not_met"
    rec = recommend(facts, Parameters(red_flag_weeks=5, red_flag_borderline_weeks=2.5))
    borderline = rec.warnings[0]
    assert borderline.code == "borderline_duration"
    assert "2,5" in borderline.text
    assert "5 veckor" in borderline.text
    for warning in rec.warnings:
        assert SWEDISH_LETTERS & set(warning.text)


# --- reasons ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "codes"),
    [
        pytest.param({}, ["not_met", "no_indication"], id="not-met"),
        pytest.param({"red_flags": {"night_pain"}}, ["I1", "method_mri", "priority"], id="i1-mri"),
        pytest.param(
            {"red_flags": {"night_pain"}, "pain_weeks": 3},
            ["I1_borderline", "method_mri", "priority"],
            id="borderline",
        ),
        pytest.param(
            {
                "red_flags": {"night_pain"},
                "yellow_flags": {"emotional"},
                "radicular": True,
                "treatment_weeks": 6,
                "improved": False,
            },
            ["I1", "I2", "I3", "method_mri", "priority"],
            id="all-criteria",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "pain_weeks": None},
            ["unknown", "missing_information"],
            id="unknown",
        ),
        pytest.param(
            {"age": 30, "requested": "xray", "pain_weeks": 2},
            ["not_met", "young_no_trauma"],
            id="young",
        ),
        pytest.param(
            {"age": 16, "pain_weeks": 5},
            ["child_under_18", "I1", "method_mri", "priority"],
            id="child",
        ),
        pytest.param(
            {"emergency_signs": {"cauda_equina"}, "pain_weeks": 1},
            ["emergency", "not_met"],
            id="emergency",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "requested": "ct", "prior_imaging": RECENT_CT},
            ["I1", "rereview_prior_imaging"],
            id="rereview",
        ),
        pytest.param(
            {
                "age": 70,
                "red_flags": {"onset_after_55"},
                "requested": "xray",
                "questions": {"degenerative"},
            },
            ["I1", "method_xray", "priority"],
            id="xray",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "mri_contraindicated": True},
            ["I1", "method_ct", "priority"],
            id="ct",
        ),
        pytest.param(
            {"red_flags": {"night_pain"}, "requested": "xray", "method_change_allowed": False},
            ["I1", "method_change_not_allowed"],
            id="method-change-not-allowed",
        ),
        pytest.param(
            {
                "red_flags": {"prior_cancer"},
                "requested": "xray",
                "questions": {"metastasis"},
                "method_change_allowed": False,
            },
            ["I1", "xray_cannot_assess_metastasis"],
            id="xray-cannot-assess-metastasis",
        ),
    ],
)
def test_reasons_list_every_rule_that_fired_in_swedish(overrides, codes):
    rec = recommend(make_facts(**overrides))

    assert reason_codes(rec) == codes
    for reason in rec.reasons:
        assert isinstance(reason, Message)
        assert reason.text.strip()
        assert reason.text != reason.code
        assert SWEDISH_LETTERS & set(reason.text)


@pytest.mark.parametrize(
    ("overrides", "code", "routine_section"),
    [
        pytest.param({"red_flags": {"night_pain"}}, "I1", "punkt 1", id="I1"),
        pytest.param({"yellow_flags": {"emotional"}}, "I2", "punkt 2", id="I2"),
        pytest.param(
            {"radicular": True, "treatment_weeks": 6, "improved": False}, "I3", "punkt 3", id="I3"
        ),
        pytest.param({"red_flags": {"night_pain"}}, "method_mri", "Val av metod", id="method"),
        pytest.param({"red_flags": {"night_pain"}}, "priority", "Priotid", id="priority"),
    ],
)
def test_reasons_cite_the_routine(overrides, code, routine_section):
    rec = recommend(make_facts(**overrides))

    texts = {r.code: r.text for r in rec.reasons}
    assert routine_section in texts[code]


def test_reason_texts_use_the_parameter_values():
    params = Parameters(red_flag_weeks=5, priority_red_weeks=2)

    rec = recommend(make_facts(red_flags={"night_pain"}), params)

    texts = {r.code: r.text for r in rec.reasons}
    assert texts["I1"].startswith("Duration ≥ 5 veckor och minst en röd flagga")
    assert "Prioritet 2 veckor" in texts["priority"]
    default = recommend(make_facts(red_flags={"night_pain"}))
    assert default.reasons[0].text == (
        "Duration ≥ 4 veckor och minst en röd flagga (Indikation för bilddiagnostik, punkt 1)."
    )


# --- parameters -------------------------------------------------------------


def test_guideline_version_is_passed_through():
    assert recommend(make_facts()).guideline_version == "1"
    assert recommend(make_facts(), Parameters(guideline_version="2025-04")).guideline_version == (
        "2025-04"
    )


def test_default_parameters_match_the_spec():
    assert (
        Parameters(
            red_flag_weeks=4,
            red_flag_borderline_weeks=3,
            yellow_flag_weeks=8,
            radicular_treatment_weeks=6,
            older_patient_age=65,
            young_patient_age=40,
            recent_imaging_months=12,
            priority_red_weeks=6,
            priority_other_weeks=8,
            guideline_version="1",
        )
        == DEFAULT_PARAMETERS
    )


@pytest.mark.parametrize(
    ("params", "overrides", "expected"),
    [
        pytest.param(
            Parameters(red_flag_weeks=6, red_flag_borderline_weeks=5),
            {"red_flags": {"night_pain"}, "pain_weeks": 4.9},
            ("not_met", "return", None),
            id="red-4.9-below-custom-borderline",
        ),
        pytest.param(
            Parameters(red_flag_weeks=6, red_flag_borderline_weeks=5),
            {"red_flags": {"night_pain"}, "pain_weeks": 5},
            ("borderline", "mri", 6),
            id="red-5-custom-borderline",
        ),
        pytest.param(
            Parameters(red_flag_weeks=6, red_flag_borderline_weeks=5),
            {"red_flags": {"night_pain"}, "pain_weeks": 6},
            ("met", "mri", 6),
            id="red-6-custom-met",
        ),
        pytest.param(
            Parameters(yellow_flag_weeks=12),
            {"yellow_flags": {"emotional"}, "pain_weeks": 11},
            ("not_met", "return", None),
            id="yellow-11-of-12",
        ),
        pytest.param(
            Parameters(yellow_flag_weeks=12),
            {"yellow_flags": {"emotional"}, "pain_weeks": 12},
            ("met", "mri", 8),
            id="yellow-12-of-12",
        ),
        pytest.param(
            Parameters(radicular_treatment_weeks=4),
            {"radicular": True, "treatment_weeks": 4, "improved": False},
            ("met", "mri", 8),
            id="radicular-4-of-4",
        ),
        pytest.param(
            Parameters(older_patient_age=70),
            {
                "age": 69,
                "red_flags": {"onset_after_55"},
                "requested": "xray",
                "questions": {"compression"},
            },
            ("met", "mri", 6),
            id="older-69-of-70",
        ),
        pytest.param(
            Parameters(older_patient_age=70),
            {
                "age": 70,
                "red_flags": {"onset_after_55"},
                "requested": "xray",
                "questions": {"compression"},
            },
            ("met", "xray", 6),
            id="older-70-of-70",
        ),
        pytest.param(
            Parameters(recent_imaging_months=6),
            {
                "red_flags": {"night_pain"},
                "requested": "xray",
                "prior_imaging": [ct(date(2024, 9, 10))],
            },
            ("met", "rereview", None),
            id="recent-6-months-to-the-day",
        ),
        pytest.param(
            Parameters(recent_imaging_months=6),
            {
                "red_flags": {"night_pain"},
                "requested": "xray",
                "prior_imaging": [ct(date(2024, 9, 9))],
            },
            ("met", "mri", 6),
            id="recent-6-months-one-day-more",
        ),
        pytest.param(
            Parameters(priority_red_weeks=2, priority_other_weeks=3),
            {"red_flags": {"night_pain"}},
            ("met", "mri", 2),
            id="priority-red-custom",
        ),
        pytest.param(
            Parameters(priority_red_weeks=2, priority_other_weeks=3),
            {"yellow_flags": {"emotional"}},
            ("met", "mri", 3),
            id="priority-other-custom",
        ),
    ],
)
def test_custom_parameters_move_the_bounds(params, overrides, expected):
    rec = recommend(make_facts(**overrides), params)

    assert (rec.indication, rec.action, rec.priority_weeks) == expected


@pytest.mark.parametrize(
    ("age", "reply_kind"),
    [
        pytest.param(29, "young_no_trauma", id="29-of-30"),
        pytest.param(30, "no_indication", id="30-of-30"),
    ],
)
def test_custom_young_patient_age_moves_the_radiation_reply(age, reply_kind):
    facts = make_facts(age=age, requested="xray", pain_weeks=2)

    rec = recommend(facts, Parameters(young_patient_age=30))

    assert rec.reply_kind == reply_kind


# --- vignettes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "case", VIGNETTES, ids=[f"{case['id']}-{case['title']}" for case in VIGNETTES]
)
def test_vignette_gets_the_expected_recommendation(case):
    expected = case["expected"]

    rec = recommend(facts_from_dict(case["facts"]))

    assert rec.indication == expected["indication"]
    assert sorted(rec.criteria) == sorted(expected["criteria"])
    assert rec.action == expected["action"]
    assert rec.priority_weeks == expected["priority_weeks"]
    assert rec.reply_kind == expected["reply_kind"]
    assert rec.suggest == expected["suggest"]
    assert warning_codes(rec) == expected["warnings"]


# --- facts_from_dict ----------------------------------------------------------


@pytest.mark.parametrize("case", VIGNETTES, ids=[case["id"] for case in VIGNETTES])
def test_facts_from_dict_accepts_the_vignettes(case):
    facts = facts_from_dict(case["facts"])

    assert isinstance(facts, Facts)
    assert facts.referral_date == date.fromisoformat(case["facts"]["referral_date"])
    assert facts.red_flags == frozenset(case["facts"]["red_flags"])
    assert len(facts.prior_imaging) == len(case["facts"]["prior_imaging"])


def test_facts_from_dict_builds_typed_facts():
    facts = facts_from_dict(valid_facts_dict())

    assert facts == make_facts(
        red_flags={"night_pain"},
        prior_imaging=[PriorImaging("ct", "buk", date(2025, 1, 8), True)],
    )


def test_facts_from_dict_fills_defaults_for_missing_optional_fields():
    facts = facts_from_dict({"referral_date": "2025-03-10", "requested": "xray"})

    assert facts == Facts(referral_date=REFERRAL, age=None, pain_weeks=None, requested="xray")
    assert facts.method_change_allowed is True
    assert facts.mri_contraindicated is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("age", 0, id="age-0"),
        pytest.param("age", 130, id="age-130"),
        pytest.param("pain_weeks", 0, id="pain-0"),
        pytest.param("pain_weeks", 0.7, id="pain-fraction"),
        pytest.param("treatment_weeks", 6.5, id="treatment-fraction"),
        pytest.param("improved", False, id="improved-false"),
    ],
)
def test_facts_from_dict_accepts_boundary_values(field, value):
    facts = facts_from_dict(valid_facts_dict(**{field: value}))

    assert getattr(facts, field) == value


def _without(name: str) -> dict:
    data = valid_facts_dict()
    del data[name]
    return data


def _imaging(**changes) -> dict:
    item = {"modality": "ct", "region": "buk", "date": "2025-01-08", "covers_lumbar_spine": True}
    item.update(changes)
    return valid_facts_dict(prior_imaging=[item])


def _imaging_without(name: str) -> dict:
    item = {"modality": "ct", "region": "buk", "date": "2025-01-08", "covers_lumbar_spine": True}
    del item[name]
    return valid_facts_dict(prior_imaging=[item])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(_without("referral_date"), "Fältet referral_date", id="date-missing"),
        pytest.param(
            valid_facts_dict(referral_date="2025-02-30"),
            "Ogiltigt datum: 2025-02-30",
            id="date-impossible",
        ),
        pytest.param(
            valid_facts_dict(referral_date="10/03/2025"),
            "Ogiltigt datum: 10/03/2025",
            id="date-not-iso",
        ),
        pytest.param(
            valid_facts_dict(referral_date="20250310"), "Ogiltigt datum: 20250310", id="date-basic"
        ),
        pytest.param(valid_facts_dict(referral_date=""), "är tomt", id="date-empty"),
        pytest.param(
            valid_facts_dict(referral_date=20250310), "ska vara ett datum som text", id="date-int"
        ),
        pytest.param(valid_facts_dict(pain_weeks=-1), "kan inte vara negativ", id="pain-negative"),
        pytest.param(valid_facts_dict(pain_weeks="4"), "ska vara ett tal", id="pain-text"),
        pytest.param(valid_facts_dict(pain_weeks=True), "ska vara ett tal", id="pain-bool"),
        pytest.param(valid_facts_dict(pain_weeks=math.nan), "ändligt tal", id="pain-nan"),
        pytest.param(valid_facts_dict(pain_weeks=math.inf), "ändligt tal", id="pain-inf"),
        pytest.param(
            valid_facts_dict(treatment_weeks=-0.5),
            "treatment_weeks (behandlingstid i veckor) kan inte vara negativ",
            id="treatment-negative",
        ),
        pytest.param(
            valid_facts_dict(treatment_weeks="sex"), "ska vara ett tal", id="treatment-text"
        ),
        pytest.param(valid_facts_dict(age=-1), "kan inte vara negativ", id="age-negative"),
        pytest.param(valid_facts_dict(age=131), "högst 130", id="age-131"),
        pytest.param(valid_facts_dict(age="45"), "ska vara ett heltal", id="age-text"),
        pytest.param(valid_facts_dict(age=45.5), "ska vara ett heltal", id="age-fraction"),
        pytest.param(valid_facts_dict(age=True), "ska vara ett heltal", id="age-bool"),
        pytest.param(
            valid_facts_dict(red_flags=["nattvärk"]),
            "Okänd kod ”nattvärk” i red_flags (röda flaggor)",
            id="red-flag-unknown",
        ),
        pytest.param(
            valid_facts_dict(yellow_flags=["night_pain"]),
            "Okänd kod ”night_pain” i yellow_flags",
            id="yellow-flag-unknown",
        ),
        pytest.param(
            valid_facts_dict(questions=["fracture"]),
            "Okänd kod ”fracture” i questions",
            id="question-unknown",
        ),
        pytest.param(
            valid_facts_dict(emergency_signs=["fever"]),
            "Okänd kod ”fever” i emergency_signs",
            id="emergency-sign-unknown",
        ),
        pytest.param(
            valid_facts_dict(requested="pet"), "Okänd kod ”pet” i requested", id="requested-unknown"
        ),
        pytest.param(valid_facts_dict(requested=["mri"]), "i requested", id="requested-not-text"),
        pytest.param(_without("requested"), "Fältet requested", id="requested-missing"),
        pytest.param(
            valid_facts_dict(red_flags="night_pain"), "ska vara en lista", id="flags-not-list"
        ),
        pytest.param(valid_facts_dict(red_flags=[1]), "koder som text", id="flag-not-text"),
        pytest.param(
            valid_facts_dict(radicular="true"), "ska vara true eller false", id="radicular-text"
        ),
        pytest.param(valid_facts_dict(trauma=1), "ska vara true eller false", id="trauma-int"),
        pytest.param(
            valid_facts_dict(method_change_allowed=None),
            "method_change_allowed (metodbyte tillåtet) ska vara true eller false",
            id="method-change-null",
        ),
        pytest.param(
            valid_facts_dict(mri_contraindicated="nej"),
            "ska vara true eller false",
            id="mri-contraindicated-text",
        ),
        pytest.param(
            valid_facts_dict(improved="nej"), "true, false eller null", id="improved-text"
        ),
        pytest.param(
            valid_facts_dict(patient_name="Tolvan"), "Okänt fält: patient_name", id="unknown-field"
        ),
        pytest.param(
            _imaging_without("date"), "prior_imaging nr 1 saknar fältet date", id="imaging-no-date"
        ),
        pytest.param(
            _imaging_without("covers_lumbar_spine"),
            "saknar fältet covers_lumbar_spine",
            id="imaging-no-covers",
        ),
        pytest.param(
            _imaging(modality="pet"),
            "Okänd kod ”pet” i prior_imaging nr 1, fältet modality",
            id="imaging-modality-unknown",
        ),
        pytest.param(_imaging(modality=["ct"]), "fältet modality", id="imaging-modality-not-text"),
        pytest.param(
            _imaging(date="2025-13-01"), "Ogiltigt datum: 2025-13-01", id="imaging-date-bad"
        ),
        pytest.param(
            _imaging(covers_lumbar_spine="ja"), "covers_lumbar_spine", id="imaging-covers-text"
        ),
        pytest.param(_imaging(region=None), "region ska vara text", id="imaging-region-null"),
        pytest.param(_imaging(contrast=True), "Okänt fält ”contrast”", id="imaging-unknown-key"),
        pytest.param(
            valid_facts_dict(prior_imaging={"modality": "ct"}),
            "ska vara en lista",
            id="imaging-not-list",
        ),
        pytest.param(
            valid_facts_dict(prior_imaging=["DT buk"]),
            "ska vara ett objekt",
            id="imaging-item-text",
        ),
        pytest.param([valid_facts_dict()], "JSON-objekt", id="not-an-object"),
    ],
)
def test_facts_from_dict_rejects_bad_input_in_swedish(data, message):
    with pytest.raises(FactsError) as excinfo:
        facts_from_dict(data)

    assert message in str(excinfo.value)


def test_facts_from_dict_reports_every_problem_at_once():
    data = valid_facts_dict(age=-3, red_flags=["okänd"], trauma="ja")

    with pytest.raises(FactsError) as excinfo:
        facts_from_dict(data)

    assert len(excinfo.value.errors) == 3
    assert all(error in str(excinfo.value) for error in excinfo.value.errors)


def test_facts_error_is_a_value_error():
    assert issubclass(FactsError, ValueError)


# --- output -------------------------------------------------------------------


def test_recommendation_to_dict_has_every_field_and_is_json_ready():
    facts = facts_from_dict(next(c for c in VIGNETTES if c["id"] == "V17")["facts"])

    data = recommendation_to_dict(recommend(facts))

    assert json.loads(json.dumps(data)) == data
    assert data == {
        "indication": "met",
        "criteria": ["I1"],
        "action": "rereview",
        "priority_weeks": None,
        "reply_kind": "rereview_prior_imaging",
        "suggest": "mri",
        "reasons": [{"code": r.code, "text": r.text} for r in recommend(facts).reasons],
        "warnings": [],
        "guideline_version": "1",
    }
    assert [r["code"] for r in data["reasons"]] == ["I1", "rereview_prior_imaging"]


def test_catalogues_hold_the_spec_codes_in_order():
    assert list(RED_FLAGS)[0] == "child_under_18"
    assert len(RED_FLAGS) == 11
    assert list(YELLOW_FLAGS) == ["emotional", "cognitive", "behavioural"]
    assert list(EMERGENCY_SIGNS) == [
        "cauda_equina",
        "progressive_neuro_deficit",
        "suspected_infection",
        "major_trauma",
    ]
    assert list(ACTIONS) == ["escalate", "mri", "ct", "xray", "rereview", "return"]
    assert list(INDICATIONS) == ["met", "borderline", "not_met", "unknown"]
    assert list(MODALITIES) == ["ct", "mri", "xray", "scintigraphy"]
    assert list(QUESTIONS) == ["compression", "degenerative", "metastasis", "other"]
    assert set(SUGGESTIONS) == {"mri", "mri_or_scintigraphy"}
    assert len(REPLY_KINDS) == 6
    assert list(WARNINGS) == [
        "emergency_outside_routine",
        "borderline_duration",
        "malignancy_fast_track",
        "infection_risk",
        "fragility_fracture",
        "local_rule_yellow",
        "child",
        "inflammatory",
        "recent_imaging",
        "prior_imaging_predates_onset",
        "mri_contraindicated",
    ]


# --- purity -------------------------------------------------------------------


def test_rules_module_imports_no_django():
    code = (
        "import sys; "
        f"sys.path.insert(0, {str(ROOT)!r}); "
        "import triage.rules; "
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr


# --- properties ---------------------------------------------------------------

weeks = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=60),
    st.floats(min_value=0, max_value=60, allow_nan=False),
)
days = st.dates(min_value=date(2023, 1, 1), max_value=date(2025, 12, 31))


def codes(catalogue: dict[str, str]):
    return st.frozensets(st.sampled_from(list(catalogue)))


prior_imaging = st.lists(
    st.builds(
        PriorImaging,
        modality=st.sampled_from(list(MODALITIES)),
        region=st.sampled_from(["ländrygg", "buk", "aorta", "thorax"]),
        date=days,
        covers_lumbar_spine=st.booleans(),
    ),
    max_size=3,
).map(tuple)


def facts_strategy(emergency_signs=None):
    return st.builds(
        Facts,
        referral_date=days,
        age=st.one_of(st.none(), st.integers(min_value=0, max_value=110)),
        pain_weeks=weeks,
        red_flags=codes(RED_FLAGS),
        yellow_flags=codes(YELLOW_FLAGS),
        radicular=st.booleans(),
        treatment_weeks=weeks,
        improved=st.one_of(st.none(), st.booleans()),
        requested=st.sampled_from(list(REQUESTED_EXAMINATIONS)),
        questions=codes(QUESTIONS),
        trauma=st.booleans(),
        method_change_allowed=st.booleans(),
        prior_imaging=prior_imaging,
        emergency_signs=emergency_signs if emergency_signs is not None else codes(EMERGENCY_SIGNS),
        mri_contraindicated=st.booleans(),
    )


@settings(max_examples=300, deadline=None)
@given(
    facts_strategy(
        emergency_signs=st.frozensets(st.sampled_from(list(EMERGENCY_SIGNS)), min_size=1)
    )
)
def test_property_any_emergency_sign_escalates_with_priority_zero(facts):
    rec = recommend(facts)

    assert rec.action == "escalate"
    assert rec.priority_weeks == 0
    assert warning_codes(rec)[0] == "emergency_outside_routine"


@settings(max_examples=500, deadline=None)
@given(facts_strategy())
def test_property_priority_only_for_examinations_and_escalation(facts):
    rec = recommend(facts)

    if rec.action in ("mri", "ct", "xray", "escalate"):
        assert rec.priority_weeks is not None
    else:
        assert rec.priority_weeks is None
    assert (rec.action == "escalate") is bool(facts.emergency_signs)
    if rec.action in ("mri", "ct", "xray"):
        assert rec.priority_weeks in (6, 8)
        assert rec.indication in ("met", "borderline")
    assert rec.action in ACTIONS
    assert rec.indication in INDICATIONS
    assert rec.reply_kind is None or rec.reply_kind in REPLY_KINDS
    assert rec.suggest is None or rec.suggest in SUGGESTIONS
    assert set(rec.criteria) <= {"I1", "I2", "I3"}
    assert rec.reasons
    order = [list(WARNINGS).index(code) for code in warning_codes(rec)]
    assert order == sorted(set(order))
