"""The worklist: referrals waiting for triage, and "Ta nästa"."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from triage import services
from triage.forms import WorklistFilterForm
from triage.models import AccessLog, Referral
from triage.permissions import Role, role_required, user_role_names
from triage.selectors import WorklistFilters, WorklistPage, worklist_page


def _status_choices() -> list[tuple[str, str]]:
    return [("", _("Att hantera")), ("all", _("Alla")), *Referral.Status.choices]


def worklist(request: HttpRequest) -> HttpResponse:
    """The start page: the worklist for radiologists; others go to their own start page."""
    roles = user_role_names(request.user) if request.user.is_authenticated else set()
    if Role.RADIOLOGIST not in roles:
        if Role.AUDITOR in roles:
            return redirect("audit:timeline")
        if Role.DEPARTMENT_HEAD in roles or request.user.is_superuser:
            return redirect("admin:index")
    return _worklist(request)


def worklist_rows(request: HttpRequest) -> tuple[WorklistFilterForm, WorklistFilters, WorklistPage]:
    """The filter form, the filters and the page of the request, with the patients shown
    logged as read (shared with the benchmark's baseline for this page)."""
    form = WorklistFilterForm(request.GET or None, status_choices=_status_choices())
    filters = WorklistFilters()
    if form.is_bound and form.is_valid():
        filters = WorklistFilters(**form.cleaned_data)
    try:
        page_number = int(request.GET.get("page", "1"))
    except ValueError:
        page_number = 1
    page = worklist_page(filters, user=request.user, today=timezone.localdate(), page=page_number)
    # Each row shows a patient: that is a read of patient data and is logged before showing.
    services.access_log_write(
        user=request.user,
        action=AccessLog.Action.READ,
        view="worklist",
        patient_referrals=[(row.patient_id, row.pk) for row in page.rows],
    )
    return form, filters, page


@role_required(Role.RADIOLOGIST)
def _worklist(request: HttpRequest) -> HttpResponse:
    form, filters, page = worklist_rows(request)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "triage/worklist_list.html",
        {
            "form": form,
            "page": page,
            "today": timezone.localdate(),
            "query": query.urlencode(),
            "status_labels": Referral.Status.choices,
            "current_status": filters.status,
        },
    )


@require_POST
@role_required(Role.RADIOLOGIST)
def take_next(request: HttpRequest) -> HttpResponse:
    referral = services.referral_claim_next(user=request.user)
    if referral is None:
        messages.info(request, _("Det finns inga nya remisser att ta."))
        return redirect("triage:worklist")
    return redirect("triage:referral", pk=referral.pk)
