"""Session idle timeout without a session write on every request."""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.core.signals import request_finished
from django.dispatch import receiver
from django.shortcuts import render
from django.utils.translation import gettext as _

from triage.logging import request_context

LAST_ACTIVITY = "last_activity"
# Refresh the stored activity time at most this often: a write per minute, not per request.
REFRESH_SECONDS = 60


@receiver(request_finished)
def _forget_request(sender, **kwargs) -> None:
    request_context.set(None)


@receiver(user_logged_in)
def _stamp_login(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[LAST_ACTIVITY] = int(time.time())


class IdleTimeoutMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        session = request.session
        if "_auth_user_id" in session:
            now = int(time.time())
            last = session.get(LAST_ACTIVITY, 0)
            if now - last > settings.SESSION_IDLE_SECONDS:
                logout(request)
                messages.info(request, _("Du loggades ut efter en tids inaktivitet."))
                return redirect_to_login(request.get_full_path())
            if now - last > REFRESH_SECONDS:
                session[LAST_ACTIVITY] = now
        return self.get_response(request)


class SwedishByDefaultMiddleware:
    """The UI is Swedish unless the user picks another language (cookie or session).

    Placed before LocaleMiddleware: a browser's Accept-Language (often English on hospital
    PCs) must not switch a Swedish department's tool to English.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.META.pop("HTTP_ACCEPT_LANGUAGE", None)
        return self.get_response(request)


class RequestIdMiddleware:
    """Give every request an id (or keep the proxy's) for the logs and the response."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _safe_id(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        # Kept until the response is finished (not just until the view returns), so that
        # Django's own request log lines carry the id too.
        request_context.set({"request_id": request_id, "request": request})
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _safe_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.replace("-", "").isalnum()


class BodySizeLimitMiddleware:
    """Refuse oversized bodies with 413 before anything reads them."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BYTES:
            return render(
                request,
                "413.html",
                {"limit_mb": settings.MAX_REQUEST_BYTES // (1024 * 1024)},
                status=413,
            )
        return self.get_response(request)
