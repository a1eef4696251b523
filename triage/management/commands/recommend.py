"""`manage.py recommend FILE`: the routine's recommendation for a JSON list of facts."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from triage import rules


class Command(BaseCommand):
    help = (
        "Läser en JSON-lista med fakta (spec avsnitt 5) från FILE eller standard in (-) och "
        "skriver en JSON-lista med rekommendationer i samma ordning."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="JSON-fil med en lista av fakta, eller - för standard in")
        parser.add_argument(
            "--defaults",
            action="store_true",
            help="använd specifikationens standardvärden i stället för den aktiva riktlinjen",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        items = self._read(options["file"])
        params = rules.DEFAULT_PARAMETERS if options["defaults"] else self._active_parameters()
        answers, failed = [], 0
        for item in items:
            try:
                answers.append(
                    rules.recommendation_to_dict(
                        rules.recommend(rules.facts_from_dict(item), params)
                    )
                )
            except rules.FactsError as error:
                answers.append({"error": str(error)})
                failed += 1
        self.stdout.write(json.dumps(answers, ensure_ascii=False, indent=2))
        if failed:
            # Exit status 1 while every valid item is still answered in its place.
            self.stderr.write(f"{failed} av {len(items)} poster var ogiltiga.")
            sys.exit(1)

    def _read(self, name: str) -> list:
        try:
            if name == "-":
                text = sys.stdin.read()
            else:
                with open(name, encoding="utf-8-sig") as handle:
                    text = handle.read()
        except OSError as error:
            raise CommandError(f"Kan inte läsa {name}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise CommandError(f"{name} är inte UTF-8-kodad text.") from error
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(
                f"Ogiltig JSON på rad {error.lineno}, kolumn {error.colno}: {error.msg}"
            ) from error
        if not isinstance(data, list):
            raise CommandError("Indata ska vara en JSON-lista av faktaobjekt.")
        return data

    def _active_parameters(self) -> rules.Parameters:
        from triage.selectors import NoActiveGuideline, active_guideline

        try:
            return active_guideline().to_parameters()
        except (NoActiveGuideline, DatabaseError) as error:
            raise CommandError(
                f"Kan inte läsa den aktiva riktlinjen ({error}). "
                "Kör migreringarna, eller använd --defaults."
            ) from error
