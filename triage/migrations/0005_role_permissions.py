"""Roles as data: the permissions each role holds.

Department heads maintain reply templates, guideline versions and the flag catalogue in
the admin and read the access log there; auditors and radiologists work outside the admin
and are authorised by role in the views.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSIONS = {
    "Verksamhetschef": [
        ("triage", "replytemplate", ["view", "change", "add"]),
        ("triage", "guidelineversion", ["view", "change", "add"]),
        ("triage", "flag", ["view", "change"]),
        ("triage", "accesslog", ["view"]),
    ],
    "Revisor": [
        ("triage", "accesslog", ["view"]),
    ],
    "Radiolog": [],
}


def grant(apps, schema_editor):
    # Permissions are normally created after migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    group = apps.get_model("auth", "Group")
    permission = apps.get_model("auth", "Permission")
    for role, entries in PERMISSIONS.items():
        holder = group.objects.get(name=role)
        for app_label, model, actions in entries:
            for action in actions:
                holder.permissions.add(
                    permission.objects.get(
                        content_type__app_label=app_label, codename=f"{action}_{model}"
                    )
                )


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0004_access_log_and_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
