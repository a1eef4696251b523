"""The triage page: the referral, the facts form, the live recommendation and the decision."""

from __future__ import annotations

from django.contrib import messages
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from triage import rules, services
from triage.forms import (
    InformationReceivedForm,
    InformationRequestForm,
    PriorImagingForm,
    TriageForm,
    assessment_input_from,
    initial_from_assessment,
)
from triage.models import AccessLog, Assessment, Flag, Referral
from triage.permissions import Role, role_required
from triage.selectors import (
    active_guideline,
    facts_from_signed_context,
    prior_imaging_before,
    recommendation_fingerprint,
    sign_rule_context,
)

DECIDABLE = {Referral.Status.NEW, Referral.Status.IN_TRIAGE, Referral.Status.ESCALATED}


def _referral(pk: int) -> Referral:
    return get_object_or_404(Referral.objects.select_related("patient", "assigned_to"), pk=pk)


def _latest_assessment(referral: Referral) -> Assessment | None:
    return (
        referral.assessments.select_related("decided_by", "guideline_version")
        .prefetch_related("flags")
        .first()
    )


def _derived_flags(referral: Referral) -> frozenset[str]:
    return (
        frozenset({"child_under_18"}) if referral.patient_age() < rules.CHILD_AGE else frozenset()
    )


