"""Pure recommendation engine for lumbar-spine referrals: facts in, recommendation out."""

from __future__ import annotations

import datetime as dt
import math
from calendar import monthrange
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# ---------------------------------------------------------------------------
# Code catalogues (code -> Swedish label). Dicts keep insertion order, which is
# the order forms and reports show them in.
# ---------------------------------------------------------------------------

RED_FLAGS: dict[str, str] = {
    "child_under_18": "Ryggsmärta hos barn under 18 år",
    "onset_after_55": "Avsevärda smärtor eller smärtdebut efter 55 år",
    "night_pain": "Nattliga ryggsmärtor som är konstanta eller progredierar",
    "prior_cancer": "Tidigare cancersjukdom",
    "inflammatory": "Misstanke om inflammatorisk genes",
    "systemic_steroids": "Systemisk steroidbehandling",
    "drug_abuse": "Drogmissbruk",
    "weight_loss": "Viktförlust, nedsatt allmäntillstånd",
    "severe_restriction": "Bestående svår rörelseinskränkning",
    "pain_on_minimal_movement": "Intensifierad smärta vid minsta rörelse",
    "structural_deformity": "Strukturell deformitet",
}

YELLOW_FLAGS: dict[str, str] = {
    "emotional": "Emotionella faktorer",
    "cognitive": "Kognitiva faktorer",
    "behavioural": "Beteendefaktorer",
}

EMERGENCY_SIGNS: dict[str, str] = {
    "cauda_equina": (
        "Misstänkt cauda equina-syndrom (ridbyxeanestesi, nytillkommen blås- eller tarmpåverkan)"
    ),
    "progressive_neuro_deficit": "Progredierande neurologiskt bortfall",
    "suspected_infection": "Misstänkt infektion (feber med ryggsmärta, känd bakteriemi)",
    "major_trauma": "Misstänkt fraktur efter betydande trauma",
}

QUESTIONS: dict[str, str] = {
    "compression": "Kotkompression",
    "degenerative": "Degenerativa förändringar",
    "metastasis": "Metastas",
    "other": "Annan frågeställning",
}

REQUESTED_EXAMINATIONS: dict[str, str] = {
    "xray": "Slätröntgen",
    "mri": "MR",
    "ct": "DT",
    "other": "Annan",
}

MODALITIES: dict[str, str] = {
    "ct": "DT",
    "mri": "MR",
    "xray": "Slätröntgen",
    "scintigraphy": "Skelettscintigrafi",
}

ACTIONS: dict[str, str] = {
    "escalate": "Akut – kontakta remittenten",
    "mri": "MR",
    "ct": "DT",
    "xray": "Slätröntgen",
    "rereview": "Eftergranskning",
    "return": "Återsänd",
}

INDICATIONS: dict[str, str] = {
    "met": "Indikation föreligger",
    "borderline": "Gränsfall – radiologen avgör",
    "not_met": "Indikation saknas",
    "unknown": "Kan inte bedömas – uppgift saknas",
}

REPLY_KINDS: dict[str, str] = {
    "rereview_prior_imaging": "Eftergranskning av tidigare avbildning",
    "no_indication": "Indikation saknas",
    "young_no_trauma": "Ung patient utan trauma",
    "xray_cannot_assess_metastasis": "Slätröntgen kan inte värdera metastaser",
    "method_change_not_allowed": "Metodbyte ej tillåtet",
    "missing_information": "Uppgifter saknas",
}

SUGGESTIONS: dict[str, str] = {
    "mri": "MR",
    "mri_or_scintigraphy": "MR alternativt skelettscintigrafi",
}

