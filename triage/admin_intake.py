"""Admin for department heads: sending systems, their API tokens, and the inbox of rejected
messages (show raw content and error, re-process after a correction, dismiss with a reason).

Every write goes through a service in triage.importers with the user and a reason; nothing
here is ever deleted (senders are deactivated, tokens revoked, messages dismissed).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from simple_history.admin import SimpleHistoryAdmin

from triage.importers import inbox, intake, tokens
from triage.models import ApiToken, InboxMessage, IntakeMessage, Sender
from triage.services import ServiceError

# The raw content shown on the page; a larger message is cut with a note (the stored bytes
# are never cut).
RAW_DISPLAY_LIMIT = 200_000


class ReadOnlyHistoryAdmin(SimpleHistoryAdmin):
    """History is shown, never reverted; nothing is deleted."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        return HttpResponseRedirect(
            reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_history", args=[object_id])
        )


def raw_as_text(raw: bytes) -> tuple[str, str]:
    """The bytes as readable text and a note on how they were read; bytes that are not
    UTF-8 are shown as \\xNN, so nothing is silently shown garbled."""
    data = bytes(raw)
    note = ""
    if len(data) > RAW_DISPLAY_LIMIT:
        data = data[:RAW_DISPLAY_LIMIT]
        note = _("Visar de första %(n)d byten.") % {"n": RAW_DISPLAY_LIMIT}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "backslashreplace")
        note = " ".join(
            [note, _("Innehållet är inte UTF-8; byte som inte är UTF-8 visas som \\xNN.")]
        ).strip()
    # HL7 segments end in CR only; show one segment a line.
    return text.replace("\r\n", "\n").replace("\r", "\n"), note


def _raw_block(raw: bytes):
    text, note = raw_as_text(raw)
    return format_html(
        '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre>{}',
        text,
        format_html("<p><em>{}</em></p>", note) if note else "",
    )


# --- Senders ---------------------------------------------------------------------------------


class SenderForm(forms.ModelForm):
    change_reason = forms.CharField(
        label=gettext_lazy("Skäl till ändringen"),
        max_length=100,
        help_text=gettext_lazy("Sparas i historiken tillsammans med ditt namn."),
    )

    class Meta:
        model = Sender
        fields = [
            "name",
            "description",
            "default_charset",
            "order_number_system",
            "requests_per_minute",
            "is_active",
        ]


@admin.register(Sender)
class SenderAdmin(ReadOnlyHistoryAdmin):
    form = SenderForm
    list_display = [
        "name",
        "description",
        "is_active",
        "default_charset",
        "requests_per_minute",
        "open_inbox_messages",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "description"]

    def get_readonly_fields(self, request, obj=None):
        # The name is on every referral the sender has sent; renaming would orphan them.
        return ["name"] if obj is not None else []

    def save_model(self, request, obj, form, change) -> None:
        intake.sender_save(sender=obj, user=request.user, reason=form.cleaned_data["change_reason"])

    @admin.display(description=gettext_lazy("Avvisade meddelanden"))
    def open_inbox_messages(self, obj: Sender) -> int:
        return obj.inbox_messages.filter(status=InboxMessage.Status.REJECTED).count()


# --- API tokens ------------------------------------------------------------------------------


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["sender", "label"]

    def clean_sender(self) -> Sender:
        sender = self.cleaned_data["sender"]
        if not sender.is_active:
            raise forms.ValidationError(
                _("Avsändaren är inaktiv; aktivera den innan en nyckel skapas.")
            )
        return sender


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyHistoryAdmin):
    form = ApiTokenForm
    list_display = [
        "sender",
        "label",
        "token_prefix",
        "created_by",
        "created_at",
        "revoked_at",
        "active",
    ]
    list_filter = ["sender", ("revoked_at", admin.EmptyFieldListFilter)]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "sender",
            "label",
            "token_prefix",
            "created_by",
            "created_at",
            "revoked_at",
            "revoked_by",
        ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["sender", "label"]
        return self.get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return  # a token is never edited: it is created or revoked
        _token, secret = tokens.api_token_create(
            sender=obj.sender, label=obj.label, user=request.user, token=obj
        )
        messages.warning(
            request,
            format_html(
                "{} <code>{}</code> {}",
                _("Ny API-nyckel för %(sender)s:") % {"sender": obj.sender},
                secret,
                _("Kopiera den nu – den visas aldrig igen och kan inte återskapas."),
            ),
        )

    @admin.display(description=gettext_lazy("aktiv"), boolean=True)
    def active(self, obj: ApiToken) -> bool:
        return obj.is_active

    @admin.action(
        description=gettext_lazy("Återkalla markerade API-nycklar"), permissions=["change"]
    )
    def revoke(self, request, queryset) -> None:
        for token in queryset:
            tokens.api_token_revoke(token=token, user=request.user)
        self.message_user(request, _("%(n)d API-nycklar återkallade.") % {"n": queryset.count()})


# --- Inbox -----------------------------------------------------------------------------------


