"""`manage.py export_decisions`: decided referrals as a FHIR Bundle of Tasks or as CSV."""

from __future__ import annotations

import json
from datetime import datetime, time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date

from triage import services
from triage.importers import export
from triage.models import AccessLog, Sender


class Command(BaseCommand):
    help = (
        "Skriver beslutade remisser som FHIR Bundle (Task + ServiceRequest) eller CSV för "
        "Excel. Exporten loggas i åtkomstloggen i den angivna användarens namn."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", choices=["fhir", "csv"], default="fhir")
        parser.add_argument("--source", help="bara remisser från detta avsändande system")
        parser.add_argument("--since", help="bara beslut ändrade från detta datum (ÅÅÅÅ-MM-DD)")
        parser.add_argument("--output", "-o", help="fil att skriva till (annars standard ut)")
        parser.add_argument(
            "--user",
            required=True,
            help="användarnamnet på den som gör exporten (för åtkomstloggen)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"Ingen aktiv användare {options['user']}.")
        since = None
        if options["since"]:
            day = parse_date(options["since"])
            if day is None:
                raise CommandError("--since ska vara ett datum ÅÅÅÅ-MM-DD.")
            since = timezone.make_aware(datetime.combine(day, time.min))
        referrals = list(export.decided_referrals(source=options["source"], since=since))
        # Patientdatalagen: an export of patient data is logged, and nothing is written
        # if the log row cannot be.
        services.access_log_write(
            user=user,
            action=AccessLog.Action.EXPORT,
            view="export_decisions",
            patient_referrals=[(referral.patient_id, referral.pk) for referral in referrals],
        )
        if options["format"] == "csv":
            # The BOM makes Excel read the file as UTF-8 (å, ä, ö intact).
            text = "\ufeff" + export.decisions_csv(referrals)
        else:
            senders = {sender.name: sender for sender in Sender.objects.all()}
            bundle = export.decisions_bundle(referrals, senders=senders, bundle_type="collection")
            text = json.dumps(bundle, ensure_ascii=False, indent=2) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            self.stderr.write(f"{len(referrals)} beslut skrivna till {options['output']}.")
        else:
            self.stdout.write(text, ending="")
