"""Real-browser test: a radiologist triages referrals in headless Chromium.

Playwright (sync API) drives Debian's chromium against pytest-django's ``live_server``:
log in, "Ta nästa", tick flags until the live recommendation changes, accept with the
keyboard, edit and finalise the reply, open the print view; an override that needs a
reason; an emergency sign that escalates.

Without /usr/bin/chromium the module is skipped (``apt-get install chromium`` enables it),
unless REQUIRE_BROWSER=1 is set, as CI does: then every test fails instead of skipping.

Screenshots of each step are written to ``test-artifacts/browser/<test name>/NN-step.png``
under the project root; the folder is printed and listed in the terminal summary.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.conftest import TEST_NUMBER, make_patient, make_referral
from triage.models import Assessment, Referral, Reply

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
HOW_TO_ENABLE = (
    f"{CHROMIUM} not found: the real-browser test needs Debian's chromium. "
    "Enable it with `apt-get install chromium` (CI sets REQUIRE_BROWSER=1 and never skips)."
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
PASSWORD = "pw-for-tests-only"  # conftest.make_user
# Skatteverket test personnummer of a patient aged 70 at the referral date (born 1956-07-22).
SEVENTY_YEAR_OLD = "19560722-2394"
# Generous for a loaded CI machine, short enough that a broken page fails fast.
TIMEOUT_MS = 10_000


def received(days_ago: int) -> datetime:
    """Mid-morning local time: far from midnight, so the local and UTC dates agree."""
    return timezone.make_aware(datetime.combine(received_on(days_ago), time(10, 0)))


def received_on(days_ago: int) -> date:
    return timezone.localdate() - timedelta(days=days_ago)


if not CHROMIUM.exists() and not REQUIRE_BROWSER:
    pytest.skip(HOW_TO_ENABLE, allow_module_level=True)

pytestmark = [
    pytest.mark.browser,
    # The live server runs in another thread, so the data must be committed (transactional);
    # serialized rollback restores the reference data from the migrations (flags, groups,
    # guideline, reply templates) that the flush after each transactional test removes.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


# --- Browser plumbing -------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _allow_orm_next_to_playwright() -> Iterator[None]:
    # Playwright's sync API runs an event loop in the test thread; Django would otherwise
    # refuse the database assertions made from that thread.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Autouse, so it applies before conftest creates the user: a user is created and logs
    # in once per test, and the production hasher's rounds would cost a second each time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def browser(transactional_db) -> Iterator[Browser]:
    """A fresh Chromium per test, started after the test database is set up.

    While Playwright's loop runs in this thread, Django hands the thread's ORM calls a
    database connection of its own (connections are per async context). Starting the
    browser after the database fixture and stopping it before the flush keeps Django's
    set-up and teardown (serialized rollback, flush) on the connection it prepared.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"REQUIRE_BROWSER=1 but {HOW_TO_ENABLE}", pytrace=False)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # Close the connection the test's own ORM calls used while the loop ran.
            connections.close_all()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="sv-SE", viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


class _ScreenshotSummary:
    """Lists the screenshot folders at the end of the run, also under -q."""

    name = "remissprio-browser-screenshots"

    def __init__(self) -> None:
        self.folders: list[Path] = []

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.folders:
            terminalreporter.write_sep("-", "browser screenshots")
            for folder in self.folders:
                terminalreporter.write_line(str(folder))


