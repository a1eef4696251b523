"""Forms of the triage workflow; layout in crispy FormHelpers, messages in Swedish."""

from __future__ import annotations

from decimal import Decimal

from crispy_forms.helper import FormHelper
from crispy_forms.layout import HTML, Div, Field, Layout
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from triage import rules
from triage.models import Flag, PriorImaging, ReplyTemplate
from triage.selectors import AssessmentInput

# The hidden fields come from the page itself; if they are missing or wrong the page is broken
# or tampered with, and a reload is the remedy.
_RELOAD = {
    "required": _("Sidan är ofullständig: ladda om sidan och försök igen."),
    "invalid": _("Sidan är ofullständig: ladda om sidan och försök igen."),
}

IMPROVED_CHOICES = [
    ("", _("Ej angivet")),
    ("yes", _("Ja, förbättrad")),
    ("no", _("Nej, ej förbättrad")),
]


def _weeks_field(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=False,
        max_digits=4,
        decimal_places=1,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("520"))],
        error_messages={
            "min_value": _("Antalet veckor kan inte vara negativt."),
            "max_value": _("Högst 520 veckor (10 år)."),
            "invalid": _("Ange antal veckor som ett tal, t.ex. 6 eller 2,5."),
        },
        # A text box, not type=number: browsers with an English locale silently turn a
        # typed "2,5" into 25 in a number box. Swedish "2,5" and "2.5" are both accepted.
        localize=True,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


