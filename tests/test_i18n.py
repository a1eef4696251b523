"""The English translation: language choice, translated pages and a complete catalogue.

The UI is Swedish unless the user picks English with the language switch (a cookie);
the browser's Accept-Language is deliberately ignored (triage.middleware).
"""

from __future__ import annotations

import ast
import gettext
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from triage import services
from triage.selectors import AssessmentInput

PO_FILE = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")

# Messages whose English is the same as the Swedish: names, formats and international words.
SAME_IN_ENGLISH = {
    "(import)",
    "(system)",
    "Administration",
    "CSV (Excel)",
    "Export",
    "FHIR R4",
    "HL7 v2",
    "ISO-8859-1 (Latin-1)",
    "Patient",
    "Patient %(name)s",
    "Period",
    "Remissprio",
    "Status",
    "Text",
    "Trauma",
    "UTF-8",
    "format",
    "patient",
    "region",
    "status",
    "text",
    "trauma",
    "version",
}


def _english(client) -> None:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"


# --- Choosing the language --------------------------------------------------------------


@pytest.mark.django_db
def test_worklist_in_english_with_language_cookie(client, radiologist, referral):
    client.force_login(radiologist)
    _english(client)
    html = client.get(reverse("triage:worklist")).content.decode()
    assert '<html lang="en">' in html
    assert "Worklist" in html
    assert "Take next" in html
    assert "Arbetslista" not in html
    assert "Ta nästa" not in html


@pytest.mark.django_db
def test_triage_page_in_english_with_language_cookie(client, radiologist, referral):
    client.force_login(radiologist)
    _english(client)
    response = client.get(reverse("triage:referral", args=[referral.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for label in (
        "Referral number",
        "Requested examination",
        "Previous examinations",
        "Assessment",
        "Suggestion",
        "Red flags",
        "Pain duration (weeks)",
        "Accept suggestion",
        "Request more information",
        "Back to the worklist",
    ):
        assert label in html, label
    for swedish in ("Remissnummer", "Godkänn förslaget", "Begär komplettering", "Röda flaggor"):
        assert swedish not in html, swedish


@pytest.mark.django_db
def test_swedish_by_default_even_if_browser_asks_for_english(client, radiologist, referral):
    client.force_login(radiologist)
    html = client.get(reverse("triage:worklist"), HTTP_ACCEPT_LANGUAGE="en-US").content.decode()
    assert '<html lang="sv">' in html
    assert "Arbetslista" in html
    assert "Worklist" not in html


@pytest.mark.django_db
def test_language_switch_sets_english(client, radiologist, referral):
    client.force_login(radiologist)
    worklist = reverse("triage:worklist")
    assert "Arbetslista" in client.get(worklist).content.decode()

    response = client.post(reverse("set_language"), {"language": "en", "next": worklist})
    assert response.status_code == 302
    assert response["Location"] == worklist
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"

    html = client.get(worklist).content.decode()
    assert "Worklist" in html
    assert "Arbetslista" not in html

    client.post(reverse("set_language"), {"language": "sv", "next": worklist})
    assert "Arbetslista" in client.get(worklist).content.decode()


# --- The catalogue ----------------------------------------------------------------------


def _po_messages(path: Path) -> list[tuple[str, str | None]]:
    """(msgid, msgid_plural or None) of every live entry of a .po file, header excluded."""
    messages: list[tuple[str, str | None]] = []
    fields: dict[str, str] = {}
    current = ""

    def flush() -> None:
        if fields.get("msgid"):
            messages.append((fields["msgid"], fields.get("msgid_plural")))
        fields.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("msgid "):
            flush()
        if line.startswith(("msgid ", "msgid_plural ", "msgstr")):
            current, _, line = line.partition(" ")
            fields[current] = ""
        if line.startswith('"'):  # obsolete "#~" entries and comments never get here
            fields[current] += ast.literal_eval(line)
    flush()
    return messages


class _Missing(gettext.NullTranslations):
    """Fallback that marks a message absent from the compiled catalogue."""

    def gettext(self, message):
        return None

    def ngettext(self, msgid1, msgid2, n):
        return None


def test_compiled_catalogue_translates_every_message():
    """Every message of the .po is in the committed .mo, in English.

    Reads the compiled file (which is what Django serves and CI does not rebuild), so a
    message that is untranslated, fuzzy or added to the .po without recompiling fails.
    """
    messages = _po_messages(PO_FILE)
    assert len(messages) > 100  # the parser found the catalogue
    with MO_FILE.open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    catalogue.add_fallback(_Missing())

    problems = []
    for msgid, plural in messages:
        if plural is None:
            pairs = [(msgid, catalogue.gettext(msgid))]
        else:
            pairs = [(msgid, catalogue.ngettext(msgid, plural, 1))]
            pairs.append((plural, catalogue.ngettext(msgid, plural, 2)))
        for source, english in pairs:
            if english is None:
                problems.append(f"not compiled: {source!r}")
            elif english == source and msgid not in SAME_IN_ENGLISH:
                problems.append(f"untranslated: {source!r}")
    assert not problems, "\n".join(problems)


def test_reply_letter_stays_swedish_when_the_screen_is_english(client, radiologist, referral):
    services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"})),
        action="mri",
        priority_weeks=6,
        user=radiologist,
    )
    client.force_login(radiologist)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    text = client.get(reverse("triage:reply", args=[referral.pk])).context["form"].initial["text"]

    assert "6 veckor" in text and "weeks" not in text
