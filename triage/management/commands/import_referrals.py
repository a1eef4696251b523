"""`manage.py import_referrals FILE...`: take referral files in, reporting per file and row."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from triage.importers.inbox import detect_format, message_sources
from triage.importers.intake import OUTCOME_LABELS, Outcome, message_intake
from triage.models import IntakeFormat, Sender


class Command(BaseCommand):
    help = (
        "Läser remisser från filer (FHIR JSON/NDJSON, HL7 v2, CSV från Excel) och rapporterar "
        "för varje fil och rad: skapad, oförändrad dubblett, uppdaterad, makulerad eller "
        "avvisad med orsak. Avvisade meddelanden sparas i inkorgen. Slutstatus är 1 om något "
        "avvisades."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--format",
            choices=IntakeFormat.values,
            help="filernas format (annars efter filändelse eller innehåll)",
        )
        parser.add_argument(
            "--source",
            help="avsändande system (namnet i admin); behövs om fler än ett system finns",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sender = self._sender(options["source"])
        totals: Counter[str] = Counter()
        for name in options["files"]:
            path = Path(name)
            try:
                raw = path.read_bytes()
            except OSError as error:
                raise CommandError(f"{name}: kan inte läsas ({error.strerror}).") from error
            file_format = options["format"] or detect_format(path.name, raw)
            self.stdout.write(f"{path.name} ({IntakeFormat(file_format).label}):")
            counts: Counter[str] = Counter()
            for source in message_sources(
                format=file_format, raw=raw, origin=path.name, sender=sender
            ):
                result = message_intake(sender=sender, format=file_format, source=source)
                where = source.origin.removeprefix(path.name).strip() or "meddelande"
                self.stdout.write(f"  {where}: {result.describe()}")
                for warning in result.warnings:
                    self.stdout.write(f"  {where}: varning – {warning}")
                if result.rejected:
                    counts[Outcome.REJECTED] += 1
                else:
                    counts.update(order.outcome for order in result.orders)
            self.stdout.write(f"  Summa: {self._summary(counts)}")
            totals.update(counts)
        if len(options["files"]) > 1:
            self.stdout.write(f"Totalt: {self._summary(totals)}")
        if totals[Outcome.REJECTED]:
            raise CommandError(
                f"{totals[Outcome.REJECTED]} meddelanden avvisades; de finns i inkorgen "
                "(admin → Inkorg) för rättning eller avförande.",
                returncode=1,
            )

    def _sender(self, name: str | None) -> Sender:
        active = Sender.objects.filter(is_active=True).select_related("user")
        if name:
            sender = active.filter(name=name).first()
            if sender is None:
                known = ", ".join(active.values_list("name", flat=True)) or "(inga)"
                raise CommandError(f"Okänt eller inaktivt system: {name}. Aktiva: {known}.")
            return sender
        senders = list(active[:2])
        if len(senders) != 1:
            raise CommandError(
                "Ange avsändande system med --source (registreras i admin under "
                "”Avsändande system”)."
            )
        return senders[0]

    def _summary(self, counts: Counter[str]) -> str:
        order = [
            Outcome.CREATED,
            Outcome.UPDATED,
            Outcome.UNCHANGED,
            Outcome.CANCELLED,
            Outcome.REJECTED,
        ]
        return ", ".join(f"{counts[outcome]} {OUTCOME_LABELS[outcome]}" for outcome in order)
