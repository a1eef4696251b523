"""Every URL of the project, for every persona: the exact outcome.

A URL that is added without an entry here fails `test_every_url_has_an_entry`, so access
rules are decided when a page is written, not discovered later.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from axes.models import AccessLog as AxesAccessLog
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from tests.conftest import make_patient, make_referral, make_user
from triage import services
from triage.importers.intake import sender_register
from triage.importers.tokens import api_token_create
from triage.models import (
    AccessLog,
    Flag,
    GuidelineVersion,
    InboxMessage,
    IntakeMessage,
    ReplyTemplate,
    Role,
)
from triage.permissions import Role as RoleName
from triage.personnummer import TEST_PERSONNUMMER
from triage.selectors import AssessmentInput

pytestmark = pytest.mark.django_db

PERSONAS = ["anonymous", "no_role", "radiologist", "department_head", "auditor", "superuser"]
STAFF = {"department_head", "superuser"}

# Outcomes: an HTTP status, "login" (redirect to the login page), "admin_login" (to the
# admin's login page) or ("to", url_name) for a redirect to that page.
LOGIN, ADMIN_LOGIN = "login", "admin_login"


def only(allowed: dict[str, object], default: object) -> dict[str, object]:
    return {persona: allowed.get(persona, default) for persona in PERSONAS}


RADIOLOGIST_PAGE = only({"anonymous": LOGIN, "radiologist": 200}, 403)
AUDITOR_PAGE = only({"anonymous": LOGIN, "auditor": 200}, 403)
POST_ONLY = only({}, 405)  # GET on a form endpoint, whoever asks

GET_MATRIX: dict[str, dict[str, object]] = {
    "healthz": only({}, 200),
    "login": only({}, 200),
    "logout": POST_ONLY,
    "set_language": only({}, ("to", "triage:worklist")),  # GET only sends you back
    "api:fhir-servicerequest": only({}, 405),
    "api:fhir-task": only({}, 401),  # senders authenticate with a token, never a session
    "api:hl7": only({}, 405),
    "audit:timeline": AUDITOR_PAGE,
    "audit:timeline_csv": AUDITOR_PAGE,
    "audit:referral": AUDITOR_PAGE,
    "audit:access_log": AUDITOR_PAGE,
    "audit:patient_extract": AUDITOR_PAGE,
    "triage:worklist": {
        "anonymous": LOGIN,
        "no_role": 403,
        "radiologist": 200,
        "department_head": ("to", "admin:index"),
        "auditor": ("to", "audit:timeline"),
        "superuser": ("to", "admin:index"),
    },
    "triage:take_next": POST_ONLY,
    "triage:referral": RADIOLOGIST_PAGE,
    "triage:recommendation": POST_ONLY,
    "triage:prior_imaging_add": POST_ONLY,
    "triage:request_information": POST_ONLY,
    "triage:information_received": POST_ONLY,
    "triage:release": POST_ONLY,
    "triage:reopen": POST_ONLY,
    "triage:emergency_handled": POST_ONLY,
    "triage:reply": RADIOLOGIST_PAGE,
    "triage:reply_print": RADIOLOGIST_PAGE,
    # The admin's own pages.
    "admin:index": only({"department_head": 200, "superuser": 200}, ADMIN_LOGIN),
    "admin:app_list": only({"department_head": 200, "superuser": 200}, ADMIN_LOGIN),
    "admin:login": only(
        {"department_head": ("to", "admin:index"), "superuser": ("to", "admin:index")}, 200
    ),
    # Not staff: the admin sends you to its index (which then asks you to log in).
    "admin:logout": only({"department_head": 405, "superuser": 405}, ("to", "admin:index")),
    "admin:password_change": only({"department_head": 200, "superuser": 200}, ADMIN_LOGIN),
    "admin:password_change_done": only({"department_head": 200, "superuser": 200}, ADMIN_LOGIN),
    "admin:jsi18n": only({"department_head": 200, "superuser": 200}, ADMIN_LOGIN),
    "admin:autocomplete": only({"department_head": 403, "superuser": 403}, ADMIN_LOGIN),
    # No model here has a public URL, so staff get 404.
    "admin:view_on_site": only({"department_head": 404, "superuser": 404}, ADMIN_LOGIN),
}

# The form endpoints, posted empty: who gets past the door (and what they get then).
POST_MATRIX: dict[str, dict[str, object]] = {
    "triage:take_next": {
        **only({"anonymous": LOGIN}, 403),
        "radiologist": ("to", "triage:referral"),
    },
    "triage:recommendation": {**only({"anonymous": LOGIN}, 403), "radiologist": 200},
    "triage:prior_imaging_add": {**only({"anonymous": LOGIN}, 403), "radiologist": 400},
    "triage:request_information": {**only({"anonymous": LOGIN}, 403), "radiologist": 400},
    "triage:information_received": {
        **only({"anonymous": LOGIN}, 403),
        "radiologist": ("to", "triage:referral"),
    },
    # "other" was just claimed by take_next above, so it can be handed back.
    "triage:release": {**only({"anonymous": LOGIN}, 403), "radiologist": ("to", "triage:worklist")},
    "triage:reopen": {**only({"anonymous": LOGIN}, 403), "radiologist": ("to", "triage:referral")},
    "triage:emergency_handled": {
        **only({"anonymous": LOGIN}, 403),
        "radiologist": ("to", "triage:referral"),
    },
}

# Admin model pages: which views a department head and a superuser may open (others: 403;
# anyone who is not staff goes to the admin login). "history_version" is simple-history's
# revert form, which always sends back to the history list: history is never reverted.
ALL = {"changelist", "add", "change", "delete", "history"}
ADMIN_MODELS: dict[str, dict[str, set[str]]] = {
    "triage_replytemplate": {"department_head": ALL - {"delete"}, "superuser": ALL - {"delete"}},
    "triage_guidelineversion": {
        "department_head": ALL - {"delete", "add"},
        "superuser": ALL - {"delete", "add"},
    },
    "triage_flag": {
        "department_head": ALL - {"delete", "add"},
        "superuser": ALL - {"delete", "add"},
    },
    "triage_accesslog": {
        "department_head": {"changelist", "change", "history"},
        "superuser": {"changelist", "change", "history"},
    },
    "triage_role": {"department_head": set(), "superuser": ALL - {"delete"}},
    "triage_sender": {"department_head": ALL - {"delete"}, "superuser": ALL - {"delete"}},
    "triage_apitoken": {"department_head": ALL - {"delete"}, "superuser": ALL - {"delete"}},
    "triage_inboxmessage": {
        "department_head": {"changelist", "change", "history"},
        "superuser": {"changelist", "change", "history"},
    },
    "triage_intakemessage": {
        "department_head": {"changelist", "change", "history"},
        "superuser": {"changelist", "change", "history"},
    },
    "auth_user": {"department_head": set(), "superuser": ALL - {"delete"}},
    "auth_group": {"department_head": set(), "superuser": ALL},
    # django-axes' records are written by axes only: nobody adds them by hand.
    "axes_accessattempt": {
        "department_head": {"changelist", "change", "delete", "history"},
        "superuser": ALL - {"add"},
    },
    "axes_accessfailurelog": {
        "department_head": {"changelist", "change", "history"},
        "superuser": ALL - {"add"},
    },
    "axes_accesslog": {"department_head": set(), "superuser": ALL - {"add"}},
}
EXTRA_ADMIN_VIEWS: dict[str, dict[str, object]] = {
    "admin:triage_replytemplate_preview": only(
        {"department_head": 200, "superuser": 200}, ADMIN_LOGIN
    ),
    "admin:triage_guidelineversion_copy": only(
        {
            "department_head": ("to", "admin:triage_guidelineversion_changelist"),
            "superuser": ("to", "admin:triage_guidelineversion_changelist"),
        },
        ADMIN_LOGIN,
    ),
    "admin:auth_user_password_change": only(
        {"department_head": 403, "superuser": 200}, ADMIN_LOGIN
    ),
}


def _admin_expectation(name: str) -> dict[str, object] | None:
    if name in EXTRA_ADMIN_VIEWS:
        return EXTRA_ADMIN_VIEWS[name]
    match = re.fullmatch(
        r"admin:(\w+?)_(changelist|add|change|delete|history|simple_history)", name
    )
    if not match or match.group(1) not in ADMIN_MODELS:
        return None
    model, view = match.groups()
    expectation = {}
    for persona in PERSONAS:
        if persona not in STAFF:
            expectation[persona] = ADMIN_LOGIN
            continue
        allowed = ADMIN_MODELS[model][persona]
        if view == "simple_history":
            history = reverse(f"admin:{model}_history", args=["OBJECT"])
            expectation[persona] = ("history", history) if "history" in allowed else 403
        else:
            expectation[persona] = 200 if view in allowed else 403
    return expectation


def _named_patterns(patterns=None, namespace=None):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace
            space = f"{namespace}:{inner}" if namespace and inner else inner or namespace
            yield from _named_patterns(pattern.url_patterns, space)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield (f"{namespace}:{pattern.name}" if namespace else pattern.name), pattern


def test_every_url_has_an_entry():
    missing = [
        name
        for name, _pattern in _named_patterns()
        if name not in GET_MATRIX and _admin_expectation(name) is None
    ]
    assert not missing, f"URLs without an access rule: {missing}"


@pytest.fixture
def world(db):
    """One object of every kind a URL can point at."""
    radiologist = make_user("radiologist", RoleName.RADIOLOGIST)
    department_head = make_user("department_head", RoleName.DEPARTMENT_HEAD)
    department_head.is_staff = True
    department_head.save()
    superuser = User.objects.create_superuser("superuser", password="pw-for-tests-only")
    users = {
        "radiologist": radiologist,
        "department_head": department_head,
        "auditor": make_user("auditor", RoleName.AUDITOR),
        "no_role": make_user("no_role"),
        "superuser": superuser,
    }
    decided = make_referral(order_number="DECIDED")
    assessment = services.assessment_decide(
        referral=decided,
        entered=AssessmentInput(pain_weeks=Decimal("6"), flag_codes=frozenset({"night_pain"})),
        action="mri",
        priority_weeks=6,
        user=radiologist,
    )
    reply = services.reply_save(
        referral=decided, assessment=assessment, text="Svar", user=radiologist
    )
    sender = sender_register(name="ris", user=superuser)
    token, _secret = api_token_create(sender=sender, label="t", user=superuser)
    now = timezone.now()
    inbox = InboxMessage.objects.create(
        sender=sender,
        format="fhir",
        received_at=now,
        origin="x",
        raw=b"{}",
        content_hash="0" * 64,
        error="Fel",
        last_received_at=now,
    )
    intake = IntakeMessage.objects.create(
        sender=sender,
        format="fhir",
        message_key="k",
        content_hash="0" * 64,
        label="x",
        received_at=now,
        raw=b"{}",
    )
    attempt = AccessAttempt.objects.create(
        username="x", ip_address="127.0.0.1", failures_since_start=1
    )
    patient = make_patient(TEST_PERSONNUMMER[2], "Annan Patient")
    other = make_referral(patient=patient, order_number="OTHER")
    objects = {
        "triage_replytemplate": ReplyTemplate.objects.first(),
        "triage_guidelineversion": GuidelineVersion.objects.get(is_active=True),
        "triage_flag": Flag.objects.first(),
        "triage_accesslog": AccessLog.objects.create(
            at=now, user=radiologist, action="read", patient=patient, care_unit="X", view="t"
        ),
        "triage_role": Role.objects.first(),
        "triage_sender": sender,
        "triage_apitoken": token,
        "triage_inboxmessage": inbox,
        "triage_intakemessage": intake,
        "auth_user": radiologist,
        "auth_group": Group.objects.first(),
        "axes_accessattempt": attempt,
        "axes_accessfailurelog": AccessFailureLog.objects.create(
            username="x", ip_address="127.0.0.1", attempt_time=now - timedelta(minutes=1)
        ),
        "axes_accesslog": AxesAccessLog.objects.create(
            username="x", ip_address="127.0.0.1", attempt_time=now
        ),
    }
    return {"users": users, "decided": decided, "reply": reply, "other": other, "objects": objects}


def _url(name: str, pattern: URLPattern, world: dict) -> str:
    if name == "admin:app_list":
        return reverse(name, kwargs={"app_label": "triage"})
    if name == "admin:view_on_site":
        content_type = ContentType.objects.get_for_model(ReplyTemplate)
        return reverse(name, kwargs={"content_type_id": content_type.pk, "object_id": 1})
    model = re.sub(
        r"^admin:|_(changelist|add|change|delete|history|simple_history|password_change)$", "", name
    )
    if name.endswith("_simple_history"):  # a regex pattern with positional groups
        obj = world["objects"][model]
        return reverse(name, args=[obj.pk, obj.history.first().history_id])
    kwargs = {}
    for key in pattern.pattern.converters:
        if key == "pk":
            kwargs[key] = world["decided"].pk
        elif key == "reply_pk":
            kwargs[key] = world["reply"].pk
        elif key in ("object_id", "id"):
            kwargs[key] = world["objects"][model].pk
    return reverse(name, kwargs=kwargs)


def _check(client, persona, expected, response, url):
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next="), response["Location"]
    elif expected == ADMIN_LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login")), response["Location"]
    elif isinstance(expected, tuple) and expected[0] == "history":
        assert response.status_code == 302
    elif isinstance(expected, tuple):
        assert response.status_code == 302, (url, persona, response.status_code)
        target = expected[1]
        path = response["Location"].split("?")[0]
        if target == "triage:referral":
            assert path.startswith("/remiss/"), path
        else:
            assert path == reverse(target), (url, persona, path)
    else:
        assert response.status_code == expected, (url, persona, response.status_code)


def _login(client, persona, world):
    if persona != "anonymous":
        client.force_login(world["users"][persona])


@pytest.mark.parametrize("persona", PERSONAS)
def test_get_every_url(client, world, persona):
    _login(client, persona, world)
    client.raise_request_exception = True
    for name, pattern in _named_patterns():
        expected = GET_MATRIX.get(name) or _admin_expectation(name)
        url = _url(name, pattern, world)
        response = client.get(url)
        _check(client, persona, expected[persona], response, url)


@pytest.mark.parametrize("persona", PERSONAS)
def test_post_every_form_endpoint(client, world, persona):
    _login(client, persona, world)
    for name, expectations in POST_MATRIX.items():
        pattern = dict(_named_patterns())[name]
        target = (
            world["other"] if name in ("triage:release", "triage:take_next") else world["decided"]
        )
        url = _url(name, pattern, world).replace(str(world["decided"].pk), str(target.pk), 1)
        _check(client, persona, expectations[persona], client.post(url), url)
