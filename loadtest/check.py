"""The exactly-once check after a load run: what clients were told is what the database holds.

    .venv/bin/python loadtest/check.py ACKS.json --database-url postgres://.../remissprio_load

ACKS.json (written by run.py):
    {"decisions": [{"referral": 12, "user": "loadtest-03", "shown": "mri:6"}, ...],
     "replies":   [{"referral": 12, "reply": 40, "user": "loadtest-03", "text": "..."}, ...],
     "unacknowledged_decisions": [13, ...]}   # decide POSTs answered by 503/no response

Prints one JSON object {"ok": bool, "checks": [...], "counts": {...}}; exit status 1 if any
check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

import _django

SHOW_AT_MOST = 10


class Checks:
    def __init__(self) -> None:
        self.results: list[dict] = []

    def add(self, name: str, failures: list[str], checked: int, what: str) -> None:
        self.results.append(
            {
                "name": name,
                "ok": not failures,
                "checked": checked,
                "what": what,
                "failures": len(failures),
                "examples": failures[:SHOW_AT_MOST],
            }
        )


def check(acks: dict, database_url: str) -> dict:
    _django.setup(database_url)
    from django.db.models import Count

    from triage.models import ACTION_TO_STATUS, Assessment, Referral, Reply

    checks = Checks()
    decisions = acks.get("decisions", [])
    replies = acks.get("replies", [])
    unacknowledged = set(acks.get("unacknowledged_decisions", []))

    # 1. No referral was acknowledged as decided twice to clients.
    twice = [f"referral {pk}: {n} acks" for pk, n in _counts(d["referral"] for d in decisions)]
    checks.add(
        "decision_acknowledged_once",
        twice,
        len(decisions),
        "no referral acknowledged as decided more than once",
    )

    # 2. Every acknowledged decision is stored exactly once, as shown, with its history.
    assessments_by_referral: dict[int, list] = {}
    for assessment in Assessment.objects.filter(
        referral_id__in={d["referral"] for d in decisions}
    ).select_related("decided_by", "referral", "referral__assigned_to"):
        assessments_by_referral.setdefault(assessment.referral_id, []).append(assessment)
    history_rows = Counter(
        Assessment.history.filter(
            referral_id__in=assessments_by_referral.keys(), history_type="+"
        ).values_list("id", "history_user__username")
    )
    referral_history = Counter(
        Referral.history.filter(id__in=assessments_by_referral.keys())
        .exclude(history_user=None)
        .values_list("id", "status", "history_user__username")
    )
    missing, wrong, no_history, bad_state = [], [], [], []
    for decision in decisions:
        pk, user, shown = decision["referral"], decision["user"], decision["shown"]
        stored = assessments_by_referral.get(pk, [])
        if len(stored) != 1:
            missing.append(f"referral {pk}: {len(stored)} assessments stored, acknowledged 1")
            continue
        assessment = stored[0]
        stored_shown = f"{assessment.action}:{assessment.priority_weeks}"
        if assessment.decided_by.username != user or stored_shown != shown:
            wrong.append(
                f"referral {pk}: stored {stored_shown} by {assessment.decided_by.username}, "
                f"acknowledged {shown} by {user}"
            )
        final_status = ACTION_TO_STATUS[assessment.action]
        if (
            history_rows[(assessment.pk, user)] != 1
            or referral_history[(pk, final_status, user)] != 1
        ):
            no_history.append(
                f"referral {pk}: assessment history rows by {user}: "
                f"{history_rows[(assessment.pk, user)]}, referral rows to {final_status} "
                f"by {user}: {referral_history[(pk, final_status, user)]} (want 1 and 1)"
            )
        referral = assessment.referral
        if referral.status != final_status or getattr(referral.assigned_to, "username", "") != user:
            bad_state.append(
                f"referral {pk}: status {referral.status}, assigned to "
                f"{getattr(referral.assigned_to, 'username', None)}; want {final_status}, {user}"
            )
    checks.add(
        "decision_stored_exactly_once",
        missing,
        len(decisions),
        "each acknowledged decision has exactly one Assessment",
    )
    checks.add(
        "decision_stored_as_acknowledged",
        wrong,
        len(decisions),
        "stored action:priority and decider equal what the client was acknowledged",
    )
    checks.add(
        "decision_history",
        no_history,
        len(decisions),
        "one assessment history row (+) and one referral history row by the deciding user",
    )
    checks.add(
        "referral_state",
        bad_state,
        len(decisions),
        "the referral has the decision's status and is assigned to the decider",
    )

    # 3. No referral in the whole database was decided twice; every decision has history.
    doubles = Assessment.objects.values("referral_id").annotate(n=Count("id")).filter(n__gt=1)
    checks.add(
        "no_referral_decided_twice",
        [f"referral {row['referral_id']}: {row['n']} assessments" for row in doubles],
        Assessment.objects.count(),
        "no referral in the database has two assessments",
    )
    with_history = set(
        Assessment.history.filter(history_type="+").values_list("id", "history_user_id")
    )
    unlogged = [
        f"assessment {pk} (referral {referral_id})"
        for pk, referral_id, user_id in Assessment.objects.values_list(
            "id", "referral_id", "decided_by_id"
        )
        if (pk, user_id) not in with_history
    ]
    checks.add(
        "every_assessment_has_history",
        unlogged,
        Assessment.objects.count(),
        "every stored assessment (acknowledged or not) has a creation history row by its decider",
    )

    # 4. Every acknowledged final reply exists once, final, as written, with its history.
    twice = [f"referral {pk}: {n} acks" for pk, n in _counts(r["referral"] for r in replies)]
    checks.add(
        "reply_acknowledged_once",
        twice,
        len(replies),
        "no referral acknowledged a final reply more than once",
    )
    stored_replies = {
        reply.pk: reply
        for reply in Reply.objects.filter(pk__in=[r["reply"] for r in replies]).select_related(
            "author"
        )
    }
    assessment_of = dict(
        Assessment.objects.filter(referral_id__in=[r["referral"] for r in replies]).values_list(
            "referral_id", "id"
        )
    )
    final_history = Counter(
        Reply.history.filter(id__in=stored_replies.keys(), is_final=True).values_list(
            "id", "history_user__username"
        )
    )
    bad_replies = []
    for ack in replies:
        reply = stored_replies.get(ack["reply"])
        problem = None
        if reply is None:
            problem = "not stored"
        elif reply.referral_id != ack["referral"]:
            problem = f"belongs to referral {reply.referral_id}"
        elif not reply.is_final:
            problem = "not final"
        elif reply.author.username != ack["user"]:
            problem = f"author {reply.author.username}, acknowledged to {ack['user']}"
        elif reply.text != ack["text"].strip():
            problem = "text differs from what was sent"
        elif reply.assessment_id != assessment_of.get(ack["referral"]):
            problem = f"linked to assessment {reply.assessment_id}"
        elif final_history[(reply.pk, ack["user"])] != 1:
            problem = f"{final_history[(reply.pk, ack['user'])]} final history rows by the author"
        if problem:
            bad_replies.append(f"referral {ack['referral']} reply {ack['reply']}: {problem}")
    checks.add(
        "reply_stored_exactly_once",
        bad_replies,
        len(replies),
        "each acknowledged final reply is stored, final, with the text sent, by its author, "
        "with one final history row",
    )
    reply_doubles = (
        Reply.objects.values("referral_id").annotate(n=Count("id")).filter(n__gt=1)
    )  # the flow creates one reply per referral, so two are a duplicate
    checks.add(
        "no_referral_replied_twice",
        [f"referral {row['referral_id']}: {row['n']} replies" for row in reply_doubles],
        Reply.objects.count(),
        "no referral in the database has two replies",
    )

    acknowledged = {d["referral"] for d in decisions}
    stored = set(Assessment.objects.values_list("referral_id", flat=True))
    counts = {
        "decisions_acknowledged": len(decisions),
        "assessments_in_database": Assessment.objects.count(),
        "stored_not_acknowledged": len(stored - acknowledged),
        "unacknowledged_decide_attempts": len(unacknowledged),
        "unacknowledged_attempts_stored": len(unacknowledged & stored),
        "replies_acknowledged": len(replies),
        "final_replies_in_database": Reply.objects.filter(is_final=True).count(),
        "referrals_new_left": Referral.objects.filter(status=Referral.Status.NEW).count(),
        "referrals_in_triage": Referral.objects.filter(status=Referral.Status.IN_TRIAGE).count(),
    }
    return {
        "ok": all(result["ok"] for result in checks.results),
        "checks": checks.results,
        "counts": counts,
    }


def _counts(values) -> list[tuple[int, int]]:
    return [(value, n) for value, n in Counter(values).items() if n > 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("acks", help="JSON file written by run.py")
    parser.add_argument("--database-url", default=_django.DEFAULT_DATABASE_URL)
    parser.add_argument("--output", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    with open(args.acks, encoding="utf-8") as handle:
        acks = json.load(handle)
    result = check(acks, args.database_url)
    text = json.dumps(result, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
