"""Session idle timeout without a session write on every request."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.utils.translation import gettext as _

LAST_ACTIVITY = "last_activity"
# Refresh the stored activity time at most this often: a write per minute, not per request.
REFRESH_SECONDS = 60


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
