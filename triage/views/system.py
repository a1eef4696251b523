"""Health check and error pages: Swedish, and 503 rather than 500 when the database is away."""

from __future__ import annotations

import sys

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """For the load balancer: 200 when the database answers, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": False}, status=503)
    return JsonResponse({"status": "ok", "database": True})


def server_error(request: HttpRequest) -> HttpResponse:
    """500 handler; a lost database connection is a temporary outage (503), not a bug."""
    error = sys.exc_info()[1]
    if isinstance(error, DatabaseError):
        # Drop the broken connection so that the next request reconnects by itself.
        connection.close_if_unusable_or_obsolete()
        body = loader.get_template("503.html").render()
        return HttpResponse(body, status=503, headers={"Retry-After": "10"})
    return HttpResponse(loader.get_template("500.html").render(), status=500)
