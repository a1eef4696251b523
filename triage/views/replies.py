"""The reply to the referrer: drafted from a template, edited, finalised, printed."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from triage import services
from triage.forms import ReplyForm
from triage.models import AccessLog, Assessment, Referral, Reply, ReplyTemplate
from triage.permissions import Role, role_required
from triage.selectors import draft_reply


def _referral(pk: int) -> Referral:
    return get_object_or_404(Referral.objects.select_related("patient"), pk=pk)


def _draft(
    referral: Referral, assessment: Assessment | None, template: ReplyTemplate | None
) -> tuple[ReplyTemplate | None, str]:
    if assessment is None:
        return draft_reply(
            referral,
            action="return",
            priority_weeks=None,
            recommendation=None,
            template=template,
            kind="missing_information",
        )
    return draft_reply(
        referral,
        action=assessment.action,
        priority_weeks=assessment.priority_weeks,
        recommendation=assessment.recommendation,
        template=template,
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.RADIOLOGIST)
def reply_edit(request: HttpRequest, pk: int) -> HttpResponse:
    referral = _referral(pk)
    # The reply belongs to the current step: the request for more information while the
    # referral waits for it, otherwise the latest decision. A new decision gets a new reply.
    if referral.status == Referral.Status.AWAITING_INFORMATION:
        assessment = None
    else:
        assessment = referral.assessments.first()
        if assessment is None:
            messages.info(request, _("Remissen har inget beslut ännu; bedöm den först."))
            return redirect("triage:referral", pk=pk)
    reply = referral.replies.select_related("template").filter(assessment=assessment).first()
    if reply is not None and reply.is_final:
        return redirect("triage:reply_print", pk=pk, reply_pk=reply.pk)

    if request.method == "POST":
        form = ReplyForm(request.POST)
        if form.is_valid():
            final = "finalize" in request.POST
            try:
                reply = services.reply_save(
                    referral=referral,
                    assessment=assessment,
                    template=form.cleaned_data["template"],
                    text=form.cleaned_data["text"],
                    user=request.user,
                    final=final,
                    reply=reply,
                )
            except services.ServiceError as error:
                form.add_error(None, str(error))
            else:
                if final:
                    messages.success(request, _("Svaret är slutfört."))
                    return redirect("triage:reply_print", pk=pk, reply_pk=reply.pk)
                messages.success(request, _("Utkastet är sparat."))
                return redirect("triage:reply", pk=pk)
        status = 400
    else:
        chosen = None
        if "mall" in request.GET:
            chosen = ReplyTemplate.objects.filter(
                pk=_int(request.GET["mall"]), is_active=True
            ).first()
        if request.GET.get("mall") == "0":
            template, text = None, ""  # "Ingen mall (fritext)"
        elif reply is not None and chosen is None:
            template, text = reply.template, reply.text
        else:
            template, text = _draft(referral, assessment, chosen)
        form = ReplyForm(initial={"template": template, "text": text})
        status = 200

    services.access_log_write(
        user=request.user,
        action=AccessLog.Action.READ,
        view="reply",
        patient_referrals=[(referral.patient_id, referral.pk)],
    )
    return render(
        request,
        "triage/reply_form.html",
        {
            "referral": referral,
            "patient": referral.patient,
            "assessment": assessment,
            "reply": reply,
            "form": form,
            "templates": ReplyTemplate.objects.filter(is_active=True),
        },
        status=status,
    )


@role_required(Role.RADIOLOGIST)
def reply_print(request: HttpRequest, pk: int, reply_pk: int) -> HttpResponse:
    referral = _referral(pk)
    reply = get_object_or_404(
        Reply.objects.select_related("author", "assessment"), pk=reply_pk, referral=referral
    )
    services.access_log_write(
        user=request.user,
        action=AccessLog.Action.PRINT,
        view="reply_print",
        patient_referrals=[(referral.patient_id, referral.pk)],
    )
    return render(
        request,
        "triage/reply_print.html",
        {
            "referral": referral,
            "patient": referral.patient,
            "reply": reply,
            "care_unit": settings.CARE_UNIT,
        },
    )


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None
