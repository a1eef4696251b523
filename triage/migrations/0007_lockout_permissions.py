"""Department heads see failed-login locks (django-axes) and can lift one by deleting it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = [
    ("axes", "view_accessattempt"),
    ("axes", "delete_accessattempt"),
    ("axes", "view_accessfailurelog"),
]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    group = apps.get_model("auth", "Group").objects.get(name="Verksamhetschef")
    permission = apps.get_model("auth", "Permission")
    for app_label, codename in GRANTS:
        group.permissions.add(
            permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0006_intake"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