# Spec section 4, in table order: warnings are always emitted in this order.
WARNINGS: dict[str, str] = {
    "emergency_outside_routine": "Akuttecken utanför rutinen",
    "borderline_duration": "Gränsfall för duration",
    "malignancy_fast_track": "Misstänkt malignitet – snabbspår",
    "infection_risk": "Infektionsrisk",
    "fragility_fracture": "Misstänkt osteoporotisk fraktur",
    "local_rule_yellow": "Lokal regel: enbart gula flaggor",
    "child": "Barn",
    "inflammatory": "Misstänkt inflammatorisk genes",
    "recent_imaging": "Aktuell avbildning finns",
    "prior_imaging_predates_onset": "Avbildningen är äldre än smärtdebuten",
    "mri_contraindicated": "MR kontraindicerad",
}

# The routine's own bound ("barn under 18 år"), not a guideline parameter.
CHILD_AGE = 18


# ---------------------------------------------------------------------------
# Value types
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriorImaging:
    modality: str
    region: str
    date: dt.date
    covers_lumbar_spine: bool


# Keyword-only so the fields can follow the spec's order while some have defaults.
@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    referral_date: dt.date
    age: int | None
    pain_weeks: float | None
    red_flags: frozenset[str] = frozenset()
    yellow_flags: frozenset[str] = frozenset()
    radicular: bool = False
    treatment_weeks: float | None = None
    improved: bool | None = None
    requested: str
    questions: frozenset[str] = frozenset()
    trauma: bool = False
    method_change_allowed: bool = True
    prior_imaging: tuple[PriorImaging, ...] = ()
    emergency_signs: frozenset[str] = frozenset()
    mri_contraindicated: bool = False


@dataclass(frozen=True, slots=True)
class Parameters:
    red_flag_weeks: float = 4
    red_flag_borderline_weeks: float = 3
    yellow_flag_weeks: float = 8
    radicular_treatment_weeks: float = 6
    older_patient_age: int = 65
    young_patient_age: int = 40
    recent_imaging_months: int = 12
    priority_red_weeks: int = 6
    priority_other_weeks: int = 8
    guideline_version: str = "1"


DEFAULT_PARAMETERS = Parameters()


@dataclass(frozen=True, slots=True)
class Message:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    indication: str
    criteria: tuple[str, ...]
    action: str
    priority_weeks: int | None
    reply_kind: str | None
    suggest: str | None
    reasons: tuple[Message, ...]
    warnings: tuple[Message, ...]
    guideline_version: str


# ---------------------------------------------------------------------------
# Texts. Most depend only on the parameters, so they are built once per
# guideline version instead of on every evaluation.
# ---------------------------------------------------------------------------


def _num(value: float) -> str:
    """Format a number the Swedish way: 4 -> "4", 3.5 -> "3,5"."""
    if float(value).is_integer():
        return str(int(value))
    return str(value).replace(".", ",")


