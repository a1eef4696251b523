"""Admin for department heads: reply templates, routine parameters, the flag catalogue.

Every save goes through a service with the user and a written reason, so the history says
who changed what and why. History can be read here but never reverted or deleted.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from triage import (
    admin_intake,  # registers the intake models (senders, tokens, inbox)
    services,
)
from triage.models import AccessLog, Flag, GuidelineVersion, Referral, ReplyTemplate, Role
from triage.reply_text import PLACEHOLDERS, TemplateBodyError, check_body, render_body
from triage.selectors import reply_values

admin.site.site_header = gettext_lazy("Remissprio – administration")
admin.site.site_title = gettext_lazy("Remissprio")
admin.site.index_title = gettext_lazy("Mallar, rutinens parametrar och behörigheter")


class ChangeReasonForm(forms.ModelForm):
    change_reason = forms.CharField(
        label=gettext_lazy("Skäl till ändringen"),
        max_length=200,
        help_text=gettext_lazy("Sparas i historiken tillsammans med ditt namn."),
    )


class ServiceSavedAdmin(admin_intake.ReadOnlyHistoryAdmin):
    """Saves through a service with the reason from the form; never deletes or reverts."""

    service = None  # set by subclasses: a services.*_save function

    def save_model(self, request, obj, form, change) -> None:
        type(self).service(
            **{self.service_argument: obj},
            user=request.user,
            reason=form.cleaned_data["change_reason"],
        )


# --- Reply templates -------------------------------------------------------------------


def _placeholder_help() -> str:
    rows = format_html_join(
        "",
        "<li><code>{{{}}}</code> – {}</li>",
        ((name, text) for name, text in PLACEHOLDERS.items()),
    )
    return format_html(
        "{}<ul>{}</ul>",
        _("Platshållare som får användas (skrivs med klammerparenteser):"),
        rows,
    )


class ReplyTemplateForm(ChangeReasonForm):
    class Meta:
        model = ReplyTemplate
        fields = ["kind", "title", "body", "position", "is_active"]
        widgets = {"body": forms.Textarea(attrs={"rows": 12, "cols": 90})}

    def clean_body(self) -> str:
        body = self.cleaned_data["body"]
        try:
            check_body(body)
        except TemplateBodyError as error:
            raise forms.ValidationError(str(error)) from error
        return body


@admin.register(ReplyTemplate)
class ReplyTemplateAdmin(ServiceSavedAdmin):
    form = ReplyTemplateForm
    service = services.reply_template_save
    service_argument = "template"
    list_display = ["title", "kind", "position", "is_active", "preview_link"]
    list_filter = ["kind", "is_active"]
    search_fields = ["title", "body"]
    actions = ["activate", "deactivate"]

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["kind", "title", "position", "is_active"]}),
            (_("Text"), {"fields": ["body"], "description": _placeholder_help()}),
            (None, {"fields": ["change_reason"]}),
        ]

    @admin.display(description=gettext_lazy("Förhandsgranska"))
    def preview_link(self, obj: ReplyTemplate) -> str:
        url = reverse("admin:triage_replytemplate_preview", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Förhandsgranska"))

    @admin.action(description=gettext_lazy("Aktivera markerade mallar"))
    def activate(self, request, queryset) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description=gettext_lazy("Inaktivera markerade mallar"))
    def deactivate(self, request, queryset) -> None:
        self._set_active(request, queryset, False)

    def _set_active(self, request, queryset, active: bool) -> None:
        reason = _("Aktiverad i admin") if active else _("Inaktiverad i admin")
        for template in queryset:
            template.is_active = active
            services.reply_template_save(template=template, user=request.user, reason=reason)
        self.message_user(request, _("%(n)d mallar uppdaterade.") % {"n": queryset.count()})

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("<int:pk>/forhandsgranska/", preview, name="triage_replytemplate_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The template rendered against a referral the department head picks."""
        template = get_object_or_404(ReplyTemplate, pk=pk)
        if not self.has_view_or_change_permission(request, template):
            raise PermissionDenied
        order = request.GET.get("remiss", "").strip()
        referral = None
        text = ""
        if order:
            referral = Referral.objects.select_related("patient").filter(order_number=order).first()
            if referral is None:
                messages.error(request, _("Ingen remiss med nummer %(n)s.") % {"n": order})
            else:
                services.access_log_write(
                    user=request.user,
                    action=AccessLog.Action.READ,
                    view="template_preview",
                    patient_referrals=[(referral.patient_id, referral.pk)],
                )
                latest = referral.assessments.first()
                values = reply_values(
                    referral,
                    action=latest.action if latest else None,
                    priority_weeks=latest.priority_weeks if latest else None,
                    suggest=(latest.recommendation.get("suggest") if latest else None),
                    missing=_("(exempel på saknade uppgifter)"),
                )
                text = render_body(template.body, values)
        else:
            text = render_body(template.body, {name: f"[{name}]" for name in PLACEHOLDERS})
        return TemplateResponse(
            request,
            "admin/triage/replytemplate_preview.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "template_obj": template,
                "referral": referral,
                "order": order,
                "text": text,
                "title": _("Förhandsgranska: %(title)s") % {"title": template.title},
            },
        )


