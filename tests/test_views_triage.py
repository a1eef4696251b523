"""The radiologist's workflow through the views: pages, decisions, replies, bad input, budgets."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_patient, make_referral
from triage import services
from triage.models import AccessLog, Assessment, Referral, Reply, ReplyTemplate
from triage.personnummer import TEST_PERSONNUMMER

pytestmark = pytest.mark.django_db


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html) or re.search(
        rf'name="{name}"[^>]*value="([^"]*)"', html
    )
    assert match, f"hidden field {name} missing"
    return match.group(1)


def _open(client, referral) -> dict:
    """GET the triage page and return the hidden fields a browser would post back."""
    response = client.get(reverse("triage:referral", args=[referral.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    return {name: _hidden(html, name) for name in ("context", "version", "guideline", "shown")}


def _many_referrals(count: int) -> list[Referral]:
    referrals = []
    for index in range(count):
        patient = make_patient(TEST_PERSONNUMMER[index % 60], f"Patient {index}")
        referrals.append(make_referral(patient=patient, order_number=f"R-{index}"))
    return referrals


# --- Access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name", ["triage:worklist", "triage:referral", "triage:reply"], ids=str
)
def test_pages_redirect_anonymous_to_login(client, referral, url_name):
    args = [] if url_name == "triage:worklist" else [referral.pk]
    response = client.get(reverse(url_name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("persona", ["department_head", "auditor", "no_role_user"])
def test_triage_page_forbidden_without_radiologist_role(client, referral, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("triage:referral", args=[referral.pk])).status_code == 403


@pytest.mark.parametrize(
    ("persona", "expected"),
    [("department_head", "admin:index"), ("auditor", "audit:timeline"), ("no_role_user", None)],
)
def test_start_page_sends_other_roles_to_their_own_start(client, request, persona, expected):
    client.force_login(request.getfixturevalue(persona))
    response = client.get(reverse("triage:worklist"))
    if expected is None:
        assert response.status_code == 403
    else:
        assert response["Location"] == reverse(expected)


def test_posts_forbidden_without_radiologist_role(client, referral, auditor):
    client.force_login(auditor)
    for url_name in ("triage:take_next", "triage:recommendation", "triage:release"):
        args = [] if url_name == "triage:take_next" else [referral.pk]
        assert client.post(reverse(url_name, args=args)).status_code == 403
    referral.refresh_from_db()
    assert referral.status == Referral.Status.NEW


# --- Worklist ----------------------------------------------------------------------------


def test_worklist_lists_waiting_referrals_oldest_first_and_logs_reads(client, radiologist):
    older = make_referral(order_number="OLD", received_at=timezone.now() - timedelta(days=9))
    newer = make_referral(
        patient=make_patient(TEST_PERSONNUMMER[3], "Åsa Öberg"), order_number="NEW"
    )
    client.force_login(radiologist)

    response = client.get(reverse("triage:worklist"))

    rows = response.context["page"].rows
    assert [row.pk for row in rows] == [older.pk, newer.pk]
    logged = set(AccessLog.objects.values_list("referral_id", "action", "user_id"))
    assert logged == {(older.pk, "read", radiologist.pk), (newer.pk, "read", radiologist.pk)}


@pytest.mark.parametrize(
    "query",
    [
        "åsa",
        "ÅSA",
        "öberg",
        "Öberg",
        TEST_PERSONNUMMER[3],
        TEST_PERSONNUMMER[3][2:],
        f"{TEST_PERSONNUMMER[3][2:8]}-{TEST_PERSONNUMMER[3][8:]}",
    ],
    ids=["lower", "upper", "o-umlaut", "O-umlaut", "12-digits", "10-digits", "10-with-hyphen"],
)
def test_worklist_search_by_name_and_personnummer(client, radiologist, query):
    make_referral(order_number="OTHER")
    wanted = make_referral(
        patient=make_patient(TEST_PERSONNUMMER[3], "Åsa Öberg"), order_number="WANTED"
    )
    client.force_login(radiologist)

    rows = client.get(reverse("triage:worklist"), {"q": query}).context["page"].rows

    assert [row.pk for row in rows] == [wanted.pk]


def test_worklist_filters_mine_and_overdue(client, radiologist):
    overdue = make_referral(order_number="LATE", received_at=timezone.now() - timedelta(days=30))
    fresh = make_referral(patient=make_patient(TEST_PERSONNUMMER[4], "Ny Nysson"), order_number="F")
    services.referral_open(referral=fresh, user=radiologist)
    client.force_login(radiologist)

    mine = client.get(reverse("triage:worklist"), {"mine": "on"}).context["page"].rows
    late = client.get(reverse("triage:worklist"), {"overdue": "on"}).context["page"].rows

    assert [row.pk for row in mine] == [fresh.pk]
    assert [row.pk for row in late] == [overdue.pk]


def test_worklist_counts_per_status(client, radiologist, referral):
    services.referral_set_status(
        referral=referral, status=Referral.Status.AWAITING_INFORMATION, user=radiologist, reason="x"
    )
    client.force_login(radiologist)

    counts = client.get(reverse("triage:worklist"), {"status": "all"}).context["page"].counts

    assert counts["awaiting_information"] == 1
    assert counts["new"] == 0


def test_worklist_counts_stop_at_the_cap_and_paging_still_works(client, radiologist, monkeypatch):
    # At hospital scale the counts stop at COUNT_CAP + 1 (1,000 in production), so that a
    # view of the list never counts every decided referral; a small cap shows the same.
    monkeypatch.setattr("triage.selectors.COUNT_CAP", 3)
    _many_referrals(30)
    client.force_login(radiologist)

    first = client.get(reverse("triage:worklist"))
    second = client.get(reverse("triage:worklist"), {"page": "2"})

    page = first.context["page"]
    assert page.capped and page.counts["new"] == 4
    assert page.number == 1 and page.has_next and not page.has_previous
    assert "3+" in first.content.decode() and "Sida 1</span>" in first.content.decode()
    assert len(second.context["page"].rows) == 5 and not second.context["page"].has_next
    first_ids = {row.pk for row in page.rows}
    assert first_ids.isdisjoint(row.pk for row in second.context["page"].rows)


def test_worklist_counts_below_the_cap_are_exact(client, radiologist):
    _many_referrals(30)
    client.force_login(radiologist)

    page = client.get(reverse("triage:worklist"), {"page": "2"}).context["page"]

    assert not page.capped and page.total == 30 and page.num_pages == 2 and page.number == 2


@pytest.mark.parametrize("size", [1, 40])
def test_worklist_query_count_does_not_grow(
    client, radiologist, django_assert_max_num_queries, size
):
    _many_referrals(size)
    client.force_login(radiologist)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("triage:worklist"))
    assert len(response.context["page"].rows) == min(size, 25)


def test_worklist_survives_garbage_paging(client, radiologist, referral):
    client.force_login(radiologist)
    assert client.get(reverse("triage:worklist"), {"page": "x"}).status_code == 200
    assert client.get(reverse("triage:worklist"), {"page": "99"}).status_code == 200


def test_take_next_claims_oldest_unclaimed(client, radiologist):
    older = make_referral(order_number="A", received_at=timezone.now() - timedelta(days=5))
    make_referral(patient=make_patient(TEST_PERSONNUMMER[5], "B B"), order_number="B")
    client.force_login(radiologist)

    response = client.post(reverse("triage:take_next"))

    assert response["Location"] == reverse("triage:referral", args=[older.pk])
    older.refresh_from_db()
    assert (older.status, older.assigned_to) == (Referral.Status.IN_TRIAGE, radiologist)


def test_worklist_puts_escalated_then_the_referrers_acute_ones_first(client, radiologist):
    # Received oldest first in this order, so that only the rank can reorder them.
    numbers = iter(TEST_PERSONNUMMER)
    made = {}
    for days_ago, name, priority in [
        (9, "routine_oldest", "routine"),
        (8, "urgent", "urgent"),
        (7, "asap", "asap"),
        (6, "escalated", "routine"),
        (5, "stat", "stat"),
        (4, "routine_newer", "routine"),
    ]:
        made[name] = make_referral(
            patient=make_patient(next(numbers), f"Patient {name}"),
            order_number=name,
            received_at=timezone.now() - timedelta(days=days_ago),
            referrer_priority=priority,
        )
    services.referral_set_status(
        referral=made["escalated"], status=Referral.Status.ESCALATED, user=radiologist, reason="t"
    )
    client.force_login(radiologist)

    response = client.get(reverse("triage:worklist"))

    order = [row.order_number for row in response.context["page"].rows]
    assert order == ["escalated", "stat", "asap", "urgent", "routine_oldest", "routine_newer"]
    body = response.content.decode()
    assert '<span class="badge text-bg-danger" title="Remittentens prioritet">Akut</span>' in body
    assert ">Snarast</span>" in body and ">Brådskande</span>" in body
    assert ">Rutin</span>" not in body  # routine needs no badge


def test_take_next_claims_the_referrers_acute_one_before_older_routine_ones(client, radiologist):
    make_referral(order_number="OLD", received_at=timezone.now() - timedelta(days=30))
    acute = make_referral(
        patient=make_patient(TEST_PERSONNUMMER[5], "Akut Akutsson"),
        order_number="ACUTE",
        referrer_priority="stat",
    )
    client.force_login(radiologist)

    response = client.post(reverse("triage:take_next"))

    assert response["Location"] == reverse("triage:referral", args=[acute.pk])


def test_triage_page_shows_the_referrers_priority(client, radiologist):
    acute = make_referral(order_number="ACUTE", referrer_priority="asap")
    client.force_login(radiologist)

    body = client.get(reverse("triage:referral", args=[acute.pk])).content.decode()

    assert "Remittentens prioritet" in body
    assert '<span class="badge text-bg-warning">Snarast</span>' in body


def test_take_next_with_empty_worklist_says_so(client, radiologist):
    client.force_login(radiologist)
    response = client.post(reverse("triage:take_next"), follow=True)
    assert "inga nya remisser" in response.content.decode()


# --- Triage page and decisions -------------------------------------------------------------


def test_triage_page_shows_referral_and_prechecks_child_flag(client, radiologist):
    child = make_patient("20121224-2380", "Barn Barnsson")
    referral = make_referral(patient=child, requested="xray")
    client.force_login(radiologist)

    response = client.get(reverse("triage:referral", args=[referral.pk]))

    html = response.content.decode()
    assert response.context["form"].initial["red_flags"] == ["child_under_18"]
    assert "härlett från åldern" in html
    assert AccessLog.objects.filter(referral=referral, action="read").count() == 1


@pytest.mark.parametrize("imaging", [0, 30])
def test_triage_page_query_budget(client, radiologist, django_assert_max_num_queries, imaging):
    referral = make_referral()
    for day in range(imaging):
        services.prior_imaging_add(
            patient=referral.patient,
            modality="ct",
            region="buk",
            performed_on=referral.written_on - timedelta(days=400 + day),
            covers_lumbar_spine=True,
            user=radiologist,
            reason="t",
        )
    services.referral_open(referral=referral, user=radiologist)
    client.force_login(radiologist)
    with django_assert_max_num_queries(12):
        client.get(reverse("triage:referral", args=[referral.pk]))


def test_recommendation_endpoint_follows_the_form(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)

    response = client.post(
        reverse("triage:recommendation", args=[referral.pk]),
        {**hidden, "pain_weeks": "6", "red_flags": ["night_pain"]},
    )

    html = response.content.decode()
    assert 'data-action="mri"' in html and 'data-priority="6"' in html
    assert 'id="id_shown" value="mri:6" hx-swap-oob="true"' in html


@pytest.mark.parametrize("size", [1, 30])
def test_recommendation_endpoint_query_budget(
    client, radiologist, django_assert_max_num_queries, size
):
    referrals = _many_referrals(size)
    client.force_login(radiologist)
    hidden = _open(client, referrals[0])
    with django_assert_max_num_queries(3):
        client.post(
            reverse("triage:recommendation", args=[referrals[0].pk]),
            {**hidden, "pain_weeks": "6"},
        )


def test_recommendation_endpoint_refuses_tampered_context(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    response = client.post(
        reverse("triage:recommendation", args=[referral.pk]),
        {**hidden, "context": hidden["context"] + "x", "pain_weeks": "6"},
    )
    assert response.status_code == 400
    assert "Ladda om sidan" in response.content.decode()


def test_emergency_sign_shows_emergency_alert(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    response = client.post(
        reverse("triage:recommendation", args=[referral.pk]),
        {**hidden, "pain_weeks": "1", "emergency_signs": ["cauda_equina"]},
    )
    html = response.content.decode()
    assert 'id="emergency-alert"' in html and 'data-action="escalate"' in html


def test_accepting_the_suggestion_decides_and_leads_to_reply(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)

    response = client.post(
        reverse("triage:referral", args=[referral.pk]),
        {**hidden, "shown": "mri:6", "pain_weeks": "6", "red_flags": ["night_pain"], "accept": "1"},
    )

    assert response["Location"] == reverse("triage:reply", args=[referral.pk])
    referral.refresh_from_db()
    assessment = Assessment.objects.get()
    assert (assessment.action, assessment.priority_weeks, assessment.is_override) == (
        "mri",
        6,
        False,
    )
    assert referral.status == Referral.Status.DECIDED
    assert referral.due_date == timezone.localdate(referral.received_at) + timedelta(weeks=6)


def test_accept_with_outdated_suggestion_is_refused(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)

    response = client.post(
        reverse("triage:referral", args=[referral.pk]),
        {
            **hidden,
            "shown": "return:None",
            "pain_weeks": "6",
            "red_flags": ["night_pain"],
            "accept": "1",
        },
    )

    assert response.status_code == 409
    assert "Förslaget har ändrats" in response.content.decode()
    assert Assessment.objects.count() == 0


def test_override_requires_a_reason_shown_next_to_the_field(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    data = {
        **hidden,
        "pain_weeks": "6",
        "red_flags": ["night_pain"],
        "action": "mri",
        "priority_weeks": "2",
        "decide": "1",
    }

    refused = client.post(reverse("triage:referral", args=[referral.pk]), data)
    accepted = client.post(
        reverse("triage:referral", args=[referral.pk]),
        {**data, "override_reason": "Snabbt progredierande smärta."},
    )

    assert refused.status_code == 400
    assert "Motivera" in str(refused.context["form"].errors["override_reason"])
    assert accepted.status_code == 302
    assert Assessment.objects.get().override_reason == "Snabbt progredierande smärta."


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pain_weeks", "-3", "negativt"),
        ("pain_weeks", "sex", "som ett tal"),
        ("red_flags", "no_such_flag", "Välj ett giltigt"),
        ("priority_weeks", "0", "minst 1"),
        ("version", "", "ladda om sidan"),
    ],
    ids=["negative-duration", "text-duration", "unknown-flag", "zero-priority", "missing-version"],
)
def test_bad_decision_input_is_refused_with_message_and_nothing_saved(
    client, radiologist, referral, field, value, message
):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    data = {
        **hidden,
        "pain_weeks": "6",
        "action": "mri",
        "priority_weeks": "6",
        "override_reason": "x",
        "decide": "1",
        field: value,
    }

    response = client.post(reverse("triage:referral", args=[referral.pk]), data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Assessment.objects.count() == 0


def test_stale_form_is_refused_and_shows_the_other_decision(
    client, radiologist, other_radiologist, referral
):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    services.assessment_decide(
        referral=referral,
        entered=services.AssessmentInput(pain_weeks=None),
        action="return",
        priority_weeks=None,
        user=other_radiologist,
    )

    response = client.post(
        reverse("triage:referral", args=[referral.pk]),
        {**hidden, "pain_weeks": "6", "red_flags": ["night_pain"], "shown": "mri:6", "accept": "1"},
    )

    html = response.content.decode()
    assert response.status_code == 409
    assert "ändrats av någon annan" in html
    assert 'id="latest-decision"' in html and "radiolog2" in html
    assert 'name="pain_weeks" value="6"' in html  # the second person's input is kept
    assert Assessment.objects.count() == 1


def test_add_prior_imaging_rejects_impossible_date(client, radiologist, referral):
    client.force_login(radiologist)
    response = client.post(
        reverse("triage:prior_imaging_add", args=[referral.pk]),
        {
            "modality": "ct",
            "region": "buk",
            "performed_on": "2025-02-30",
            "covers_lumbar_spine": "on",
        },
    )
    assert response.status_code == 400
    assert "giltigt datum" in response.content.decode()
    assert referral.patient.prior_imaging.count() == 0


def test_add_prior_imaging_then_recommendation_uses_it(client, radiologist):
    referral = make_referral(requested="xray")
    client.force_login(radiologist)
    client.post(
        reverse("triage:prior_imaging_add", args=[referral.pk]),
        {
            "modality": "ct",
            "region": "buk",
            "performed_on": (referral.written_on - timedelta(days=40)).isoformat(),
            "covers_lumbar_spine": "on",
            "finding": "Inga kotkompressioner.",
        },
    )
    hidden = _open(client, referral)

    html = client.post(
        reverse("triage:recommendation", args=[referral.pk]),
        {**hidden, "pain_weeks": "10", "questions": ["compression"]},
    ).content.decode()

    assert 'data-action="rereview"' in html


# --- Replies -------------------------------------------------------------------------------


def _decide(client, referral, **extra) -> None:
    hidden = _open(client, referral)
    data = {
        **hidden,
        "pain_weeks": "6",
        "red_flags": ["night_pain"],
        "shown": "mri:6",
        "accept": "1",
    }
    data.update(extra)
    assert client.post(reverse("triage:referral", args=[referral.pk]), data).status_code == 302


def test_reply_is_drafted_from_the_matching_template_with_referral_values(
    client, radiologist, referral
):
    client.force_login(radiologist)
    _decide(client, referral)

    response = client.get(reverse("triage:reply", args=[referral.pk]))

    text = response.context["form"].initial["text"]
    assert response.context["form"].initial["template"].kind == "accepted"
    assert "MR ländrygg" in text and "6 veckor" in text
    assert "{" not in text


def test_reply_finalize_stores_text_and_template_version_then_prints(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)
    form = client.get(reverse("triage:reply", args=[referral.pk])).context["form"]

    response = client.post(
        reverse("triage:reply", args=[referral.pk]),
        {
            "template": form.initial["template"].pk,
            "text": "Egen text <script>x</script>",
            "finalize": "1",
        },
    )

    reply = Reply.objects.get()
    assert response["Location"] == reverse("triage:reply_print", args=[referral.pk, reply.pk])
    assert reply.is_final and reply.template_history_id
    printed = client.get(response["Location"]).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in printed and "<script>x" not in printed
    assert AccessLog.objects.filter(action="print", referral=referral).count() == 1


def test_reply_draft_versions_are_all_in_history(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)
    url = reverse("triage:reply", args=[referral.pk])
    client.post(url, {"text": "Första", "save": "1"})
    client.post(url, {"text": "Andra", "save": "1"})
    client.post(url, {"text": "Slutlig", "finalize": "1"})

    reply = Reply.objects.get()
    assert [row.text for row in reply.history.order_by("history_id")] == [
        "Första",
        "Andra",
        "Slutlig",
    ]


def test_empty_reply_is_refused(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)
    response = client.post(
        reverse("triage:reply", args=[referral.pk]), {"text": "  ", "finalize": "1"}
    )
    assert response.status_code == 400
    assert Reply.objects.count() == 0


def test_choosing_another_template_redrafts_the_text(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)
    template = ReplyTemplate.objects.get(kind="accepted", position=1)
    response = client.get(reverse("triage:reply", args=[referral.pk]), {"mall": template.pk})

    assert response.context["form"].initial["template"] == template
    assert "gjorts om" in response.context["form"].initial["text"]


# --- Komplettering and escalation ---------------------------------------------------------------


def test_request_information_then_completion_returns_to_worklist(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)

    response = client.post(
        reverse("triage:request_information", args=[referral.pk]),
        {"missing": "Smärtans duration", "version": hidden["version"]},
    )

    referral.refresh_from_db()
    assert response["Location"] == reverse("triage:reply", args=[referral.pk])
    assert referral.status == Referral.Status.AWAITING_INFORMATION
    assert "Smärtans duration" in Reply.objects.get().text

    client.post(
        reverse("triage:information_received", args=[referral.pk]),
        {"information": "Besvär sedan 10 veckor."},
    )
    referral.refresh_from_db()
    assert referral.status == Referral.Status.NEW
    assert "Besvär sedan 10 veckor." in referral.anamnesis
    assert referral.history.count() == 3  # created, awaiting information, completed


def test_escalated_referral_shows_banner_and_no_weeks(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    client.post(
        reverse("triage:referral", args=[referral.pk]),
        {
            **hidden,
            "pain_weeks": "1",
            "emergency_signs": ["cauda_equina"],
            "shown": "escalate:0",
            "accept": "1",
        },
    )

    html = client.get(reverse("triage:referral", args=[referral.pk])).content.decode()

    referral.refresh_from_db()
    assert referral.status == Referral.Status.ESCALATED and referral.due_date is None
    assert 'id="escalated-banner"' in html and "kontakta remittenten nu" in html


def test_a_new_decision_gets_a_new_reply_not_the_old_letter(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)
    url = reverse("triage:reply", args=[referral.pk])
    client.post(url, {"text": "Accepterad för MR.", "finalize": "1"})
    client.post(reverse("triage:reopen", args=[referral.pk]))
    hidden = _open(client, referral)
    client.post(
        reverse("triage:referral", args=[referral.pk]),
        {**hidden, "pain_weeks": "1", "shown": "return:None", "accept": "1"},
    )

    response = client.get(url)

    assert response.status_code == 200  # a fresh draft, not the finalised MR letter
    assert response.context["form"].initial["template"].kind == "no_indication"


def test_finalising_a_letter_with_an_unfilled_gap_is_refused(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)

    response = client.post(
        reverse("triage:reply", args=[referral.pk]),
        {"text": "Patienten har genomgått [tidigare_undersokning].", "finalize": "1"},
    )

    assert response.status_code == 400
    assert "[tidigare_undersokning]" in response.content.decode()
    assert not Reply.objects.filter(is_final=True).exists()


def test_template_variant_is_chosen_by_what_the_referral_can_fill(radiologist):
    from triage.selectors import draft_reply

    referral = make_referral(requested="xray", method_change_allowed=False)
    template, text = draft_reply(
        referral,
        action="return",
        priority_weeks=None,
        recommendation={
            "action": "return",
            "reply_kind": "xray_cannot_assess_metastasis",
            "suggest": "mri_or_scintigraphy",
        },
    )

    assert "tidigare_undersokning" not in template.body  # no earlier imaging to cite
    assert "MR alternativt skelettscintigrafi" in text and "[" not in text


def test_reading_a_referral_does_not_claim_it(client, radiologist, other_radiologist, referral):
    services.referral_claim_next(user=other_radiologist)
    client.force_login(radiologist)

    response = client.get(reverse("triage:referral", args=[referral.pk]))

    referral.refresh_from_db()
    assert referral.assigned_to == other_radiologist
    assert "bedömer den här remissen just nu" in response.content.decode()


@pytest.mark.parametrize(("typed", "weeks"), [("2,5", "2.5"), ("2.5", "2.5"), ("0,5", "0.5")])
def test_decimal_comma_in_duration_is_read_as_swedish(client, radiologist, referral, typed, weeks):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    data = {
        **hidden,
        "pain_weeks": typed,
        "action": "return",
        "override_reason": "x",
        "decide": "1",
    }

    client.post(reverse("triage:referral", args=[referral.pk]), data)

    assert str(Assessment.objects.get().pain_weeks) == weeks


def test_free_text_choice_gives_an_empty_reply(client, radiologist, referral):
    client.force_login(radiologist)
    _decide(client, referral)
    response = client.get(reverse("triage:reply", args=[referral.pk]), {"mall": "0"})
    assert response.context["form"].initial == {"template": None, "text": ""}


def test_escalated_referral_is_closed_as_handled_today_with_a_note(client, radiologist, referral):
    client.force_login(radiologist)
    hidden = _open(client, referral)
    client.post(
        reverse("triage:referral", args=[referral.pk]),
        {
            **hidden,
            "pain_weeks": "1",
            "emergency_signs": ["cauda_equina"],
            "shown": "escalate:0",
            "accept": "1",
        },
    )
    url = reverse("triage:emergency_handled", args=[referral.pk])

    refused = client.post(url, {"note": " "}, follow=True)
    client.post(url, {"note": "Remittent uppringd 10.15, akut MR kl 13."})

    referral.refresh_from_db()
    assert "Skriv vad som ordnats" in refused.content.decode()
    assert referral.status == Referral.Status.DECIDED
    assert referral.due_date == timezone.localdate()
    assert referral.history.first().history_change_reason.startswith("Akut handlagd: Remittent")