@lru_cache(maxsize=32)
def _texts(params: Parameters) -> dict[str, Message]:
    red = _num(params.red_flag_weeks)
    border = _num(params.red_flag_borderline_weeks)
    yellow = _num(params.yellow_flag_weeks)
    treatment = _num(params.radicular_treatment_weeks)
    older = params.older_patient_age
    young = params.young_patient_age
    texts = {
        # Reasons, in the order they can fire.
        "child_under_18": (
            f"Ålder under {CHILD_AGE} år: röd flagga ”{RED_FLAGS['child_under_18']}” "
            "(Röda flaggor)."
        ),
        "I1": (
            f"Duration ≥ {red} veckor och minst en röd flagga "
            "(Indikation för bilddiagnostik, punkt 1)."
        ),
        "I1_borderline": (
            f"Duration {border} till under {red} veckor och minst en röd flagga: gränsfall, "
            "radiologen avgör (Indikation för bilddiagnostik, punkt 1, ”mer än 3–4 veckor”)."
        ),
        "I2": (
            f"Duration ≥ {yellow} veckor och gula flaggor (Indikation för bilddiagnostik, punkt 2)."
        ),
        "I3": (
            f"Radikulär smärta som inte förbättrats efter ≥ {treatment} veckors behandling "
            "(Indikation för bilddiagnostik, punkt 3)."
        ),
        "not_met": (
            "Inget av kriterierna för bilddiagnostik vid ländryggsmärta är uppfyllt "
            "(Indikation för bilddiagnostik, punkt 1–3)."
        ),
        "unknown": (
            "Smärtans duration är inte angiven och inget annat kriterium avgör "
            "(Indikation för bilddiagnostik)."
        ),
        "missing_information": (
            "Indikationen kan inte bedömas utan uppgift om smärtans duration: "
            "remissen återsänds för komplettering."
        ),
        "no_indication": (
            "Indikation för bilddiagnostik saknas: remissen återsänds utan åtgärd "
            "(Exempel på svarstext)."
        ),
        "young_no_trauma": (
            f"Slätröntgen hos patient under {young} år utan trauma: strålningen är inte "
            "motiverad, remissen återsänds (Exempel på svarstext)."
        ),
        "method_xray": (
            f"Slätröntgen godtas: äldre patient (≥ {older} år), frågeställning kotkompression "
            "eller degenerativa förändringar och inga tidigare undersökningar (Val av metod)."
        ),
        "method_mri": "MR är förstahandsmetod vid indikation (Val av metod).",
        "method_ct": (
            "MR är kontraindicerad: DT ersätter MR (Val av metod; tillägg utanför rutinen)."
        ),
        "xray_cannot_assess_metastasis": (
            "Slätröntgen kan inte värdera metastaser och metodbyte är inte tillåtet: remissen "
            "återsänds, MR alternativt skelettscintigrafi föreslås (Exempel på svarstext)."
        ),
        "method_change_not_allowed": (
            "Begärd undersökning är inte förstahandsmetod och metodbyte är inte tillåtet: "
            "remissen återsänds, MR förespråkas (Exempel på svarstext)."
        ),
        "priority_red": (
            f"Prioritet {params.priority_red_weeks} veckor: indikation via röd flagga (Priotid)."
        ),
        "priority_other": (
            f"Prioritet {params.priority_other_weeks} veckor: indikation via gula flaggor "
            "eller radikulär smärta (Priotid)."
        ),
        # Warnings (spec section 4).
        "emergency_outside_routine": (
            "Akuttecken ligger utanför rutinen: vid misstänkt cauda equina MR inom timmar, "
            "vid infektion eller ryggmärgskompression inom 24 timmar."
        ),
        "borderline_duration": (
            f"Duration {border} till under {red} veckor med röd flagga: rutinens "
            "”mer än 3–4 veckor” lämnar beslutet åt radiologen."
        ),
        "malignancy_fast_track": (
            "Ryggsmärta efter cancer är metastas tills motsatsen är visad: MR av hela ryggen "
            "inom 1 vecka, inom 24 timmar vid svaghet."
        ),
        "infection_risk": (
            "Drogmissbruk eller systemisk steroidbehandling: fråga efter feber och CRP; "
            "vid feber, eskalera."
        ),
        "fragility_fracture": (
            "Osteoporotisk fraktur efter lågenergivåld avbildas direkt med slätröntgen: "
            "överväg detta innan remissen återsänds."
        ),
        "local_rule_yellow": (
            "Bilddiagnostik enbart för psykosociala faktorer stöds inte av NICE, danska eller "
            "norska riktlinjer: överväg stratifierad vård."
        ),
        "child": (
            "Hos barn är åldern ensam ingen röd flagga: kliniska röda flaggor avgör, "
            "slätröntgen i första hand."
        ),
        "inflammatory": (
            "Misstänkt inflammatorisk genes: överväg MR av sakroiliakalederna och remiss "
            "till reumatolog."
        ),
        "recent_imaging": (
            "Det finns aktuell avbildning av ländryggen: granska den innan undersökningen bokas."
        ),
        "prior_imaging_predates_onset": (
            "Den aktuella avbildningen är äldre än smärtdebuten: en äldre undersökning kan "
            "inte utesluta en ny fraktur."
        ),
        "mri_contraindicated": "MR är kontraindicerad: DT ersätter MR.",
    }
    messages = {code: Message(code, text) for code, text in texts.items()}
    # Both priority reasons share the code "priority".
    messages["priority_red"] = Message("priority", texts["priority_red"])
    messages["priority_other"] = Message("priority", texts["priority_other"])
    return messages


