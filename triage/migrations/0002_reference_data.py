"""Reference data: the routine's flag catalogue, guideline version 1 and the roles.

The data is written out here rather than imported from triage.rules, so that this
migration keeps meaning what it meant when it ran. Each row gets its first history row,
so that auditors see where every catalogue entry came from.
"""

import datetime

from django.db import migrations
from django.utils import timezone

REASON = "Referensdata (migrering 0002)"

FLAGS = [
    # (code, kind, label) in the routine's order
    ("child_under_18", "red", "Ryggsmärta hos barn under 18 år"),
    ("onset_after_55", "red", "Avsevärda smärtor eller smärtdebut efter 55 år"),
    ("night_pain", "red", "Nattliga ryggsmärtor som är konstanta eller progredierar"),
    ("prior_cancer", "red", "Tidigare cancersjukdom"),
    ("inflammatory", "red", "Misstanke om inflammatorisk genes"),
    ("systemic_steroids", "red", "Systemisk steroidbehandling"),
    ("drug_abuse", "red", "Drogmissbruk"),
    ("weight_loss", "red", "Viktförlust, nedsatt allmäntillstånd"),
    ("severe_restriction", "red", "Bestående svår rörelseinskränkning"),
    ("pain_on_minimal_movement", "red", "Intensifierad smärta vid minsta rörelse"),
    ("structural_deformity", "red", "Strukturell deformitet"),
    ("emotional", "yellow", "Emotionella faktorer"),
    ("cognitive", "yellow", "Kognitiva faktorer"),
    ("behavioural", "yellow", "Beteendefaktorer"),
    (
        "cauda_equina",
        "emergency",
        "Misstänkt cauda equina-syndrom (ridbyxeanestesi, nytillkommen blås- eller tarmpåverkan)",
    ),
    ("progressive_neuro_deficit", "emergency", "Progredierande neurologiskt bortfall"),
    (
        "suspected_infection",
        "emergency",
        "Misstänkt infektion (feber med ryggsmärta, känd bakteriemi)",
    ),
    ("major_trauma", "emergency", "Misstänkt fraktur efter betydande trauma"),
]

GUIDELINE_V1 = {
    "label": "1",
    "valid_from": datetime.date(2019, 12, 18),
    "is_active": True,
    "note": "Rutinen ”Prioritering – Ländryggsundersökningar” med standardvärdena i specifikationen.",
    "red_flag_weeks": 4,
    "red_flag_borderline_weeks": 3,
    "yellow_flag_weeks": 8,
    "radicular_treatment_weeks": 6,
    "older_patient_age": 65,
    "young_patient_age": 40,
    "recent_imaging_months": 12,
    "priority_red_weeks": 6,
    "priority_other_weeks": 8,
}

ROLES = ["Radiolog", "Verksamhetschef", "Revisor"]


def _with_history(apps, model_name, **fields):
    model = apps.get_model("triage", model_name)
    history = apps.get_model("triage", f"Historical{model_name}")
    obj = model.objects.create(**fields)
    values = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields}
    history.objects.create(
        history_date=timezone.now(),
        history_type="+",
        history_change_reason=REASON,
        **values,
    )
    return obj


def load(apps, schema_editor):
    for position, (code, kind, label) in enumerate(FLAGS):
        _with_history(apps, "Flag", code=code, kind=kind, label=label, position=position)
    _with_history(apps, "GuidelineVersion", **GUIDELINE_V1)
    group = apps.get_model("auth", "Group")
    for name in ROLES:
        group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