class TriageForm(forms.Form):
    """The facts a radiologist enters, and the decision taken on them."""

    pain_weeks = _weeks_field(_("Smärtduration (veckor)"))
    red_flags = forms.MultipleChoiceField(
        label=_("Röda flaggor"), required=False, widget=forms.CheckboxSelectMultiple
    )
    yellow_flags = forms.MultipleChoiceField(
        label=_("Gula flaggor"), required=False, widget=forms.CheckboxSelectMultiple
    )
    radicular = forms.BooleanField(label=_("Radikulär smärta"), required=False)
    treatment_weeks = _weeks_field(_("Behandlingstid för radikulär smärta (veckor)"))
    improved = forms.ChoiceField(
        label=_("Förbättrad av behandlingen?"), choices=IMPROVED_CHOICES, required=False
    )
    trauma = forms.BooleanField(label=_("Trauma beskrivet"), required=False)
    questions = forms.MultipleChoiceField(
        label=_("Frågeställning"),
        choices=list(rules.QUESTIONS.items()),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    mri_contraindicated = forms.BooleanField(
        label=_("MR kontraindicerad (pacemaker, svår klaustrofobi)"), required=False
    )
    emergency_signs = forms.MultipleChoiceField(
        label=_("Akuta tecken (utanför rutinen)"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    action = forms.ChoiceField(
        label=_("Åtgärd"), choices=[("", "—"), *rules.ACTIONS.items()], required=False
    )
    priority_weeks = forms.IntegerField(
        label=_("Priotid (veckor)"),
        required=False,
        min_value=1,
        max_value=52,
        error_messages={
            "min_value": _("Priotiden är minst 1 vecka."),
            "max_value": _("Priotiden är högst 52 veckor."),
        },
    )
    override_reason = forms.CharField(
        label=_("Motivering till avvikelse från förslaget"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
    )
    version = forms.IntegerField(widget=forms.HiddenInput, error_messages=_RELOAD)
    guideline = forms.IntegerField(widget=forms.HiddenInput, error_messages=_RELOAD)
    shown = forms.CharField(widget=forms.HiddenInput, required=False)
    context = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, flags: list[Flag], derived_flags: frozenset[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        by_kind: dict[str, list[tuple[str, str]]] = {kind: [] for kind in Flag.Kind.values}
        for flag in flags:
            label = flag.label
            if flag.code in derived_flags:
                label = _("%(label)s (härlett från åldern)") % {"label": label}
            by_kind[flag.kind].append((flag.code, label))
        self.fields["red_flags"].choices = by_kind[Flag.Kind.RED]
        self.fields["yellow_flags"].choices = by_kind[Flag.Kind.YELLOW]
        self.fields["emergency_signs"].choices = by_kind[Flag.Kind.EMERGENCY]

    @cached_property
    def helper(self) -> FormHelper:
        # Built when the page renders the form, not for the live recommendation, which
        # only validates it (a layout per request was a seventh of that endpoint's time).
        helper = FormHelper()
        helper.form_tag = False
        helper.disable_csrf = True
        helper.layout = Layout(
            # Emergency signs first: they decide before anything else does.
            Div(
                HTML(
                    '<p class="small text-danger mb-1">'
                    + str(_("Ett akut tecken eskalerar alltid remissen."))
                    + "</p>"
                ),
                "emergency_signs",
                css_class="border border-danger rounded px-2 pt-2 mb-3",
            ),
            Div(
                Div(Field("pain_weeks", autofocus=True), css_class="col-sm-6"),
                Div("trauma", "mri_contraindicated", css_class="col-sm-6 pt-sm-4"),
                css_class="row",
            ),
            Field("questions", wrapper_class="inline-checks"),
            Div("red_flags", css_class="border rounded px-2 pt-2 mb-3"),
            Div("yellow_flags", css_class="border rounded px-2 pt-2 mb-3"),
            Div(
                "radicular",
                Div(
                    Div("treatment_weeks", css_class="col-sm-6"),
                    Div("improved", css_class="col-sm-6"),
                    css_class="row",
                ),
                css_class="border rounded px-2 pt-2 mb-3",
            ),
            "version",
            "guideline",
            "shown",
            "context",
        )
        return helper

    def clean(self) -> dict:
        data = super().clean()
        if data.get("treatment_weeks") is not None and not data.get("radicular"):
            self.add_error(
                "radicular",
                _("Behandlingstid är angiven: kryssa i radikulär smärta eller töm fältet."),
            )
        return data

    def assessment_input(self) -> AssessmentInput:
        return assessment_input_from(self.cleaned_data)


def assessment_input_from(data: dict) -> AssessmentInput:
    """The engine-facing facts from the form's cleaned data (or its initial values)."""
    return AssessmentInput(
        pain_weeks=data.get("pain_weeks"),
        flag_codes=frozenset(
            [
                *data.get("red_flags", []),
                *data.get("yellow_flags", []),
                *data.get("emergency_signs", []),
            ]
        ),
        radicular=bool(data.get("radicular")),
        treatment_weeks=data.get("treatment_weeks"),
        improved={"yes": True, "no": False}.get(data.get("improved") or ""),
        trauma=bool(data.get("trauma")),
        questions=frozenset(data.get("questions", [])),
        mri_contraindicated=bool(data.get("mri_contraindicated")),
    )


def initial_from_assessment(assessment, derived_flags: frozenset[str]) -> dict:
    """Start the form from the latest decision, or from what the age already tells."""
    if assessment is None:
        return {"red_flags": sorted(derived_flags)}
    codes_by_kind: dict[str, list[str]] = {kind: [] for kind in Flag.Kind.values}
    for flag in assessment.flags.all():
        codes_by_kind[flag.kind].append(flag.code)
    return {
        "pain_weeks": assessment.pain_weeks,
        "red_flags": sorted(set(codes_by_kind[Flag.Kind.RED]) | derived_flags),
        "yellow_flags": codes_by_kind[Flag.Kind.YELLOW],
        "emergency_signs": codes_by_kind[Flag.Kind.EMERGENCY],
        "radicular": assessment.radicular,
        "treatment_weeks": assessment.treatment_weeks,
        "improved": {True: "yes", False: "no"}.get(assessment.improved, ""),
        "trauma": assessment.trauma,
        "questions": assessment.questions,
        "mri_contraindicated": assessment.mri_contraindicated,
    }


class PriorImagingForm(forms.ModelForm):
    class Meta:
        model = PriorImaging
        fields = [
            "modality",
            "region",
            "performed_on",
            "covers_lumbar_spine",
            "finding",
            "location",
        ]
        widgets = {
            "performed_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "finding": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "covers_lumbar_spine": _("DT buk, aorta och urinvägar omfattar ländryggen."),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["performed_on"].error_messages["invalid"] = _(
            "Ange ett giltigt datum (ÅÅÅÅ-MM-DD)."
        )
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True

    def clean_performed_on(self):
        performed_on = self.cleaned_data["performed_on"]
        if performed_on > timezone.localdate():
            raise forms.ValidationError(_("Undersökningsdatumet kan inte ligga i framtiden."))
        return performed_on


class ReplyForm(forms.Form):
    template = forms.ModelChoiceField(
        label=_("Svarsmall"),
        queryset=ReplyTemplate.objects.filter(is_active=True),
        required=False,
        empty_label=_("Ingen mall (fritext)"),
    )
    text = forms.CharField(
        label=_("Svarstext"),
        widget=forms.Textarea(attrs={"rows": 12, "class": "reply-text"}),
        max_length=10000,
        error_messages={"required": _("Svarstexten får inte vara tom.")},
    )


class InformationRequestForm(forms.Form):
    missing = forms.CharField(
        label=_("Vad saknas i remissen?"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        error_messages={"required": _("Skriv vad remittenten behöver komplettera med.")},
    )


class InformationReceivedForm(forms.Form):
    information = forms.CharField(
        label=_("Kompletterande uppgifter från remittenten"),
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
        error_messages={"required": _("Skriv in kompletteringen.")},
    )


class WorklistFilterForm(forms.Form):
    q = forms.CharField(label=_("Sök personnummer eller namn"), required=False, max_length=100)
    status = forms.ChoiceField(label=_("Status"), required=False)
    requested = forms.ChoiceField(
        label=_("Undersökning"),
        required=False,
        choices=[("", _("Alla")), *rules.REQUESTED_EXAMINATIONS.items()],
    )
    mine = forms.BooleanField(label=_("Tilldelade mig"), required=False)
    overdue = forms.BooleanField(label=_("Försenade"), required=False)

    def __init__(self, *args, status_choices, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = status_choices