# ---------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------

# Criteria tuples indexed by I1*4 + I2*2 + I3, so evaluation allocates none.
_CRITERIA: tuple[tuple[str, ...], ...] = tuple(
    tuple(code for code, bit in (("I1", 4), ("I2", 2), ("I3", 1)) if index & bit)
    for index in range(8)
)
_CHILD_FLAG = frozenset({"child_under_18"})


def recommend(facts: Facts, params: Parameters = DEFAULT_PARAMETERS) -> Recommendation:
    """Apply the routine (spec section 3, first match wins) and add the section 4 warnings."""
    texts = _texts(params)
    reasons: list[Message] = []

    # 1. Emergency signs are checked first: no referral with one may wait for a slot.
    signs = facts.emergency_signs
    if signs:
        reasons.append(_emergency_reason(signs))

    red_flags = facts.red_flags
    age = facts.age
    # The referrer need not tick "child": the age already says it.
    if age is not None and age < CHILD_AGE:
        red_flags = red_flags | _CHILD_FLAG
        reasons.append(texts["child_under_18"])

    indication, criteria, i1_borderline = _indication(facts, red_flags, params, texts, reasons)
    recent = _recent_imaging(facts, params)

    reply_kind: str | None = None
    suggest: str | None = None
    priority: int | None = None
    # Steps 3-5 of the procedure; the first that matches decides.
    if signs:
        action = "escalate"
        priority = 0
    elif (
        recent
        and not facts.trauma
        and (facts.requested in ("xray", "ct") or indication in ("not_met", "unknown"))
    ):
        action, reply_kind = "rereview", "rereview_prior_imaging"
        if indication in ("met", "borderline"):
            suggest = "mri_or_scintigraphy" if "metastasis" in facts.questions else "mri"
        reasons.append(_rereview_reason(recent, params))
    elif indication == "unknown":
        # Asking for the duration beats refusing on data the referrer did not give.
        action, reply_kind = "return", "missing_information"
        reasons.append(texts[reply_kind])
    elif indication == "not_met":
        action = "return"
        if (
            facts.requested == "xray"
            and not facts.trauma
            and age is not None
            and age < params.young_patient_age
        ):
            reply_kind = "young_no_trauma"
        else:
            reply_kind = "no_indication"
        reasons.append(texts[reply_kind])
    else:
        action, reply_kind, suggest = _method(facts, params)
        reasons.append(texts[reply_kind or f"method_{action}"])
        # 6. Priority: only an examination to book has one.
        if reply_kind is None:
            if "I1" in criteria or i1_borderline:
                priority = params.priority_red_weeks
                reasons.append(texts["priority_red"])
            else:
                priority = params.priority_other_weeks
                reasons.append(texts["priority_other"])

    warnings = _warnings(facts, red_flags, criteria, i1_borderline, action, recent, params, texts)
    return Recommendation(
        indication=indication,
        criteria=criteria,
        action=action,
        priority_weeks=priority,
        reply_kind=reply_kind,
        suggest=suggest,
        reasons=tuple(reasons),
        warnings=warnings,
        guideline_version=params.guideline_version,
    )


