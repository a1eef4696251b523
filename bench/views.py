"""Baselines for the benchmark's ratios: the same request path with the work in question
taken out. Only bench/urls.py routes to them; production never imports this module."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from triage import rules, services
from triage.forms import TriageForm, assessment_input_from, initial_from_assessment
from triage.models import AccessLog, Flag
from triage.permissions import Role, role_required
from triage.selectors import (
    WorklistFilters,
    active_guideline,
    facts_from_signed_context,
    prior_imaging_before,
    recommendation_fingerprint,
    sign_rule_context,
    worklist_page,
)
from triage.views.referral import _derived_flags, _latest_assessment, _referral
from triage.views.worklist import WorklistFilterForm, _status_choices


@login_required
def hello(request: HttpRequest) -> HttpResponse:
    """A logged-in request and nothing else: session, user, every middleware."""
    return HttpResponse("hello", content_type="text/plain")


@role_required(Role.RADIOLOGIST)
def worklist_queries(request: HttpRequest) -> HttpResponse:
    """triage.views.worklist._worklist's queries and access-log write, without the page."""
    form = WorklistFilterForm(request.GET or None, status_choices=_status_choices())
    filters = WorklistFilters()
    if form.is_bound and form.is_valid():
        filters = WorklistFilters(**form.cleaned_data)
    try:
        page_number = int(request.GET.get("page", "1"))
    except ValueError:
        page_number = 1
    page = worklist_page(filters, user=request.user, today=timezone.localdate(), page=page_number)
    services.access_log_write(
        user=request.user,
        action=AccessLog.Action.READ,
        view="worklist",
        patient_referrals=[(row.patient_id, row.pk) for row in page.rows],
    )
    return HttpResponse(f"{len(page.rows)} {page.total}", content_type="text/plain")


@role_required(Role.RADIOLOGIST)
def triage_plain(request: HttpRequest, pk: int) -> HttpResponse:
    """The triage page's reads, writes and form (triage.views.referral._page for a GET of a
    referral already in triage), rendered plainly with {{ form }}."""
    referral = _referral(pk)
    services.access_log_write(
        user=request.user,
        action=AccessLog.Action.READ,
        view="referral",
        patient_referrals=[(referral.patient_id, referral.pk)],
    )
    prior_imaging = prior_imaging_before(referral.patient_id, referral.written_on)
    guideline = active_guideline()
    latest = _latest_assessment(referral)
    flags = list(Flag.objects.all())
    derived = _derived_flags(referral)
    context_token = sign_rule_context(referral, prior_imaging, guideline)
    initial = initial_from_assessment(latest, derived)
    initial.update(version=referral.version, guideline=guideline.pk, context=context_token)
    form = TriageForm(initial=initial, flags=flags, derived_flags=derived)
    facts, params = facts_from_signed_context(
        context_token, assessment_input_from(initial), referral_id=referral.pk
    )
    form.initial["shown"] = recommendation_fingerprint(rules.recommend(facts, params))
    return render(request, "bench/triage_plain.html", {"form": form})
