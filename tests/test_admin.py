"""Department heads in the admin: templates, routine parameters, flags; history is read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db.models import ProtectedError
from django.urls import reverse

from tests.conftest import make_referral
from triage import services
from triage.models import AccessLog, Assessment, Flag, GuidelineVersion, ReplyTemplate
from triage.reply_text import render_body
from triage.selectors import AssessmentInput

pytestmark = pytest.mark.django_db


@pytest.fixture
def head_client(client, department_head):
    department_head.is_staff = True
    department_head.save()
    client.force_login(department_head)
    return client


def _template_data(template: ReplyTemplate, **changes) -> dict:
    data = {
        "kind": template.kind,
        "title": template.title,
        "body": template.body,
        "position": template.position,
        "is_active": "on" if template.is_active else "",
        "change_reason": "Språklig justering",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value != ""}


def test_department_head_edits_template_with_reason_in_history(head_client, department_head):
    template = ReplyTemplate.objects.get(kind="no_indication")
    url = reverse("admin:triage_replytemplate_change", args=[template.pk])

    response = head_client.post(url, _template_data(template, body=template.body + "\nMvh {datum}"))

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.body.endswith("Mvh {datum}")
    latest = template.history.first()
    assert (latest.history_user, latest.history_change_reason) == (
        department_head,
        "Språklig justering",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Hej {patient_losenord}", "{patient_losenord}"),
        ("Hej {datum", "obalanserade"),
        ("Hej datum}", "obalanserade"),
    ],
    ids=["unknown-placeholder", "unclosed-brace", "stray-brace"],
)
def test_template_with_bad_placeholder_is_refused_and_unchanged(head_client, body, message):
    template = ReplyTemplate.objects.get(kind="no_indication")
    before = template.body
    url = reverse("admin:triage_replytemplate_change", args=[template.pk])

    response = head_client.post(url, _template_data(template, body=body))

    assert response.status_code == 200
    html = response.content.decode()
    assert message in html and "{datum}" in html  # names the problem and lists valid ones
    template.refresh_from_db()
    assert template.body == before


def test_template_edit_without_reason_is_refused(head_client):
    template = ReplyTemplate.objects.get(kind="no_indication")
    url = reverse("admin:triage_replytemplate_change", args=[template.pk])
    response = head_client.post(url, _template_data(template, change_reason=""))
    assert response.status_code == 200
    assert template.history.count() == 1


@pytest.mark.parametrize(
    "payload",
    ["{% debug %}", "{{ x.y.password }}", "<script>alert(1)</script>", "{{ settings.SECRET_KEY }}"],
)
def test_template_engine_syntax_is_inert_text(payload):
    rendered = render_body(f"{payload} {{datum}}", {"datum": "2026-01-01"})
    assert rendered == f"{payload} 2026-01-01"


def test_placeholder_values_are_not_interpreted():
    rendered = render_body("{fynd}", {"fynd": "{datum} {% debug %} <b>"})
    assert rendered == "{datum} {% debug %} <b>"


def test_preview_renders_against_referral_escaped_and_logged(head_client, department_head):
    referral = make_referral(anamnesis="x")
    referral.patient.name = "<script>alert('x')</script>"
    referral.patient.save()
    template = ReplyTemplate.objects.get(kind="missing_information")
    template.body = "{datum} <script>evil()</script> {patient_alder} {saknas}"
    template.save()

    response = head_client.get(
        reverse("admin:triage_replytemplate_preview", args=[template.pk]),
        {"remiss": referral.order_number},
    )

    html = response.content.decode()
    assert "&lt;script&gt;evil()&lt;/script&gt;" in html
    assert "<script>evil()" not in html and "<script>alert('x')" not in html
    assert AccessLog.objects.filter(user=department_head, view="template_preview").count() == 1


def test_new_guideline_version_copies_active_and_is_inactive(head_client):
    active = GuidelineVersion.objects.get(is_active=True)

    response = head_client.post(reverse("admin:triage_guidelineversion_copy"))

    copy = GuidelineVersion.objects.exclude(pk=active.pk).get()
    assert response["Location"] == reverse("admin:triage_guidelineversion_change", args=[copy.pk])
    assert not copy.is_active and copy.label == "2"
    assert copy.red_flag_weeks == active.red_flag_weeks


def _version_data(version: GuidelineVersion, **changes) -> dict:
    data = {
        "label": version.label,
        "valid_from": version.valid_from.isoformat(),
        "note": version.note,
        "change_reason": "Ny tolkning",
        **{name: getattr(version, name) for name in GuidelineVersion.PARAMETER_FIELDS},
    }
    data.update(changes)
    return data


def test_borderline_bound_above_red_flag_bound_is_refused(head_client):
    head_client.post(reverse("admin:triage_guidelineversion_copy"))
    copy = GuidelineVersion.objects.get(is_active=False)

    response = head_client.post(
        reverse("admin:triage_guidelineversion_change", args=[copy.pk]),
        _version_data(copy, red_flag_borderline_weeks=5, red_flag_weeks=4),
    )

    assert response.status_code == 200
    assert "Gränsfallet kan inte börja efter" in response.content.decode()
    copy.refresh_from_db()
    assert copy.red_flag_borderline_weeks == 3


@pytest.mark.parametrize(
    ("field", "value"),
    [("older_patient_age", 5), ("recent_imaging_months", 0), ("priority_red_weeks", 0)],
)
def test_parameter_out_of_range_is_refused(head_client, field, value):
    head_client.post(reverse("admin:triage_guidelineversion_copy"))
    copy = GuidelineVersion.objects.get(is_active=False)
    response = head_client.post(
        reverse("admin:triage_guidelineversion_change", args=[copy.pk]),
        _version_data(copy, **{field: value}),
    )
    assert response.status_code == 200
    copy.refresh_from_db()
    assert getattr(copy, field) != value


def test_activating_new_version_deactivates_old_and_old_decisions_keep_theirs(
    head_client, radiologist
):
    old = GuidelineVersion.objects.get(is_active=True)
    referral = make_referral()
    decided = services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"})),
        action="mri",
        priority_weeks=6,
        user=radiologist,
    )
    head_client.post(reverse("admin:triage_guidelineversion_copy"))
    new = GuidelineVersion.objects.get(is_active=False)

    head_client.post(
        reverse("admin:triage_guidelineversion_changelist"),
        {"action": "activate", "_selected_action": [new.pk]},
    )

    assert list(GuidelineVersion.objects.filter(is_active=True)) == [new]
    decided.refresh_from_db()
    assert decided.guideline_version == old
    assert decided.recommendation["guideline_version"] == "1"


def test_active_or_used_version_cannot_be_changed(head_client):
    active = GuidelineVersion.objects.get(is_active=True)
    response = head_client.post(
        reverse("admin:triage_guidelineversion_change", args=[active.pk]),
        _version_data(active, red_flag_weeks=9),
    )
    assert response.status_code == 403
    active.refresh_from_db()
    assert active.red_flag_weeks == 4


def test_flag_label_editable_code_fixed(head_client):
    flag = Flag.objects.get(code="night_pain")
    response = head_client.post(
        reverse("admin:triage_flag_change", args=[flag.pk]),
        {"label": "Nattlig smärta", "position": 3, "code": "hacked", "change_reason": "Kortare"},
    )
    assert response.status_code == 302
    flag.refresh_from_db()
    assert (flag.code, flag.label) == ("night_pain", "Nattlig smärta")


def test_history_view_is_readable_but_revert_is_not_possible(head_client):
    template = ReplyTemplate.objects.get(kind="no_indication")
    history_id = template.history.first().history_id
    history_url = reverse("admin:triage_replytemplate_history", args=[template.pk])

    assert head_client.get(history_url).status_code == 200
    revert = head_client.post(
        reverse("admin:triage_replytemplate_simple_history", args=[template.pk, history_id]),
        {"body": "Återställd"},
    )
    template.refresh_from_db()
    assert revert.status_code in (302, 403)
    assert template.body != "Återställd"


def test_access_log_is_read_only_even_for_superuser(client):
    root = User.objects.create_superuser("it", password="pw-for-tests-only")
    referral = make_referral()
    client.force_login(root)
    row = AccessLog.objects.create(
        at="2026-01-01T10:00Z",
        user=root,
        action="read",
        patient=referral.patient,
        care_unit="X",
        view="t",
    )

    assert client.get(reverse("admin:triage_accesslog_changelist")).status_code == 200
    assert client.get(reverse("admin:triage_accesslog_add")).status_code == 403
    assert client.post(reverse("admin:triage_accesslog_delete", args=[row.pk])).status_code == 403
    client.post(
        reverse("admin:triage_accesslog_changelist"),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )
    assert AccessLog.objects.filter(pk=row.pk).exists()


def test_users_cannot_be_deleted_only_deactivated(client, radiologist):
    root = User.objects.create_superuser("it", password="pw-for-tests-only")
    client.force_login(root)
    response = client.post(
        reverse("admin:auth_user_delete", args=[radiologist.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert User.objects.filter(pk=radiologist.pk).exists()


def test_decision_history_cannot_be_deleted_through_protected_relations(radiologist):
    referral = make_referral()
    services.assessment_decide(
        referral=referral,
        entered=AssessmentInput(pain_weeks=Decimal("1")),
        action="return",
        priority_weeks=None,
        user=radiologist,
    )
    with pytest.raises(ProtectedError):
        referral.delete()
    assert Assessment.objects.count() == 1


def test_guideline_valid_from_is_a_real_date(head_client):
    head_client.post(reverse("admin:triage_guidelineversion_copy"))
    copy = GuidelineVersion.objects.get(is_active=False)
    before = copy.valid_from
    response = head_client.post(
        reverse("admin:triage_guidelineversion_change", args=[copy.pk]),
        _version_data(copy, valid_from="2026-02-30"),
    )
    assert response.status_code == 200
    copy.refresh_from_db()
    assert copy.valid_from == before