def _indication(
    facts: Facts,
    red_flags: frozenset[str],
    params: Parameters,
    texts: dict[str, Message],
    reasons: list[Message],
) -> tuple[str, tuple[str, ...], bool]:
    """Return (indication, criteria, I1 borderline) and append the reasons that fired."""
    weeks = facts.pain_weeks
    i1 = i1_borderline = i2 = False
    if weeks is not None:
        if red_flags:
            if weeks >= params.red_flag_weeks:
                i1 = True
            elif weeks >= params.red_flag_borderline_weeks:
                i1_borderline = True
        i2 = bool(facts.yellow_flags) and weeks >= params.yellow_flag_weeks
    treatment = facts.treatment_weeks
    # "Not improved" needs an explicit no: an unanswered question does not meet I3.
    i3 = (
        facts.radicular
        and facts.improved is False
        and treatment is not None
        and treatment >= params.radicular_treatment_weeks
    )

    if i1:
        reasons.append(texts["I1"])
    elif i1_borderline:
        reasons.append(texts["I1_borderline"])
    if i2:
        reasons.append(texts["I2"])
    if i3:
        reasons.append(texts["I3"])

    criteria = _CRITERIA[i1 * 4 + i2 * 2 + i3]
    if criteria:
        indication = "met"
    elif i1_borderline:
        indication = "borderline"
    elif weeks is None:
        indication = "unknown"
        reasons.append(texts["unknown"])
    else:
        indication = "not_met"
        reasons.append(texts["not_met"])
    return indication, criteria, i1_borderline