def _page(
    request: HttpRequest,
    referral: Referral,
    *,
    form: TriageForm | None = None,
    imaging_form: PriorImagingForm | None = None,
    information_form: InformationRequestForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render the triage page; every render is logged as a read of the patient's data."""
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
    if form is None:
        initial = initial_from_assessment(latest, derived)
        initial.update(version=referral.version, guideline=guideline.pk, context=context_token)
        form = TriageForm(initial=initial, flags=flags, derived_flags=derived)
        entered = assessment_input_from(initial)
    else:
        # Re-rendered after a refused save: keep what the radiologist typed, with fresh
        # version and context so that the next save is checked against the current state.
        form.data = form.data.copy()
        form.data.update(
            {"context": context_token, "version": referral.version, "guideline": guideline.pk}
        )
        entered = assessment_input_from(getattr(form, "cleaned_data", {}))
    facts, params = facts_from_signed_context(context_token, entered, referral_id=referral.pk)
    recommendation = rules.recommend(facts, params)
    fingerprint = recommendation_fingerprint(recommendation)
    if form.is_bound:
        form.data["shown"] = fingerprint
    else:
        form.initial["shown"] = fingerprint
    return render(
        request,
        "triage/referral_detail.html",
        {
            "referral": referral,
            "patient": referral.patient,
            "age": referral.patient_age(),
            "prior_imaging": prior_imaging,
            "form": form,
            "imaging_form": imaging_form or PriorImagingForm(),
            "information_form": information_form or InformationRequestForm(),
            "received_form": InformationReceivedForm(),
            "recommendation": recommendation,
            "fingerprint": fingerprint,
            "latest": latest,
            "guideline": guideline,
            "can_decide": referral.status in DECIDABLE,
            "actions": rules.ACTIONS,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.RADIOLOGIST)
def referral_detail(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    if request.method == "GET":
        # Reading a referral does not claim it ("Ta nästa" and deciding do); a radiologist
        # sees when a colleague has it.
        if referral.assigned_to_id not in (None, request.user.pk) and referral.status == (
            Referral.Status.IN_TRIAGE
        ):
            messages.warning(
                request,
                _("%(name)s bedömer den här remissen just nu.")
                % {"name": referral.assigned_to.get_full_name() or referral.assigned_to},
            )
        return _page(request, referral)

    form = TriageForm(
        request.POST, flags=list(Flag.objects.all()), derived_flags=_derived_flags(referral)
    )
    if not form.is_valid():
        messages.error(request, _("Beslutet sparades inte: rätta de markerade fälten."))
        return _page(request, referral, form=form, status=400)
    accept = "accept" in request.POST
    data = form.cleaned_data
    action = data.get("action") or ""
    priority = data.get("priority_weeks")
    if accept:
        # "Godkänn förslaget" takes the suggestion the page showed; the service checks that
        # the engine still says the same for these facts.
        action, _sep, weeks = (data.get("shown") or ":").partition(":")
        priority = int(weeks) if weeks.isdigit() else None
    elif not action:
        form.add_error("action", _("Välj en åtgärd, eller godkänn förslaget."))
        return _page(request, referral, form=form, status=400)
    try:
        assessment = services.assessment_decide(
            referral=referral,
            entered=form.assessment_input(),
            action=action,
            priority_weeks=priority,
            override_reason=data.get("override_reason") or "",
            user=request.user,
            expected_version=data["version"],
            expected_guideline_id=data["guideline"],
            expected_fingerprint=data.get("shown") if accept else None,
        )
    except services.StaleReferral as error:
        messages.error(request, str(error))
        return _page(request, _referral(pk), form=form, status=409)
    except services.ServiceError as error:
        form.add_error(error.field if error.field in form.fields else None, str(error))
        return _page(request, referral, form=form, status=400)
    messages.success(
        request,
        _("Beslut sparat: %(action)s.") % {"action": assessment.get_action_display()},
    )
    due_date = assessment.referral.due_date  # as the decision set it, without a re-read
    if due_date and due_date < timezone.localdate():
        # The priority counts from the day the referral arrived, which can already be past.
        messages.warning(
            request,
            _("Senast-datumet %(due)s har redan passerat: boka snarast.")
            % {"due": due_date.isoformat()},
        )
    return redirect("triage:reply", pk=referral.pk)


@require_POST
@role_required(Role.RADIOLOGIST)
def recommendation_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The live suggestion for the facts in the form (htmx); reads nothing but the session."""
    form = TriageForm(request.POST, flags=[], derived_flags=frozenset())
    # Flag choices come from the routine's fixed codes, so no catalogue query is needed.
    form.fields["red_flags"].choices = list(rules.RED_FLAGS.items())
    form.fields["yellow_flags"].choices = list(rules.YELLOW_FLAGS.items())
    form.fields["emergency_signs"].choices = list(rules.EMERGENCY_SIGNS.items())
    if not form.is_valid():
        return render(
            request,
            "triage/recommendation_panel.html",
            {"errors": form.errors, "invalid": True},
        )
    try:
        facts, params = facts_from_signed_context(
            form.cleaned_data["context"], form.assessment_input(), referral_id=pk
        )
    except (signing.BadSignature, KeyError, ValueError):
        return render(
            request,
            "triage/recommendation_panel.html",
            {"expired": True},
            status=400,
        )
    recommendation = rules.recommend(facts, params)
    return render(
        request,
        "triage/recommendation_panel.html",
        {
            "recommendation": recommendation,
            "fingerprint": recommendation_fingerprint(recommendation),
            "actions": rules.ACTIONS,
            "oob": True,
        },
    )


@require_POST
@role_required(Role.RADIOLOGIST)
def prior_imaging_add(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    imaging_form = PriorImagingForm(request.POST)
    if imaging_form.is_valid():
        try:
            services.prior_imaging_add(
                patient=referral.patient,
                user=request.user,
                reason=_("Tidigare undersökning tillagd vid bedömning av %(referral)s")
                % {"referral": referral},
                **imaging_form.cleaned_data,
            )
        except services.ServiceError as error:
            imaging_form.add_error(None, str(error))
        else:
            messages.success(request, _("Tidigare undersökning tillagd."))
            return redirect("triage:referral", pk=pk)
    messages.error(request, _("Undersökningen lades inte till: rätta de markerade fälten."))
    return _page(request, referral, imaging_form=imaging_form, status=400)


@require_POST
@role_required(Role.RADIOLOGIST)
def request_information(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    information_form = InformationRequestForm(request.POST)
    if information_form.is_valid():
        try:
            services.referral_request_information(
                referral=referral,
                missing=information_form.cleaned_data["missing"],
                user=request.user,
                expected_version=_int(request.POST.get("version")),
            )
        except services.ServiceError as error:
            information_form.add_error(None, str(error))
        else:
            messages.success(request, _("Komplettering begärd. Granska svarstexten."))
            return redirect("triage:reply", pk=pk)
    return _page(request, _referral(pk), information_form=information_form, status=400)


@require_POST
@role_required(Role.RADIOLOGIST)
def information_received(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    form = InformationReceivedForm(request.POST)
    if form.is_valid():
        try:
            services.referral_add_information(
                referral=referral,
                information=form.cleaned_data["information"],
                user=request.user,
                reason=_("Komplettering inkommen"),
            )
        except services.ServiceError as error:
            messages.error(request, str(error))
        else:
            messages.success(
                request, _("Kompletteringen sparad; remissen är tillbaka i arbetslistan.")
            )
            return redirect("triage:worklist")
    else:
        messages.error(request, _("Skriv in kompletteringen."))
    return redirect("triage:referral", pk=pk)


@require_POST
@role_required(Role.RADIOLOGIST)
def release(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    try:
        services.referral_set_status(
            referral=referral,
            status=Referral.Status.NEW,
            user=request.user,
            reason=_("Lämnad tillbaka till arbetslistan"),
        )
    except services.ServiceError as error:
        messages.error(request, str(error))
        return redirect("triage:referral", pk=pk)
    return redirect("triage:worklist")


@require_POST
@role_required(Role.RADIOLOGIST)
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    try:
        services.referral_set_status(
            referral=referral,
            status=Referral.Status.IN_TRIAGE,
            user=request.user,
            reason=_("Beslut öppnat igen för ny bedömning"),
            expected_version=_int(request.POST.get("version")),
        )
    except services.ServiceError as error:
        messages.error(request, str(error))
    return redirect("triage:referral", pk=pk)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@require_POST
@role_required(Role.RADIOLOGIST)
def emergency_handled(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    try:
        services.referral_emergency_handled(
            referral=referral,
            note=request.POST.get("note", "")[:2000],
            user=request.user,
            expected_version=_int(request.POST.get("version")),
        )
    except services.ServiceError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Den akuta remissen är markerad som handlagd i dag."))
    return redirect("triage:referral", pk=pk)
