"""API tokens of senders (stored as SHA-256 hashes only) and per-token throttling."""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from triage.models import ApiRequestWindow, ApiToken, Sender
from triage.services import ServiceError

# A recognisable prefix, so that a leaked token is easy to find in logs and repositories.
TOKEN_PREFIX = "rp_"  # noqa: S105 (not a secret)
WINDOW = timedelta(minutes=1)
# Old counters are deleted when a token opens a new window; an hour is kept for inspection.
WINDOW_RETENTION = timedelta(hours=1)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(
    *, sender: Sender, label: str, user: AbstractBaseUser, token: ApiToken | None = None
) -> tuple[ApiToken, str]:
    """Issue a token for a sender; the secret is returned once and only its hash is kept.

    `token` may be an unsaved instance (the admin's form object) to fill in.
    """
    if not sender.is_active:
        raise ServiceError(_("Avsändaren är inaktiv; aktivera den innan en nyckel skapas."))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = token or ApiToken()
    token.sender = sender
    token.label = label.strip()
    token.token_prefix = secret[:10]
    token.token_hash = token_hash(secret)
    token.created_by = user
    token.created_at = timezone.now()
    token._history_user = user
    token._change_reason = _("API-nyckel skapad")
    with transaction.atomic():
        token.save()
    return token, secret


def api_token_revoke(*, token: ApiToken, user: AbstractBaseUser) -> ApiToken:
    """Revoke a token at once; a revoked token is kept (history) but never accepted again."""
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.revoked_by = user
            locked._history_user = user
            locked._change_reason = _("API-nyckel återkallad")
            locked.save()
    return locked


def api_token_authenticate(authorization: str) -> ApiToken | None:
    """The active token of an active sender named by an `Authorization: Bearer` header."""
    scheme, _space, secret = (authorization or "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > 200:
        return None
    return (
        ApiToken.objects.select_related("sender", "sender__user")
        .filter(token_hash=token_hash(secret), revoked_at__isnull=True, sender__is_active=True)
        .first()
    )


def api_throttle_hit(*, token: ApiToken, now: datetime | None = None) -> int | None:
    """Count one request; the seconds to wait when the token is over its sender's limit.

    A fixed one-minute window counted in the database, so that every server process
    shares the same count.
    """
    now = now or timezone.now()
    window_start = now.replace(second=0, microsecond=0)
    windows = ApiRequestWindow.objects.filter(token=token, window_start=window_start)
    with transaction.atomic():
        # Counter rows are not tracked models, so an update query is the right tool here.
        if not windows.update(request_count=F("request_count") + 1):
            try:
                with transaction.atomic():
                    ApiRequestWindow.objects.create(
                        token=token, window_start=window_start, request_count=1
                    )
            except IntegrityError:
                windows.update(request_count=F("request_count") + 1)
            else:
                ApiRequestWindow.objects.filter(
                    token=token, window_start__lt=window_start - WINDOW_RETENTION
                ).delete()
        count = windows.values_list("request_count", flat=True).get()
    if count <= token.sender.requests_per_minute:
        return None
    return max(1, math.ceil((window_start + WINDOW - now).total_seconds()))
