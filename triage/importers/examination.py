"""What a referral asks for, read from codes and free text the same way for every format.

Plain Python without Django, so the wording rules are tested without a database.
"""

from __future__ import annotations

import re
import unicodedata

# The Referral.Examination values.
MRI, CT, XRAY, OTHER = "mri", "ct", "xray", "other"

# DICOM modality codes are unambiguous, so a coding in that system decides by itself.
DICOM_MODALITY_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
_DICOM_MODALITIES = {"MR": MRI, "CT": CT, "CR": XRAY, "DX": XRAY, "RG": XRAY}

# Words (after lower-casing and splitting on anything that is not a letter or digit) that
# name a modality. LOINC long common names start with the modality ("MR Lumbar spine",
# "XR Lumbar spine 2 Views", "CT Lumbar spine"), SNOMED CT names spell it out, and Swedish
# referrals use MR, DT, "slätröntgen", "rtg". We read the words rather than keep a table of
# numeric LOINC/SNOMED codes: a wrong number in such a table would silently send a request
# down the wrong path, while the display text travels with every coding.
_MRI_WORDS = frozenset(
    {"mr", "mri", "mrt", "magnetkamera", "magnetresonans", "magnetresonanstomografi", "magnetic"}
)
_CT_WORDS = frozenset(
    {"dt", "ct", "datortomografi", "skiktröntgen", "datortomograf", "computed", "tomography"}
)
_XRAY_WORDS = frozenset(
    {
        "slätröntgen",
        "röntgen",
        "rtg",
        "xr",
        "xray",
        "radiography",
        "radiographic",
        "plain",
        "konventionell",
    }
)
# Compound Swedish words that begin with a modality word: "röntgenländrygg", "mrländrygg".
_PREFIXES = (("slätröntgen", XRAY), ("skiktröntgen", CT), ("röntgen", XRAY), ("rtg", XRAY))

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> list[str]:
    normalized = unicodedata.normalize("NFC", text).casefold()
    words = _WORD.findall(normalized)
    # "x-ray" and "X ray" are one word for our purpose.
    joined = []
    for index, word in enumerate(words):
        if word == "ray" and index and words[index - 1] == "x":
            joined[-1] = "xray"
        else:
            joined.append(word)
    return joined


def examination_from_text(text: str) -> str | None:
    """The modality a text names, or None when it names none (CT before X-ray: a
    "skiktröntgen" is a CT, a "slätröntgen" is not)."""
    words = _words(text or "")
    if not words:
        return None
    found = set()
    for word in words:
        if word in _MRI_WORDS:
            found.add(MRI)
        elif word in _CT_WORDS:
            found.add(CT)
        elif word in _XRAY_WORDS:
            found.add(XRAY)
        else:
            for prefix, modality in _PREFIXES:
                if word.startswith(prefix):
                    found.add(modality)
                    break
            else:
                if word.endswith("röntgen"):
                    # "ländryggsröntgen"; "skiktröntgen" was matched whole above.
                    found.add(XRAY)
                elif word.startswith(("mr", "dt")) and word[2:] in {"ländrygg", "lumbal", "lws"}:
                    found.add(MRI if word.startswith("mr") else CT)
    if len(found) == 1:
        return found.pop()
    # Two modalities in one text ("MR eller DT") is a question for the radiologist.
    return OTHER if found else None


def examination_from_codings(
    codings: list[tuple[str, str, str]], texts: list[str]
) -> tuple[str, str]:
    """(examination, text as the referral wrote it) from (system, code, display) codings and
    free texts; unknown wording gives "other" with the original text kept for the radiologist."""
    for system, code, _display in codings:
        if system == DICOM_MODALITY_SYSTEM and code.upper() in _DICOM_MODALITIES:
            return _DICOM_MODALITIES[code.upper()], _first_text(codings, texts)
    candidates = [text for text in texts if text] + [
        display for _system, _code, display in codings if display
    ]
    for candidate in candidates:
        modality = examination_from_text(candidate)
        if modality is not None:
            return modality, _first_text(codings, texts)
    # A local code without display is often itself readable ("MRLRYGG", "RTG-LRYGG").
    for _system, code, _display in codings:
        modality = examination_from_text(code)
        if modality is not None:
            return modality, _first_text(codings, texts)
    return OTHER, _first_text(codings, texts)


def _first_text(codings: list[tuple[str, str, str]], texts: list[str]) -> str:
    for text in texts:
        if text and text.strip():
            return text.strip()[:200]
    for _system, _code, display in codings:
        if display and display.strip():
            return display.strip()[:200]
    for _system, code, _display in codings:
        if code and code.strip():
            return code.strip()[:200]
    return ""


# Our convention for "the referrer does not allow the department to change method": a
# sentence in the referral text (FHIR note/reasonCode, HL7 NTE/OBR-13, CSV anamnesis) such
# as "Metodbyte ej tillåtet", "Ej metodbyte", "Metodbyte tillåts inte". Structured senders
# use the FHIR extension or the CSV column instead; without either, a change is allowed.
_NO_METHOD_CHANGE = re.compile(
    r"\b(?:(?:ej|inte|icke|ingen)\s+metodbyte"
    r"|metodbyte\s+(?:är\s+)?(?:ej|inte|icke)\s*(?:tillåtet|tillåten|tillåts|ok|godkänt)?"
    r"|metodbyte\s+tillåts\s+(?:ej|inte|icke)"
    r"|metodbyte\s*:\s*(?:nej|ej|inte))\b",
    re.IGNORECASE,
)


def method_change_forbidden_in(texts: list[str]) -> bool:
    return any(_NO_METHOD_CHANGE.search(text or "") for text in texts)


YES_WORDS = frozenset({"ja", "j", "yes", "y", "true", "1", "x", "tillåtet", "tillåts"})
NO_WORDS = frozenset({"nej", "n", "no", "false", "0", "ej", "inte", "ej tillåtet"})


def parse_yes_no(text: str) -> bool | None:
    """True/False for a Swedish yes/no cell; None when the cell says something else."""
    value = (text or "").strip().casefold()
    if value in YES_WORDS:
        return True
    if value in NO_WORDS:
        return False
    return None


# The referrer's priority in our vocabulary (FHIR request-priority codes), by the words a
# Swedish sender writes in a CSV cell.
PRIORITY_WORDS = {
    "": "routine",
    "rutin": "routine",
    "normal": "routine",
    "routine": "routine",
    "brådskande": "urgent",
    "urgent": "urgent",
    "snarast": "asap",
    "asap": "asap",
    "akut": "stat",
    "omgående": "stat",
    "stat": "stat",
}
# HL7 v2 priority, table 0027 (ORC-7.6, OBR-27.6, TQ1-9): S stat, A as soon as possible,
# R routine; P (pre-op), C (callback), T (timing critical) and PRN carry no urgency of their
# own. An empty field is routine.
HL7_PRIORITIES = {
    "": "routine",
    "S": "stat",
    "A": "asap",
    "R": "routine",
    "P": "routine",
    "C": "routine",
    "T": "routine",
    "PRN": "routine",
}


def priority_from_word(text: str | None) -> str | None:
    """The priority code for a cell or FHIR code; None when the word is not one we know."""
    return PRIORITY_WORDS.get((text or "").strip().casefold())


def join_paragraphs(parts: list[str]) -> str:
    """The anamnesis: non-empty parts in order, each once."""
    seen: list[str] = []
    for part in parts:
        cleaned = (part or "").strip()
        if cleaned and cleaned not in seen:
            seen.append(cleaned)
    return "\n".join(seen)
