"""The auditor's workspace: timeline, per-referral record, CSV export, access log and extract.

Everything here only reads (GET, and GET forms). Whatever shows or exports a patient's data
writes its access-log rows first, so that if the log cannot be written nothing is shown.
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterable, Iterator
from datetime import date

from django import forms
from django.contrib import messages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from triage import services
from triage.audit import (
    AccessLogFilters,
    TimelineEntry,
    TimelineFilters,
    access_log_page,
    access_log_sample,
    patient_extract,
    patient_referrals,
    registry,
    timeline_chunks,
    timeline_page,
)
from triage.audit import referral_record as build_referral_record
from triage.models import AccessLog, Patient, Referral
from triage.permissions import Role, role_required
from triage.personnummer import PersonnummerError, parse_personnummer

# --- Filter forms ---------------------------------------------------------------------------


class _DateInput(forms.DateInput):
    input_type = "date"


def _patient_query(text: str) -> tuple[str, str]:
    """(canonical personnummer, "") for a number in any accepted form, else ("", name)."""
    text = text.strip()
    if not text:
        return "", ""
    if any(ch.isdigit() for ch in text):
        try:
            identity = parse_personnummer(text, reference_date=timezone.localdate())
        except PersonnummerError as error:
            raise forms.ValidationError(str(error)) from error
        return identity.number, ""
    return "", text


def _date_field(label) -> forms.DateField:
    # Dates far outside the log's life would overflow when turned into datetimes.
    return forms.DateField(
        label=label,
        required=False,
        widget=_DateInput,
        validators=[
            MinValueValidator(date(1900, 1, 1), gettext_lazy("Ange ett datum från år 1900.")),
            MaxValueValidator(date(2100, 12, 31), gettext_lazy("Ange ett datum före år 2101.")),
        ],
    )


class _AuditFilterForm(forms.Form):
    """Shared fields and the Bootstrap classes that the templates rely on."""

    user = forms.CharField(label=gettext_lazy("Användare (användarnamn)"), required=False)
    patient = forms.CharField(
        label=gettext_lazy("Patient (personnummer eller namn)"), required=False, max_length=100
    )
    date_from = _date_field(gettext_lazy("Från och med"))
    date_to = _date_field(gettext_lazy("Till och med"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for bound in self.fields.values():
            css = "form-select" if isinstance(bound, forms.ChoiceField) else "form-control"
            bound.widget.attrs.setdefault("class", css)

    def clean_user(self) -> str:
        return self.cleaned_data["user"].strip()

    def clean_patient(self) -> tuple[str, str]:
        return _patient_query(self.cleaned_data["patient"])

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("Slutdatumet ligger före startdatumet."))
        return data


class TimelineFilterForm(_AuditFilterForm):
    kind = forms.ChoiceField(label=gettext_lazy("Typ av objekt"), required=False)
    referral = forms.CharField(label=gettext_lazy("Remissnummer"), required=False, max_length=64)

    field_order = ["user", "date_from", "date_to", "kind", "patient", "referral"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [("", _("Alla")), *registry.choices()]

    def filters(self) -> TimelineFilters:
        data = self.cleaned_data
        number, name = data.get("patient") or ("", "")
        return TimelineFilters(
            user=data.get("user") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            kind=data.get("kind") or "",
            patient_number=number,
            patient_name=name,
            order_number=(data.get("referral") or "").strip(),
        )


class AccessLogFilterForm(_AuditFilterForm):
    action = forms.ChoiceField(label=gettext_lazy("Åtgärd"), required=False)
    sample_size = forms.IntegerField(
        label=gettext_lazy("Stickprov, antal poster"), required=False, min_value=1, max_value=1000
    )
    seed = forms.IntegerField(
        label=gettext_lazy("Frö (lämna tomt för ett nytt slumpfrö)"),
        required=False,
        min_value=0,
        max_value=2**62,
    )
    max_id = forms.IntegerField(
        label=gettext_lazy("Till och med loggpost-id"), required=False, min_value=0
    )

    field_order = ["user", "patient", "date_from", "date_to", "action"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", _("Alla")), *AccessLog.Action.choices]

    def filters(self) -> AccessLogFilters:
        data = self.cleaned_data
        number, name = data.get("patient") or ("", "")
        return AccessLogFilters(
            user=data.get("user") or "",
            patient_number=number,
            patient_name=name,
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            action=data.get("action") or "",
        )


class PatientExtractForm(forms.Form):
    personnummer = forms.CharField(
        label=gettext_lazy("Patientens personnummer eller samordningsnummer"), max_length=20
    )
    date_from = _date_field(gettext_lazy("Från och med"))
    date_to = _date_field(gettext_lazy("Till och med"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for bound in self.fields.values():
            bound.widget.attrs.setdefault("class", "form-control")

    def clean_personnummer(self) -> str:
        try:
            identity = parse_personnummer(
                self.cleaned_data["personnummer"], reference_date=timezone.localdate()
            )
        except PersonnummerError as error:
            raise forms.ValidationError(str(error)) from error
        return identity.number


def _page_number(request: HttpRequest) -> int:
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() and 0 < len(value) < 7 else 1


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


# --- Timeline -------------------------------------------------------------------------------


@require_GET
@role_required(Role.AUDITOR)
def timeline(request: HttpRequest) -> HttpResponse:
    form = TimelineFilterForm(request.GET or None)
    page = None
    if not form.is_bound or form.is_valid():
        filters = form.filters() if form.is_bound else TimelineFilters()
        page = timeline_page(filters, page=_page_number(request))
        # Changes to referrals show patient data: a read of those patients.
        services.access_log_write(
            user=request.user,
            action=AccessLog.Action.READ,
            view="audit_timeline",
            patient_referrals=page.patient_referrals,
        )
    return render(
        request,
        "triage/audit_timeline.html",
        {"form": form, "page": page, "query": _query_without_page(request)},
        status=200 if page is not None else 400,
    )


# Cells that a spreadsheet would read as a formula (CSV injection, OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write() returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


CSV_HEADER = (
    gettext_lazy("Tidpunkt"),
    gettext_lazy("Användare"),
    gettext_lazy("Typ"),
    gettext_lazy("Händelse"),
    gettext_lazy("Objekt"),
    gettext_lazy("Remiss-id"),
    gettext_lazy("Patient"),
    gettext_lazy("Fält"),
    gettext_lazy("Före"),
    gettext_lazy("Efter"),
    gettext_lazy("Orsak"),
    gettext_lazy("Motivering till avvikelse"),
)


def _csv_lines(entry: TimelineEntry) -> Iterator[list[str]]:
    """One line per field or flag change, so that the file can be filtered in Excel."""
    head = [
        timezone.localtime(entry.at).strftime("%Y-%m-%d %H:%M:%S"),
        entry.user_display,
        entry.kind_label,
        entry.event,
        entry.object_label,
        entry.referral_id or "",
        entry.patient_label,
    ]
    tail = [entry.reason, entry.override_reason]
    changes: list[tuple[str, str, str]] = [(c.label, c.before, c.after) for c in entry.changes]
    changes += [
        (_("Flagga"), "", f.label) if f.added else (_("Flagga"), f.label, "")
        for f in entry.flag_changes
    ]
    if entry.summary:
        changes.append(("", "", entry.summary))
    for label, before, after in changes or [("", "", "")]:
        yield [*head, label, before, after, *tail]


def _csv_stream(request: HttpRequest, filters: TimelineFilters) -> Iterable[str]:
    writer = csv.writer(_Echo(), delimiter=";")
    # The byte-order mark makes Excel read the file as UTF-8 (å, ä, ö).
    yield "\ufeff" + writer.writerow([csv_safe(str(label)) for label in CSV_HEADER])
    for chunk in timeline_chunks(filters):
        # Logged before the chunk leaves the server; if the log fails the file stops here.
        services.access_log_write(
            user=request.user,
            action=AccessLog.Action.EXPORT,
            view="audit_timeline_csv",
            patient_referrals=patient_referrals(chunk),
        )
        for entry in chunk:
            for line in _csv_lines(entry):
                yield writer.writerow([csv_safe(cell) for cell in line])


@require_GET
@role_required(Role.AUDITOR)
def timeline_csv(request: HttpRequest) -> HttpResponse:
    form = TimelineFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return render(
            request,
            "triage/audit_timeline.html",
            {"form": form, "page": None, "query": _query_without_page(request)},
            status=400,
        )
    filters = form.filters() if form.is_bound else TimelineFilters()
    response = StreamingHttpResponse(
        _csv_stream(request, filters), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="revision-{stamp}.csv"'
    return response


# --- Per-referral record -----------------------------------------------------------------------


@require_GET
@role_required(Role.AUDITOR)
def referral_record(request: HttpRequest, pk: int) -> HttpResponse:
    referral = get_object_or_404(Referral.objects.select_related("patient"), pk=pk)
    services.access_log_write(
        user=request.user,
        action=AccessLog.Action.READ,
        view="audit_referral",
        patient_referrals=[(referral.patient_id, referral.pk)],
    )
    return render(
        request,
        "triage/audit_referral.html",
        {
            "record": build_referral_record(referral),
            "referral": referral,
            "patient": referral.patient,
        },
    )


# --- Access log ---------------------------------------------------------------------------------


@require_GET
@role_required(Role.AUDITOR)
def access_log(request: HttpRequest) -> HttpResponse:
    form = AccessLogFilterForm(request.GET or None)
    page = sample = None
    if form.is_bound and not form.is_valid():
        return render(request, "triage/audit_access_log.html", {"form": form}, status=400)
    filters = form.filters() if form.is_bound else AccessLogFilters()
    size = form.cleaned_data.get("sample_size") if form.is_bound else None
    if size:
        seed = form.cleaned_data.get("seed")
        if seed is None:
            seed = secrets.randbelow(2**31)
        sample = access_log_sample(
            filters, size=size, seed=seed, max_id=form.cleaned_data.get("max_id")
        )
        # The seed is recorded in the (append-only) access log itself, in the rows that
        # this review writes for the patients in the sample, and printed on the page.
        services.access_log_write(
            user=request.user,
            action=AccessLog.Action.READ,
            view=f"loggkontroll seed={seed} n={size} max={sample.max_id}"[:100],
            patient_referrals=[(row.patient_id, row.referral_id) for row in sample.rows],
        )
        messages.info(
            request,
            _(
                "Stickprov om %(count)s av %(population)s poster draget med frö %(seed)s "
                "(t.o.m. loggpost %(max_id)s). Samma frö ger samma urval."
            )
            % {
                "count": len(sample.rows),
                "population": sample.population,
                "seed": seed,
                "max_id": sample.max_id,
            },
        )
    else:
        page = access_log_page(filters, page=_page_number(request))
        services.access_log_write(
            user=request.user,
            action=AccessLog.Action.READ,
            view="audit_access_log",
            patient_referrals=[(row.patient_id, row.referral_id) for row in page.rows],
        )
    reproduce = request.GET.copy()
    if sample is not None:
        reproduce["seed"] = str(sample.seed)
        reproduce["max_id"] = "" if sample.max_id is None else str(sample.max_id)
    return render(
        request,
        "triage/audit_access_log.html",
        {
            "form": form,
            "page": page,
            "sample": sample,
            "query": _query_without_page(request),
            "reproduce": reproduce.urlencode(),
        },
    )


@require_GET
@role_required(Role.AUDITOR)
def patient_extract_view(request: HttpRequest) -> HttpResponse:
    form = PatientExtractForm(request.GET or None)
    extract = None
    status = 200
    if form.is_bound:
        if form.is_valid():
            patient = Patient.objects.filter(
                personal_number=form.cleaned_data["personnummer"]
            ).first()
            if patient is None:
                form.add_error("personnummer", _("Det finns ingen patient med det numret."))
                status = 404
            else:
                services.access_log_write(
                    user=request.user,
                    action=AccessLog.Action.PRINT,
                    view="audit_patient_extract",
                    patient_referrals=[(patient.pk, None)],
                )
                extract = patient_extract(
                    patient,
                    date_from=form.cleaned_data.get("date_from"),
                    date_to=form.cleaned_data.get("date_to"),
                )
        else:
            status = 400
    return render(
        request,
        "triage/audit_patient_extract.html",
        {"form": form, "extract": extract, "printed_at": timezone.now()},
        status=status,
    )