class Steps:
    """Numbered full-page screenshots of one test: NN-step.png."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.count = 0

    def shot(self, step: str) -> None:
        self.count += 1
        self.page.screenshot(path=self.folder / f"{self.count:02d}-{step}.png", full_page=True)


@pytest.fixture
def steps(page: Page, request: pytest.FixtureRequest) -> Iterator[Steps]:
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nScreenshots: {folder}")
    request.node.user_properties.append(("screenshots", str(folder)))
    manager = request.config.pluginmanager
    summary = manager.get_plugin(_ScreenshotSummary.name)
    if summary is None:
        summary = _ScreenshotSummary()
        manager.register(summary, _ScreenshotSummary.name)
    summary.folders.append(folder)

    failed_before = request.session.testsfailed
    recorder = Steps(page, folder)
    yield recorder
    if request.session.testsfailed > failed_before:
        recorder.shot("failure")


# --- Helpers ----------------------------------------------------------------------------


def log_in(page: Page, base_url: str, username: str, steps: Steps) -> None:
    page.goto(f"{base_url}/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    steps.shot("login")
    page.get_by_role("button", name="Logga in").click()
    expect(page).to_have_url(f"{base_url}/")
    expect(page.locator("#take-next")).to_be_visible()
    steps.shot("worklist")


def take_next(page: Page, base_url: str, expected: Referral) -> None:
    page.locator("#take-next").click()
    expect(page).to_have_url(f"{base_url}/remiss/{expected.pk}/")
    expect(page.locator("#triage-form")).to_be_visible()


def press_access_key(page: Page, key: str) -> None:
    """Alt+<key>, as Chromium on Linux gets it from a real keyboard.

    Playwright's keyboard.press("Alt+g") sends the key without its text, and Chromium
    matches access keys on that text, so the key event goes through CDP instead.
    """
    code = ord(key.upper())
    event = {
        "modifiers": 1,  # Alt
        "key": key,
        "code": f"Key{key.upper()}",
        "windowsVirtualKeyCode": code,
        "nativeVirtualKeyCode": code,
    }
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send(
            "Input.dispatchKeyEvent",
            {"type": "keyDown", "text": key, "unmodifiedText": key, **event},
        )
        cdp.send("Input.dispatchKeyEvent", {"type": "keyUp", **event})
    finally:
        cdp.detach()


def checkbox(page: Page, name: str, value: str) -> Locator:
    return page.locator(f"#triage-form input[name={name}][value={value}]")


@contextmanager
def recomputed(page: Page, sent: str) -> Iterator[None]:
    """Wait for the live recommendation (htmx) computed from form data containing `sent`.

    Each step waits for its own answer, so that no request is still in flight when the
    next one, or the decision, is sent.
    """
    with page.expect_response(
        lambda response: (
            response.url.endswith("/forslag/") and sent in (response.request.post_data or "")
        ),
        timeout=TIMEOUT_MS,
    ) as answer:
        yield
    assert answer.value.ok, f"recommendation for {sent!r} answered {answer.value.status}"
    # htmx swaps the answer in before it takes its request class off the form.
    expect(page.locator("#triage-form")).not_to_have_class(re.compile(r"\bhtmx-request\b"))


def suggestion_is(page: Page, action: str, priority: str) -> None:
    suggestion = page.locator("#suggestion")
    expect(suggestion).to_have_attribute("data-action", action, timeout=TIMEOUT_MS)
    expect(suggestion).to_have_attribute("data-priority", priority, timeout=TIMEOUT_MS)


# --- Scenarios --------------------------------------------------------------------------


def test_common_case_take_next_accept_edit_finalize_print(
    live_server, transactional_db, radiologist, steps: Steps, page: Page
) -> None:
    base = live_server.url
    oldest = make_referral(
        patient=make_patient(SEVENTY_YEAR_OLD, "Sven Sjuttio"),
        order_number="R-70",
        requested="xray",
        received_at=received(5),
        anamnesis="Ländryggssmärta, nattlig värk. Frågeställning degenerativa förändringar?",
    )
    newer = make_referral(
        patient=make_patient(TEST_NUMBER, "Nora Nyare"),
        order_number="R-NEW",
        received_at=received(1),
    )

    log_in(page, base, radiologist.username, steps)
    take_next(page, base, expected=oldest)  # the oldest new referral, not the newer one
    # Focus lands where the radiologist works first.
    expect(page.locator("#id_pain_weeks")).to_be_focused()
    # Without a duration the routine can only ask for it.
    suggestion_is(page, "return", "")
    expect(page.locator("#indication")).to_have_text("Kan inte bedömas – uppgift saknas")
    steps.shot("triage-page")

    with recomputed(page, "pain_weeks=6"):
        page.keyboard.type("6")
    expect(page.locator("#indication")).to_have_text("Indikation saknas")
    with recomputed(page, "questions=degenerative"):
        checkbox(page, "questions", "degenerative").check()
    # No red flag yet: still no indication, the suggestion has not changed.
    suggestion_is(page, "return", "")
    steps.shot("pain-weeks-and-question")

    with recomputed(page, "red_flags=night_pain"):
        checkbox(page, "red_flags", "night_pain").check()
    # A red flag with 6 weeks' pain meets the indication; aged 70 with a degenerative
    # question and no earlier imaging, the requested plain X-ray is accepted: 6 weeks.
    suggestion_is(page, "xray", "6")
    expect(page.locator("#suggested-action")).to_contain_text("Slätröntgen, 6 veckor")
    expect(page.locator("#id_shown")).to_have_value("xray:6")
    steps.shot("recommendation-changed")

    # "Godkänn förslaget" with its access key (Alt+G).
    press_access_key(page, "g")
    expect(page).to_have_url(f"{base}/remiss/{oldest.pk}/svar/")
    expect(page.locator("#id_template")).not_to_have_value("")
    text = page.locator("#id_text")
    drafted = text.input_value()
    assert drafted.strip(), "the reply should be drafted from the accepted template"
    steps.shot("reply-drafted")

    sentence = "Patienten kallas inom sex veckor; ring röntgen vid försämring."
    text.focus()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n" + sentence)
    expect(text).to_have_value(re.compile(re.escape(sentence) + r"\s*$"))
    steps.shot("reply-edited")

    press_access_key(page, "s")  # "Slutför" (Alt+F belongs to the browser menu)
    expect(page).to_have_url(
        re.compile(rf"{re.escape(base)}/remiss/{oldest.pk}/svar/\d+/utskrift/$")
    )
    reply_text = page.locator("#reply-text")
    expect(reply_text).to_contain_text(sentence)
    expect(reply_text).to_contain_text(drafted.strip().splitlines()[0])
    expect(page.locator("#print")).to_be_visible()
    expect(page.get_by_text("UTKAST – ej slutfört")).to_have_count(0)
    steps.shot("print-view")
    page.emulate_media(media="print")
    expect(page.locator("#print")).to_be_hidden()
    expect(reply_text).to_be_visible()
    steps.shot("print-media")

    oldest.refresh_from_db()
    assert oldest.status == Referral.Status.DECIDED
    assert oldest.assigned_to == radiologist
    assert oldest.due_date == received_on(5) + timedelta(weeks=6)
    assessment = Assessment.objects.get(referral=oldest)
    assert (assessment.action, assessment.priority_weeks) == ("xray", 6)
    assert assessment.recommended_action == assessment.action
    assert assessment.recommended_priority_weeks == assessment.priority_weeks
    assert not assessment.is_override
    assert assessment.decided_by == radiologist
    assert {flag.code for flag in assessment.flags.all()} == {"night_pain"}
    assert assessment.questions == ["degenerative"]
    reply = Reply.objects.get(referral=oldest)
    assert reply.is_final
    assert reply.author == radiologist
    # Exactly the drafted text plus the typed sentence: nothing lost, nothing stray.
    assert reply.text.replace("\r\n", "\n") == f"{drafted}\n{sentence}".strip()
    assert oldest.history.filter(history_user=radiologist).exists()
    assert assessment.history.filter(history_user=radiologist).exists()
    assert reply.history.filter(history_user=radiologist, is_final=True).exists()
    # The newer referral is still waiting for someone else.
    newer.refresh_from_db()
    assert newer.status == Referral.Status.NEW
    assert newer.assigned_to is None


def test_override_needs_a_reason(
    live_server, transactional_db, radiologist, steps: Steps, page: Page
) -> None:
    base = live_server.url
    referral = make_referral(order_number="R-OVR", requested="mri", received_at=received(3))
    log_in(page, base, radiologist.username, steps)
    take_next(page, base, expected=referral)

    with recomputed(page, "pain_weeks=2"):
        page.locator("#id_pain_weeks").fill("2")
    # Two weeks without flags: no indication, the routine returns the referral.
    expect(page.locator("#indication")).to_have_text("Indikation saknas")
    suggestion_is(page, "return", "")
    with recomputed(page, "action=mri"):
        page.locator("#id_action").select_option("mri")
    # Only the pain-duration field is sent while typing; the others on leaving them.
    with recomputed(page, "priority_weeks=4"):
        page.locator("#id_priority_weeks").fill("4")
        page.keyboard.press("Tab")
    steps.shot("override-without-reason")
    page.locator("#decide").click()

    # Refused: the Swedish error is next to the reason field, and summarised at the top.
    expect(page).to_have_url(f"{base}/remiss/{referral.pk}/")
    reason_field = page.locator("#id_override_reason")
    expect(reason_field).to_have_class(re.compile(r"\bis-invalid\b"))
    field_error = page.locator("#id_override_reason ~ .invalid-feedback")
    expect(field_error).to_have_text("Motivera varför du avviker från förslaget (Återsänd).")
    expect(page.locator("#form-errors")).to_contain_text("Motivera varför du avviker")
    # What the radiologist entered is kept.
    expect(page.locator("#id_action")).to_have_value("mri")
    expect(page.locator("#id_priority_weeks")).to_have_value("4")
    expect(page.locator("#id_pain_weeks")).to_have_value("2")
    steps.shot("reason-required")
    assert not Assessment.objects.filter(referral=referral).exists()
    referral.refresh_from_db()
    assert referral.status == Referral.Status.IN_TRIAGE
    assert referral.due_date is None

    reason = "Progredierande smärta trots kort duration; MR inom 4 veckor."
    reason_field.fill(reason)
    # Leaving the field sends the form for a new suggestion; Tab lands on the save button.
    with recomputed(page, "override_reason=Progredierande"):
        page.keyboard.press("Tab")
    expect(page.locator("#decide")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/remiss/{referral.pk}/svar/")
    steps.shot("override-saved")

    assessment = Assessment.objects.get(referral=referral)
    assert assessment.is_override
    assert assessment.override_reason == reason
    assert (assessment.action, assessment.priority_weeks) == ("mri", 4)
    assert (assessment.recommended_action, assessment.recommended_priority_weeks) == (
        "return",
        None,
    )
    assert assessment.decided_by == radiologist
    referral.refresh_from_db()
    assert referral.status == Referral.Status.DECIDED
    assert referral.due_date == received_on(3) + timedelta(weeks=4)
    assert assessment.history.filter(history_user=radiologist).exists()


def test_emergency_sign_escalates(
    live_server, transactional_db, radiologist, steps: Steps, page: Page
) -> None:
    base = live_server.url
    referral = make_referral(order_number="R-AKUT", received_at=received(2))
    log_in(page, base, radiologist.username, steps)
    take_next(page, base, expected=referral)
    expect(page.locator("#emergency-alert")).to_have_count(0)

    with recomputed(page, "emergency_signs=cauda_equina"):
        checkbox(page, "emergency_signs", "cauda_equina").check()
    expect(page.locator("#emergency-alert")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#emergency-alert")).to_contain_text("AKUT – kontakta remittenten nu")
    suggestion_is(page, "escalate", "0")
    expect(page.locator("#suggested-action")).to_contain_text("i dag")
    expect(page.locator('#warnings [data-code="emergency_outside_routine"]')).to_be_visible()
    steps.shot("emergency")
