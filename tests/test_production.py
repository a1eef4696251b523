"""Production behaviour: headers, sessions, login throttling, limits, error pages, logs."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.urls import reverse

from triage import middleware
from triage.logging import JsonFormatter, mask_personnummer

pytestmark = pytest.mark.django_db


def test_healthz_reports_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True}


def test_healthz_503_when_database_fails(client, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr("triage.views.system.connection.cursor", broken)
    assert client.get("/healthz").status_code == 503


def test_database_outage_gives_swedish_503_page(client, radiologist, monkeypatch):
    client.force_login(radiologist)
    client.raise_request_exception = False

    def broken(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("triage.views.worklist.worklist_page", broken)
    response = client.get(reverse("triage:worklist"))

    assert response.status_code == 503
    assert "tillfälligt otillgänglig" in response.content.decode()
    assert response["Retry-After"] == "10"


def test_unknown_url_gives_swedish_404(client, radiologist):
    client.force_login(radiologist)
    response = client.get("/finns-inte/")
    assert response.status_code == 404
    assert "Sidan finns inte" in response.content.decode()


def test_oversized_body_is_refused_with_413(client, radiologist):
    client.force_login(radiologist)
    with override_settings(MAX_REQUEST_BYTES=1000):
        response = client.post(
            reverse("triage:take_next"), data="x" * 5000, content_type="text/plain"
        )
    assert response.status_code == 413


def test_pages_carry_security_headers_and_strict_csp(client):
    response = client.get(reverse("login"))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Request-ID"]


def test_pages_have_no_inline_script(client, radiologist, referral):
    client.force_login(radiologist)
    for url in (reverse("triage:worklist"), reverse("triage:referral", args=[referral.pk])):
        html = client.get(url).content.decode()
        for tag in html.split("<script")[1:]:
            assert tag.lstrip().startswith("src="), tag[:80]
        assert " onclick=" not in html and " onchange=" not in html


def test_session_expires_after_idle_time(client, radiologist, monkeypatch):
    client.force_login(radiologist)
    assert client.get(reverse("triage:worklist")).status_code == 200
    later = time.time() + 31 * 60
    monkeypatch.setattr(middleware.time, "time", lambda: later)

    response = client.get(reverse("triage:worklist"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_logout_invalidates_the_session(client, radiologist):
    client.force_login(radiologist)
    session_key = client.session.session_key
    client.post(reverse("logout"))

    from django.contrib.sessions.models import Session

    assert not Session.objects.filter(session_key=session_key).exists()
    assert client.get(reverse("triage:worklist")).status_code == 302


def test_repeated_failed_logins_lock_the_account(client, radiologist):
    for _attempt in range(5):
        client.post(reverse("login"), {"username": "radiolog", "password": "fel"})

    response = client.post(
        reverse("login"), {"username": "radiolog", "password": "pw-for-tests-only"}
    )

    assert response.status_code == 429
    assert "spärrad" in response.content.decode()


def test_successful_login_with_form(client, radiologist):
    response = client.post(
        reverse("login"), {"username": "radiolog", "password": "pw-for-tests-only"}
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "text",
    ["19820801-2396", "198208012396", "820801-2396", "8208012396", "820801+2396"],
)
def test_personnummer_never_logged_in_clear(text):
    assert mask_personnummer(f"sök {text} klar") == "sök [personnummer] klar"


def test_log_lines_are_json_with_request_id(client, radiologist, caplog):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "pnr 19820801-2396", None, None)
    record.request_id, record.user = "abc", "radiolog"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "pnr [personnummer]"
    assert (line["request_id"], line["user"]) == ("abc", "radiolog")
