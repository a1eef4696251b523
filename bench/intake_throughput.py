"""Import throughput: referrals per second for N FHIR ServiceRequests and N HL7 messages.

Run once by hand (not a test); each message is taken in on its own, in its own transaction,
exactly as the API does:

    DATABASE_URL=sqlite:////tmp/bench.sqlite3 .venv/bin/python bench/intake_throughput.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \
        .venv/bin/python bench/intake_throughput.py

The database is migrated first; a fresh sender "bench-<time>" is created each run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")


def main(count: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from triage.importers import fhir, hl7, intake
    from triage.models import Referral
    from triage.personnummer import TEST_PERSONNUMMER

    run = str(int(time.time()))
    sender = intake.sender_register(name=f"bench-{run}", user=None)
    data = ROOT / "tests" / "data" / "intake"
    template = json.loads((data / "fhir" / "service_request_contained.json").read_text())
    hl7_template = (data / "hl7" / "orm_o01_v23_latin1.hl7").read_bytes()

    fhir_bodies = []
    for index in range(count):
        document = json.loads(json.dumps(template))
        document["identifier"][0]["value"] = f"F-{index}"
        document["contained"][0]["identifier"][0]["value"] = TEST_PERSONNUMMER[index % 75]
        fhir_bodies.append(json.dumps(document).encode())
    hl7_bodies = []
    for index in range(count):
        hl7_bodies.append(
            hl7_template.replace(b"HL7-0001", f"B-{index}".encode())
            .replace(b"HL7-1001", f"H-{index}".encode())
            .replace(b"198208012396", TEST_PERSONNUMMER[index % 75].encode())
            .replace(b"19820801|M", f"{TEST_PERSONNUMMER[index % 75][:8]}|M".encode())
        )

    for label, bodies, take in (
        ("FHIR ServiceRequest", fhir_bodies, lambda raw: fhir.intake_fhir(sender=sender, raw=raw)),
        ("HL7 ORM^O01", hl7_bodies, lambda raw: hl7.intake_hl7(sender=sender, raw=raw)),
    ):
        started = time.perf_counter()
        rejected = 0
        for raw in bodies:
            rejected += take(raw).rejected
        elapsed = time.perf_counter() - started
        print(
            f"{label}: {len(bodies)} meddelanden på {elapsed:.1f} s = "
            f"{(len(bodies) - rejected) / elapsed:.0f} remisser/s ({rejected} avvisade)"
        )
    print("remisser i databasen:", Referral.objects.filter(source=sender.name).count())


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
