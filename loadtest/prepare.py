"""Create a fresh PostgreSQL database for a load run: schema, radiologists, new referrals.

    .venv/bin/python loadtest/prepare.py --users 20 --referrals 3600 \
        --database-url postgres://postgres@127.0.0.1:5432/remissprio_load

The database named in the URL is DROPPED and created again. Users are `loadtest-01` ...
(group "Radiolog") with the password printed; referrals come in through the services,
for patients with Skatteverket's test personnummer only. Prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timedelta

import _django

USER_PREFIX = "loadtest-"
# Long and unusual enough for the password validators; printed on purpose (test data only).
PASSWORD = "Lasttest-Remissprio-2025!"  # noqa: S105
SOURCE = "loadtest-ris"

ANAMNESES = [
    "Ländryggssmärta sedan några veckor, ingen trauma. Önskar undersökning.",
    "Lumbago med utstrålning i vänster ben. Frågeställning diskbråck?",
    "Tilltagande ryggvärk, värre nattetid. Tidigare frisk.",
    "Ryggsmärta efter lyft. Svårt att gå. Ber om bedömning.",
    "Långvarig ländryggssmärta, sjukgymnastik utan effekt.",
]


def recreate_database(database_url: str) -> None:
    import psycopg

    maintenance_url, name = _django.split_database_url(database_url)
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def prepare(database_url: str, users: int, referrals: int, seed: int) -> dict:
    started = time.monotonic()
    recreate_database(database_url)
    _django.setup(database_url)

    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from triage import personnummer, services
    from triage.permissions import Role

    call_command("migrate", interactive=False, verbosity=0)

    group = Group.objects.get(name=Role.RADIOLOGIST)
    # One hash for all: the production hasher costs about half a second per call.
    password_hash = make_password(PASSWORD)
    radiologists = []
    for number in range(1, users + 1):
        user = User.objects.create(
            username=f"{USER_PREFIX}{number:02d}",
            first_name="Last",
            last_name=f"Test {number:02d}",
            password=password_hash,
        )
        user.groups.add(group)
        radiologists.append(user.username)
    importer = User.objects.create(username=SOURCE, first_name="Lasttest-RIS", is_active=False)
    importer.set_unusable_password()
    importer.save()

    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    now = timezone.now()
    today = timezone.localdate()
    with transaction.atomic():
        patients = [
            services.patient_register(
                personal_number=number,
                name=f"Testperson {index:02d} Lasttestsson",
                reference_date=today,
                user=importer,
                reason="Lasttest",
            )
            for index, number in enumerate(personnummer.TEST_PERSONNUMMER)
        ]
        for index in range(referrals):
            patient = patients[index % len(patients)]
            # Oldest first on the worklist: received_at increases with the index.
            received_at = now - timedelta(days=3) + timedelta(seconds=index)
            services.referral_create(
                user=importer,
                reason="Lasttest",
                source=SOURCE,
                order_number=f"LT-{index:06d}",
                patient=patient,
                received_at=received_at,
                written_on=received_at.date(),
                referring_unit="Vårdcentralen Lasttest",
                referring_clinician="Dr Last",
                requested=rng.choice(["mri", "mri", "xray", "ct"]),
                anamnesis=rng.choice(ANAMNESES),
                method_change_allowed=rng.random() < 0.8,
            )
    return {
        "database_url": database_url,
        "users": radiologists,
        "password": PASSWORD,
        "referrals": referrals,
        "patients": len(patients),
        "seconds": round(time.monotonic() - started, 1),
        "prepared_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=_django.DEFAULT_DATABASE_URL)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--referrals", type=int, default=3600)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--output", help="also write the JSON summary to this file")
    args = parser.parse_args(argv)
    if args.users < 1 or args.users > 99 or args.referrals < 1:
        parser.error("--users must be 1..99 and --referrals at least 1")
    summary = prepare(args.database_url, args.users, args.referrals, args.seed)
    text = json.dumps(summary, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