# --- Guideline versions -------------------------------------------------------------------


class GuidelineVersionForm(ChangeReasonForm):
    class Meta:
        model = GuidelineVersion
        fields = ["label", "valid_from", "note", *GuidelineVersion.PARAMETER_FIELDS]


@admin.register(GuidelineVersion)
class GuidelineVersionAdmin(ServiceSavedAdmin):
    form = GuidelineVersionForm
    service = services.guideline_version_save
    service_argument = "version"
    list_display = ["label", "valid_from", "is_active", *GuidelineVersion.PARAMETER_FIELDS]
    actions = ["activate"]
    change_list_template = "admin/triage/guidelineversion_change_list.html"

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["label", "valid_from", "note"]}),
            (_("Parametrar"), {"fields": list(GuidelineVersion.PARAMETER_FIELDS)}),
            (None, {"fields": ["change_reason"]}),
        ]

    def has_change_permission(self, request, obj=None) -> bool:
        # An active or used version is frozen so that old decisions keep their meaning.
        if obj is not None and (obj.is_active or obj.assessment_set.exists()):
            return False
        return super().has_change_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return False  # new versions start as a copy of the active one ("Ny version")

    @admin.action(description=gettext_lazy("Aktivera vald version"))
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, _("Välj exakt en version."), messages.ERROR)
            return
        version = queryset.get()
        services.guideline_activate(
            version=version, user=request.user, reason=_("Aktiverad i admin")
        )
        self.message_user(request, _("Version %(label)s är nu aktiv.") % {"label": version.label})

    def get_urls(self):
        copy = self.admin_site.admin_view(self.copy_view)
        return [
            path("ny-version/", copy, name="triage_guidelineversion_copy"),
            *super().get_urls(),
        ]

    def copy_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or not super().has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:triage_guidelineversion_changelist"))
        version = services.guideline_version_copy(
            user=request.user, reason=_("Ny version skapad som kopia")
        )
        self.message_user(
            request, _("Version %(label)s skapad; ändra och aktivera.") % {"label": version.label}
        )
        return HttpResponseRedirect(
            reverse("admin:triage_guidelineversion_change", args=[version.pk])
        )


# --- Flag catalogue -----------------------------------------------------------------------


class FlagForm(ChangeReasonForm):
    class Meta:
        model = Flag
        fields = ["label", "position"]


@admin.register(Flag)
class FlagAdmin(ServiceSavedAdmin):
    form = FlagForm
    service = services.flag_save
    service_argument = "flag"
    list_display = ["label", "code", "kind", "position"]
    list_filter = ["kind"]
    readonly_fields = ["code", "kind"]
    fields = ["code", "kind", "label", "position", "change_reason"]

    def has_add_permission(self, request) -> bool:
        return False  # the codes are the routine's


# --- Access log and roles ------------------------------------------------------------------


@admin.register(AccessLog)
class AccessLogAdmin(admin.ModelAdmin):
    """Read-only: nobody, superusers included, can add, change or delete a log row."""

    list_display = ["at", "user", "role", "action", "patient", "referral", "care_unit", "view"]
    list_filter = ["action", "care_unit"]
    list_select_related = ["user", "patient", "referral"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["group", "description"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StaffUserAdmin(UserAdmin):
    """Accounts are deactivated, never deleted, so that history keeps its authors."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
