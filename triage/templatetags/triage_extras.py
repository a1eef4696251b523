"""Small template filters for the triage pages."""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.utils import timezone
from django.utils.formats import number_format

from triage import rules, selectors

register = template.Library()

STATUS_COLOURS = {
    "new": "primary",
    "in_triage": "info",
    "awaiting_information": "warning",
    "decided": "success",
    "returned": "secondary",
    "rereview": "secondary",
    "escalated": "danger",
    "cancelled": "dark",
}
# The referrer's priority; routine gets no badge.
PRIORITY_COLOURS = {"stat": "danger", "asap": "warning", "urgent": "warning"}


@register.filter
def get_item(mapping: dict, key: str):
    return mapping.get(key, 0)


@register.filter
def capped_count(count: int) -> str:
    """A worklist count, which stops counting above COUNT_CAP (selectors.worklist_page)."""
    if count > selectors.COUNT_CAP:
        return f"{number_format(selectors.COUNT_CAP, force_grouping=True)}+"
    return str(count)


@register.filter
def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "secondary")


@register.filter
def priority_colour(priority: str) -> str:
    return PRIORITY_COLOURS.get(priority, "")


@register.filter
def days_until(moment: datetime, today: date) -> int:
    return (today - timezone.localtime(moment).date()).days


_CATALOGUES = {
    "ACTIONS": rules.ACTIONS,
    "INDICATIONS": rules.INDICATIONS,
    "REPLY_KINDS": rules.REPLY_KINDS,
    "SUGGESTIONS": rules.SUGGESTIONS,
    "QUESTIONS": rules.QUESTIONS,
}


@register.filter
def rules_label(code: str | None, catalogue: str) -> str:
    """The Swedish label of an engine code: {{ action|rules_label:"ACTIONS" }}."""
    return _CATALOGUES[catalogue].get(code or "", code or "")
