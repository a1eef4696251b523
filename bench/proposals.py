"""Proposed changes to files this benchmark does not own, to measure them before they are made.

`bench/run.py --proposals` patches them in for the run (nothing here is imported by the
application). Each function is a drop-in for the one named in its docstring; bench/README.md
says what each one changes and what it measured.
"""

from __future__ import annotations

from datetime import date

from django.db.models import Case, IntegerField, Subquery, When

from triage.models import Referral
from triage.selectors import (
    WAITING_STATUSES,
    WorklistFilters,
    WorklistPage,
    _personnummer_candidates,
    overdue_q,
)


class CappedCount(Subquery):
    """SELECT COUNT(*) FROM (<a LIMITed subquery>): counts at most the subquery's limit."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) capped)"
    output_field = IntegerField()


# A count above this is shown as "1000+": nobody pages through a thousand referrals, and an
# exact count of every decided referral costs a scan of all of them on every page view.
COUNT_CAP = 1000


def worklist_page(
    filters: WorklistFilters, *, user, today: date, page: int = 1, per_page: int = 25
) -> WorklistPage:
    """For triage.selectors.worklist_page: the same page, with

    1. per-status counts capped at COUNT_CAP + 1 (one query: a UNION of one LIMITed count per
       status, each an index range scan of at most COUNT_CAP + 1 entries), instead of
       counting every referral that matches the filters;
    2. a deferred join for the page: the page's ids are found with OFFSET in the index alone
       (worklist_requested_idx / worklist_waiting_order_idx are index-only for it), and only
       those 25 rows are read and joined to patient and user, instead of joining and sorting
       every row up to the offset.
    """
    import re

    base = Referral.objects.all()
    q = filters.q.strip()
    if q:
        numbers = _personnummer_candidates(q)
        if numbers is not None:
            base = base.filter(patient__personal_number__in=numbers)
        else:
            base = base.filter(patient__name__iregex=re.escape(q))
    if filters.requested:
        base = base.filter(requested=filters.requested)
    if filters.mine:
        base = base.filter(assigned_to=user)
    if filters.overdue:
        base = base.filter(overdue_q(today))

    # One query: a scalar subquery per status counting at most COUNT_CAP + 1 matching index
    # entries; selected "from" one referral row (no row at all: there are no referrals).
    capped = {
        f"n_{status}": CappedCount(
            base.filter(status=status).order_by().values("status")[: COUNT_CAP + 1]
        )
        for status in Referral.Status.values
    }
    found = Referral.objects.order_by().values(**capped)[:1]
    counts = {name[2:]: n for row in found for name, n in row.items()}
    if filters.status == "all":
        statuses = list(Referral.Status.values)
    elif filters.status in Referral.Status.values:
        statuses = [filters.status]
    else:
        statuses = list(WAITING_STATUSES)
    total = sum(counts.get(status, 0) for status in statuses)
    capped = any(counts.get(status, 0) > COUNT_CAP for status in statuses)
    number = max(1, page)
    if not capped:
        number = min(number, max(1, -(-total // per_page)))
    order = (
        Case(
            When(status=Referral.Status.ESCALATED, then=0),
            default=1,
            output_field=IntegerField(),
        ),
        "received_at",
        "id",
    )
    # One row more than the page says whether there is a next page when the total is capped.
    page_ids = (
        base.filter(status__in=statuses)
        .order_by(*order)
        .values("pk")[(number - 1) * per_page : number * per_page + 1]
    )
    rows = list(
        Referral.objects.filter(pk__in=page_ids)
        .select_related("patient", "assigned_to")
        .order_by(*order)
    )
    more = len(rows) > per_page
    rows = rows[:per_page]
    num_pages = number + (1 if more else 0) if capped else max(1, -(-total // per_page))
    return WorklistPage(
        rows=rows,
        counts={status: counts.get(status, 0) for status in Referral.Status.values},
        total=total,
        number=number,
        num_pages=num_pages,
    )


def apply() -> list[str]:
    """Patch the proposals in; returns what was patched."""
    import bench.views
    import triage.selectors
    import triage.views.worklist

    for module in (triage.selectors, triage.views.worklist, bench.views):
        module.worklist_page = worklist_page
    return ["triage.selectors.worklist_page (capped counts, deferred join)"]