class InboxMessageForm(forms.ModelForm):
    ACTIONS = [
        ("", gettext_lazy("Spara bara korrigeringen")),
        (
            "reprocess",
            gettext_lazy("Ombearbeta (korrigerat innehåll om det finns, annars originalet)"),
        ),
        ("dismiss", gettext_lazy("Avför med motivering")),
    ]
    action = forms.ChoiceField(label=gettext_lazy("Åtgärd"), choices=ACTIONS, required=False)
    reason = forms.CharField(
        label=gettext_lazy("Motivering till avförande"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
    )

    class Meta:
        model = InboxMessage
        fields = ["corrected_text"]
        widgets = {"corrected_text": forms.Textarea(attrs={"rows": 14, "cols": 100})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.instance.corrected_text:
            # Start from what arrived, so a correction is an edit and not a retyping.
            self.initial["corrected_text"] = raw_as_text(self.instance.raw)[0]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("action") == "dismiss" and not cleaned.get("reason", "").strip():
            self.add_error("reason", _("Ange varför meddelandet avförs."))
        return cleaned


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyHistoryAdmin):
    form = InboxMessageForm
    list_display = [
        "received_at",
        "sender",
        "format",
        "origin",
        "order_number",
        "status",
        "short_error",
        "delivery_count",
    ]
    list_filter = ["status", "format", "sender"]
    search_fields = ["origin", "message_id", "order_number", "error"]
    date_hierarchy = "received_at"
    actions = ["reprocess_selected"]
    INFO_FIELDS = [
        "sender",
        "format",
        "status",
        "received_at",
        "last_received_at",
        "delivery_count",
        "origin",
        "message_id",
        "order_number",
    ]
    HANDLING_FIELDS = ["handled_by", "handled_at", "dismiss_reason", "referral"]

    def has_add_permission(self, request) -> bool:
        return False  # messages arrive from senders, never typed in

    def get_readonly_fields(self, request, obj=None):
        fields = [*self.INFO_FIELDS, "error", "raw_content", *self.HANDLING_FIELDS]
        if obj is not None and obj.status != InboxMessage.Status.REJECTED:
            fields.append("corrected_text")
        return fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": self.INFO_FIELDS}),
            (_("Fel"), {"fields": ["error"]}),
            (_("Råinnehåll (som det togs emot)"), {"fields": ["raw_content"]}),
        ]
        if obj is not None and obj.status == InboxMessage.Status.REJECTED:
            fieldsets.append(
                (
                    _("Åtgärd"),
                    {
                        "fields": ["corrected_text", "action", "reason"],
                        "description": _(
                            "Rätta innehållet (eller avsändarens inställning) och ombearbeta, "
                            "eller avför meddelandet med en motivering."
                        ),
                    },
                )
            )
        else:
            fieldsets.append(
                (_("Hantering"), {"fields": ["corrected_text", *self.HANDLING_FIELDS]})
            )
        return fieldsets

    @admin.display(description=gettext_lazy("fel"))
    def short_error(self, obj: InboxMessage) -> str:
        return obj.error if len(obj.error) <= 120 else obj.error[:119] + "…"

    @admin.display(description=gettext_lazy("råinnehåll"))
    def raw_content(self, obj: InboxMessage):
        return _raw_block(obj.raw)

    def save_model(self, request, obj, form, change) -> None:
        action = form.cleaned_data.get("action")
        corrected = form.cleaned_data.get("corrected_text", "")
        edited = "corrected_text" in form.changed_data
        try:
            if action == "reprocess":
                self._report(
                    request,
                    inbox.inbox_reprocess(
                        message=obj, user=request.user, corrected_text=corrected if edited else None
                    ),
                )
            elif action == "dismiss":
                inbox.inbox_dismiss(
                    message=obj, user=request.user, reason=form.cleaned_data["reason"]
                )
                messages.success(request, _("Meddelandet är avfört."))
            elif edited:
                inbox.inbox_correct(message=obj, user=request.user, corrected_text=corrected)
        except ServiceError as error:
            messages.error(request, str(error))

    def _report(self, request, results) -> None:
        for result in results:
            level = messages.ERROR if result.rejected else messages.SUCCESS
            messages.add_message(request, level, f"{result.origin}: {result.describe()}")

    @admin.action(
        description=gettext_lazy("Ombearbeta markerade meddelanden"), permissions=["change"]
    )
    def reprocess_selected(self, request, queryset) -> None:
        for message in queryset.filter(status=InboxMessage.Status.REJECTED):
            self._report(request, inbox.inbox_reprocess(message=message, user=request.user))


@admin.register(IntakeMessage)
class IntakeMessageAdmin(admin.ModelAdmin):
    """The log of messages taken in: what arrived, when, and what became of it."""

    list_display = ["received_at", "sender", "format", "label", "outcome_summary"]
    list_filter = ["format", "sender"]
    search_fields = ["label", "message_key"]
    date_hierarchy = "received_at"
    fields = [
        "sender",
        "format",
        "label",
        "message_key",
        "content_hash",
        "received_at",
        "outcome_summary",
        "warnings",
        "raw_content",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=gettext_lazy("utfall"))
    def outcome_summary(self, obj: IntakeMessage) -> str:
        return ", ".join(
            f"{intake.OUTCOME_LABELS.get(item.get('outcome'), item.get('outcome'))} "
            f"({item.get('order_number')})"
            for item in obj.outcome
        )

    @admin.display(description=gettext_lazy("råinnehåll"))
    def raw_content(self, obj: IntakeMessage):
        return _raw_block(obj.raw)