def _months_before(day: dt.date, months: int) -> dt.date:
    """The calendar date `months` before `day`, clamped to the month's end (31/3 - 1 = 28/2)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    if year < dt.MINYEAR:
        return dt.date.min
    month += 1
    return dt.date(year, month, min(day.day, monthrange(year, month)[1]))


def _recent_imaging(facts: Facts, params: Parameters) -> tuple[PriorImaging, ...]:
    """Prior imaging of the lumbar spine dated within the recent window, newest first.

    The window is [referral_date - recent_imaging_months, referral_date], both ends
    inclusive. Imaging dated after the referral date is not counted: the referrer
    could not have known it, and a date in the future is more likely a typing error
    than an examination to re-review.
    """
    prior = facts.prior_imaging
    if not prior:
        return ()
    referral_date = facts.referral_date
    cutoff = _months_before(referral_date, params.recent_imaging_months)
    recent = [p for p in prior if p.covers_lumbar_spine and cutoff <= p.date <= referral_date]
    if len(recent) > 1:
        recent.sort(key=lambda p: p.date, reverse=True)
    return tuple(recent)


def _method(facts: Facts, params: Parameters) -> tuple[str, str | None, str | None]:
    """Choose the examination when imaging is indicated: (action, reply_kind, suggest)."""
    requested = facts.requested
    questions = facts.questions
    age = facts.age
    if (
        requested == "xray"
        and age is not None
        and age >= params.older_patient_age
        and ("compression" in questions or "degenerative" in questions)
        and "metastasis" not in questions
        # "Inga tidigare undersökningar": any earlier lumbar imaging, however old.
        and not any(p.covers_lumbar_spine for p in facts.prior_imaging)
    ):
        return "xray", None, None
    allowed = facts.method_change_allowed
    if not facts.mri_contraindicated:
        if requested == "mri" or allowed:
            return "mri", None, None
    elif requested in ("mri", "ct") or allowed:
        return "ct", None, None
    if requested == "xray" and "metastasis" in questions:
        return "return", "xray_cannot_assess_metastasis", "mri_or_scintigraphy"
    return "return", "method_change_not_allowed", "mri"


def _emergency_reason(signs: frozenset[str]) -> Message:
    labels = [label for code, label in EMERGENCY_SIGNS.items() if code in signs]
    labels.extend(sorted(code for code in signs if code not in EMERGENCY_SIGNS))
    return Message(
        "emergency",
        f"Akuttecken: {'; '.join(labels)}. Eskalera – kontakta remittenten, prioritet 0 "
        "(säkerhetsregel utanför rutinen).",
    )


def _rereview_reason(recent: tuple[PriorImaging, ...], params: Parameters) -> Message:
    newest = recent[0]
    modality = MODALITIES.get(newest.modality, newest.modality)
    return Message(
        "rereview_prior_imaging",
        f"Aktuell avbildning av ländryggen finns ({modality} {newest.region} "
        f"{newest.date.isoformat()}, inom {params.recent_imaging_months} månader före "
        "remissdatum): remissen görs om till eftergranskning (Val av metod).",
    )


def _warnings(
    facts: Facts,
    red_flags: frozenset[str],
    criteria: tuple[str, ...],
    i1_borderline: bool,
    action: str,
    recent: tuple[PriorImaging, ...],
    params: Parameters,
    texts: dict[str, Message],
) -> tuple[Message, ...]:
    """Safety warnings of spec section 4, each at most once, in table order."""
    warnings: list[Message] = []
    age = facts.age
    questions = facts.questions
    if facts.emergency_signs:
        warnings.append(texts["emergency_outside_routine"])
    if i1_borderline:
        warnings.append(texts["borderline_duration"])
    if "prior_cancer" in red_flags or "metastasis" in questions:
        warnings.append(texts["malignancy_fast_track"])
    steroids = "systemic_steroids" in red_flags
    if steroids or "drug_abuse" in red_flags:
        warnings.append(texts["infection_risk"])
    if (
        action == "return"
        and "compression" in questions
        and (steroids or (age is not None and age >= params.older_patient_age))
    ):
        warnings.append(texts["fragility_fracture"])
    if criteria == ("I2",):
        warnings.append(texts["local_rule_yellow"])
    if age is not None and age < CHILD_AGE:
        warnings.append(texts["child"])
    if "inflammatory" in red_flags:
        warnings.append(texts["inflammatory"])
    if recent and action != "rereview":
        warnings.append(texts["recent_imaging"])
    # Without a duration the onset is unknown, so the warning cannot be decided.
    # The newest recent imaging is the one re-reviewed; if it predates the onset, all do.
    if (
        action == "rereview"
        and facts.pain_weeks is not None
        and (facts.referral_date - recent[0].date).days > facts.pain_weeks * 7
    ):
        warnings.append(texts["prior_imaging_predates_onset"])
    if action == "ct":
        warnings.append(texts["mri_contraindicated"])
    return tuple(warnings)


# ---------------------------------------------------------------------------
# Untrusted input (JSON shape of spec section 5) and output
# ---------------------------------------------------------------------------


class FactsError(ValueError):
    """Invalid facts; the message is Swedish and names every problem found."""

    def __init__(self, errors: list[str] | str) -> None:
        self.errors: tuple[str, ...] = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__(" ".join(self.errors))


# Swedish descriptions used in error messages, in spec order; also the allowed fields.
_FIELDS: dict[str, str] = {
    "referral_date": "remissdatum",
    "age": "ålder",
    "pain_weeks": "smärtans duration i veckor",
    "red_flags": "röda flaggor",
    "yellow_flags": "gula flaggor",
    "radicular": "radikulär smärta",
    "treatment_weeks": "behandlingstid i veckor",
    "improved": "förbättrad",
    "requested": "begärd undersökning",
    "questions": "frågeställning",
    "trauma": "trauma",
    "method_change_allowed": "metodbyte tillåtet",
    "prior_imaging": "tidigare undersökningar",
    "emergency_signs": "akuttecken",
    "mri_contraindicated": "MR kontraindicerad",
}
_CODE_SETS: dict[str, dict[str, str]] = {
    "red_flags": RED_FLAGS,
    "yellow_flags": YELLOW_FLAGS,
    "questions": QUESTIONS,
    "emergency_signs": EMERGENCY_SIGNS,
}
_BOOLEANS: dict[str, bool] = {
    "radicular": False,
    "trauma": False,
    "method_change_allowed": True,
    "mri_contraindicated": False,
}
_IMAGING_FIELDS: dict[str, str] = {
    "modality": "modalitet",
    "region": "region",
    "date": "datum",
    "covers_lumbar_spine": "täcker ländryggen",
}
MAX_AGE = 130


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, in Swedish, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "ett sanningsvärde"
    if isinstance(value, int | float):
        return "ett tal"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "en lista"
    if isinstance(value, dict):
        return "ett objekt"
    return type(value).__name__


def _field(name: str, description: str) -> str:
    return f"{name} ({description})"


def _parse_date(value: Any, where: str, errors: list[str]) -> dt.date | None:
    if not isinstance(value, str):
        errors.append(
            f"{where} ska vara ett datum som text (ÅÅÅÅ-MM-DD), inte {_json_type(value)}."
        )
        return None
    # fromisoformat also takes "20250310" and week dates; the API promises ÅÅÅÅ-MM-DD only.
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    if not value.strip():
        errors.append(f"{where} är tomt; ange ett datum ÅÅÅÅ-MM-DD.")
    else:
        errors.append(f"Ogiltigt datum: {value} i {where}; ange ÅÅÅÅ-MM-DD.")
    return None


def _parse_weeks(data: dict, name: str, errors: list[str]) -> float | None:
    value = data.get(name)
    where = _field(name, _FIELDS[name])
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(f"{where} ska vara ett tal eller null, inte {_json_type(value)}.")
    elif not math.isfinite(value):
        errors.append(f"{where} ska vara ett ändligt tal, inte {value}.")
    elif value < 0:
        errors.append(f"{where} kan inte vara negativ: {value}.")
    else:
        return value
    return None


def _parse_age(data: dict, errors: list[str]) -> int | None:
    value = data.get("age")
    where = _field("age", _FIELDS["age"])
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(
            f"{where} ska vara ett heltal (hela år) eller null, inte {_json_type(value)}."
        )
    elif value < 0:
        errors.append(f"{where} kan inte vara negativ: {value}.")
    elif value > MAX_AGE:
        errors.append(f"{where} är orimlig: {value} (högst {MAX_AGE} år).")
    else:
        return value
    return None


def _parse_codes(data: dict, name: str, errors: list[str]) -> frozenset[str]:
    value = data.get(name, [])
    where = _field(name, _FIELDS[name])
    catalogue = _CODE_SETS[name]
    if not isinstance(value, list):
        errors.append(f"{where} ska vara en lista med koder, inte {_json_type(value)}.")
        return frozenset()
    codes = []
    for item in value:
        if not isinstance(item, str):
            errors.append(f"{where} får bara innehålla koder som text, inte {_json_type(item)}.")
        elif item not in catalogue:
            errors.append(f"Okänd kod ”{item}” i {where}. Giltiga koder: {', '.join(catalogue)}.")
        else:
            codes.append(item)
    return frozenset(codes)


def _parse_bool(data: dict, name: str, default: bool | None, errors: list[str]) -> bool | None:
    value = data.get(name, default)
    if isinstance(value, bool) or (value is None and name == "improved"):
        return value
    allowed = "true, false eller null" if name == "improved" else "true eller false"
    where = _field(name, _FIELDS[name])
    errors.append(f"{where} ska vara {allowed}, inte {_json_type(value)}.")
    return default


def _parse_prior_imaging(data: dict, errors: list[str]) -> tuple[PriorImaging, ...]:
    value = data.get("prior_imaging", [])
    if not isinstance(value, list):
        where = _field("prior_imaging", _FIELDS["prior_imaging"])
        errors.append(f"{where} ska vara en lista, inte {_json_type(value)}.")
        return ()
    items = []
    for number, item in enumerate(value, start=1):
        where = f"prior_imaging nr {number}"
        if not isinstance(item, dict):
            errors.append(f"{where} ska vara ett objekt, inte {_json_type(item)}.")
            continue
        count = len(errors)
        for key in item:
            if key not in _IMAGING_FIELDS:
                errors.append(
                    f"Okänt fält ”{key}” i {where}. Tillåtna fält: {', '.join(_IMAGING_FIELDS)}."
                )
        missing = [key for key in _IMAGING_FIELDS if key not in item]
        for key in missing:
            errors.append(f"{where} saknar fältet {key} ({_IMAGING_FIELDS[key]}).")
        if missing:
            continue
        modality, region = item["modality"], item["region"]
        if not isinstance(modality, str) or modality not in MODALITIES:
            errors.append(
                f"Okänd kod ”{modality}” i {where}, fältet modality (modalitet). "
                f"Giltiga koder: {', '.join(MODALITIES)}."
            )
        if not isinstance(region, str):
            errors.append(f"{where}: region ska vara text, inte {_json_type(region)}.")
        date = _parse_date(item["date"], f"fältet date i {where}", errors)
        covers = item["covers_lumbar_spine"]
        if not isinstance(covers, bool):
            errors.append(
                f"{where}: covers_lumbar_spine ska vara true eller false, "
                f"inte {_json_type(covers)}."
            )
        if len(errors) == count:
            items.append(PriorImaging(modality, region, date, covers))
    return tuple(items)


def facts_from_dict(data: dict) -> Facts:
    """Validate one facts object in the JSON shape of spec section 5 and build Facts.

    Missing optional fields take the Facts defaults; missing age or pain_weeks mean
    "not stated" (null). referral_date and requested are required. Raises FactsError
    with a Swedish message listing every problem found.
    """
    if not isinstance(data, dict):
        raise FactsError(f"Uppgifterna ska vara ett JSON-objekt, inte {_json_type(data)}.")
    errors: list[str] = []
    for key in data:
        if key not in _FIELDS:
            errors.append(f"Okänt fält: {key}. Tillåtna fält: {', '.join(_FIELDS)}.")

    referral_date = None
    if "referral_date" not in data:
        errors.append("Fältet referral_date (remissdatum, ÅÅÅÅ-MM-DD) saknas.")
    else:
        where = _field("referral_date", _FIELDS["referral_date"])
        referral_date = _parse_date(data["referral_date"], where, errors)

    requested = data.get("requested")
    if "requested" not in data:
        errors.append(
            "Fältet requested (begärd undersökning) saknas. "
            f"Giltiga koder: {', '.join(REQUESTED_EXAMINATIONS)}."
        )
    elif not isinstance(requested, str) or requested not in REQUESTED_EXAMINATIONS:
        errors.append(
            f"Okänd kod ”{requested}” i requested (begärd undersökning). "
            f"Giltiga koder: {', '.join(REQUESTED_EXAMINATIONS)}."
        )

    values: dict[str, Any] = {
        "age": _parse_age(data, errors),
        "pain_weeks": _parse_weeks(data, "pain_weeks", errors),
        "treatment_weeks": _parse_weeks(data, "treatment_weeks", errors),
        "improved": _parse_bool(data, "improved", None, errors),
        "prior_imaging": _parse_prior_imaging(data, errors),
    }
    for name in _CODE_SETS:
        values[name] = _parse_codes(data, name, errors)
    for name, default in _BOOLEANS.items():
        values[name] = _parse_bool(data, name, default, errors)

    if errors:
        raise FactsError(errors)
    return Facts(referral_date=referral_date, requested=requested, **values)


def recommendation_to_dict(rec: Recommendation) -> dict[str, Any]:
    """Every field of the spec's Recommendation as JSON-ready values."""
    return {
        "indication": rec.indication,
        "criteria": list(rec.criteria),
        "action": rec.action,
        "priority_weeks": rec.priority_weeks,
        "reply_kind": rec.reply_kind,
        "suggest": rec.suggest,
        "reasons": [{"code": m.code, "text": m.text} for m in rec.reasons],
        "warnings": [{"code": m.code, "text": m.text} for m in rec.warnings],
        "guideline_version": rec.guideline_version,
    }
