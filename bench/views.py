"""Baselines for the benchmark's ratios: the same request path with the work in question
taken out. Only bench/urls.py routes to them; production never imports this module."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.template.backends.django import DjangoTemplates

from triage.permissions import Role, role_required
from triage.views import referral as referral_views
from triage.views.worklist import worklist_rows


@login_required
def hello(request: HttpRequest) -> HttpResponse:
    """A logged-in request and nothing else: session, user, every middleware."""
    return HttpResponse("hello", content_type="text/plain")


@role_required(Role.RADIOLOGIST)
def worklist_queries(request: HttpRequest) -> HttpResponse:
    """triage.views.worklist._worklist's queries and access-log write, without the page."""
    _form, _filters, page = worklist_rows(request)
    return HttpResponse(f"{len(page.rows)} {page.total}", content_type="text/plain")


# A second template engine, as configured for production except that `crispy_forms_tags`
# is bench/templatetags/plain_forms.py: Django's plain form rendering under crispy's names.
_PLAIN_FORMS = DjangoTemplates(
    {
        **{key: value for key, value in settings.TEMPLATES[0].items() if key != "BACKEND"},
        "NAME": "plain_forms",
        "OPTIONS": {
            **settings.TEMPLATES[0].get("OPTIONS", {}),
            "libraries": {"crispy_forms_tags": "bench.templatetags.plain_forms"},
        },
    }
)


def _render_plain(request, template_name, context=None, status=None):
    html = _PLAIN_FORMS.get_template(template_name).render(context, request)
    return HttpResponse(html, status=status)


def triage_plain(request: HttpRequest, pk: int) -> HttpResponse:
    """The triage page exactly as triage.views.referral renders it (same view code, reads,
    writes and template), with every crispy form rendered plainly by Django instead."""
    original = referral_views.render
    referral_views.render = _render_plain  # single-threaded benchmark: no other request
    try:
        return referral_views.referral_detail(request, pk)
    finally:
        referral_views.render = original
