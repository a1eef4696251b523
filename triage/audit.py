"""The auditor's reads: a registry of the kinds of history, the timeline and the referral record.

Every tracked model keeps its versions in its own simple-history table. Rather than the
admin's per-model history list, the registry below (after Wagtail's registry of log
actions) says which tables count as which kind of object, how a row names its object,
which referral and patient it belongs to and how its values are shown. The timeline merges
the registered tables newest first with a UNION, so that a page costs the same few queries
whether the history holds ten rows or ten million.

What changed in a row is its difference from the version before (its predecessor). The
predecessors of a page's rows are found in one query (a window over the versions of the
objects on the page, returning only the predecessors) and fetched with the page's rows by
history id, rather than looked up per row: a per-row "newest earlier version of this
object" subquery reads every version of the object for every row, which for an object
with 10,000 versions made one page take seconds.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.contrib.auth.models import User
from django.db import connection, models
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Value, Window
from django.db.models.functions import Cast, Coalesce, JSONObject, Lead
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise, cached_property
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from triage import rules
from triage.models import (
    AccessLog,
    Assessment,
    Flag,
    GuidelineVersion,
    Patient,
    PriorImaging,
    Referral,
    Reply,
    ReplyTemplate,
)
from triage.selectors import SubqueryCount

# --- Filters ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineFilters:
    user: str = ""  # user name, exact (case-insensitive)
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    kind: str = ""  # a registry code; "" = every kind
    patient_number: str = ""  # 12 digits, canonical
    patient_name: str = ""
    order_number: str = ""

    @property
    def about_patient(self) -> bool:
        return bool(self.patient_number or self.patient_name)


def day_bounds(date_from: date | None, date_to: date | None) -> tuple[datetime | None, ...]:
    """Aware datetimes for a date range in local time, the end day included."""
    start = timezone.make_aware(datetime.combine(date_from, time.min)) if date_from else None
    end = (
        timezone.make_aware(datetime.combine(date_to + timedelta(days=1), time.min))
        if date_to
        else None
    )
    return start, end


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position after the last row read, for streaming the whole timeline in chunks."""

    at: datetime
    kind: str
    history_id: int


# --- What a timeline row says ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldChange:
    name: str
    label: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class FlagChange:
    added: bool
    code: str
    label: str  # the label as it was when the decision was recorded


@dataclass(slots=True)
class TimelineEntry:
    kind: str
    kind_label: str
    history_id: int
    at: datetime
    user_name: str
    user_display: str
    event: str  # "Skapad", "Ändrad", "Borttagen"
    object_label: str
    referral_id: int | None
    patient_id: int | None
    patient_label: str
    changes: list[FieldChange] = field(default_factory=list)
    flag_changes: list[FlagChange] = field(default_factory=list)
    summary: str = ""  # a free-text description where there are no field values (users)
    reason: str = ""
    override_reason: str = ""


HISTORY_TYPES = {
    "+": gettext_lazy("Skapad"),
    "~": gettext_lazy("Ändrad"),
    "-": gettext_lazy("Borttagen"),
}
EMPTY = "—"

_TEXT, _INTEGER = models.CharField(), models.BigIntegerField()
# The columns every branch of the timeline UNION yields, in this order, with the type a
# branch's NULL in that column must have. The names carry a prefix so that they never
# clash with a field of a historical model.
DETAIL_COLUMNS: dict[str, models.Field] = {
    "t_kind": _TEXT,
    "t_hid": _INTEGER,
    "t_at": models.DateTimeField(),
    "t_type": _TEXT,
    "t_reason": _TEXT,
    "t_username": _TEXT,
    "t_first": _TEXT,
    "t_last": _TEXT,
    "t_referral": _INTEGER,
    "t_source": _TEXT,
    "t_order": _TEXT,
    "t_patient": _INTEGER,
    "t_pname": _TEXT,
    "t_pnumber": _TEXT,
    "t_data": models.JSONField(),
}
# The kind of the rows in the detail query that carry a decision's flags (see _flag_branch).
FLAG_ROWS = "flags"


def _null(output_field: models.Field) -> Cast:
    # Typed, because PostgreSQL resolves UNION column types pairwise: NULL with NULL
    # becomes text, which then cannot meet a bigint from the next branch.
    return Cast(Value(None), output_field=output_field)


def _detail_values(rows: QuerySet, **columns: Any) -> QuerySet:
    """`rows` in the shape of the detail UNION: the given DETAIL_COLUMNS (NULL for the rest)
    in their order, then any further columns as given."""
    values = {
        name: columns.pop(name) if name in columns else _null(field)
        for name, field in DETAIL_COLUMNS.items()
    }
    return rows.values(**values, **columns)


def _decode_json(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


def _user_display(username: str | None, first: str | None, last: str | None) -> str:
    full = f"{first or ''} {last or ''}".strip()
    if not username:
        return _("(system)")
    return f"{full} ({username})" if full else username


def _patient_label(name: str | None, number: str | None) -> str:
    if not number:
        return ""
    return f"{name}, {number[:8]}-{number[8:]}"


# --- The registry ----------------------------------------------------------------------------


class HistoryKind:
    """One kind of object whose changes the timeline shows."""

    code: str  # lowercase letters; used in URLs, SQL ordering and the CSV
    label: Promise

    def source(self) -> QuerySet:
        raise NotImplementedError

    time_field = "history_date"
    id_field = "history_id"
    user_path = "history_user"
    referral_prefix: str | None = None  # lookup prefix to the referral, "" = the row itself
    patient_prefix: str | None = None  # lookup prefix to the patient, "" = the row itself

    def filtered(self, filters: TimelineFilters) -> QuerySet | None:
        """The rows of this kind that the filters select, or None if none can match."""
        if filters.kind and filters.kind != self.code:
            return None
        if filters.about_patient and self.patient_prefix is None:
            return None
        if filters.order_number and self.referral_prefix is None:
            return None
        qs = self.source()
        if filters.user:
            qs = qs.filter(**{f"{self.user_path}__username__iexact": filters.user})
        start, end = day_bounds(filters.date_from, filters.date_to)
        if start:
            qs = qs.filter(**{f"{self.time_field}__gte": start})
        if end:
            qs = qs.filter(**{f"{self.time_field}__lt": end})
        if filters.patient_number:
            qs = qs.filter(**{f"{self.patient_prefix}personal_number": filters.patient_number})
        if filters.patient_name:
            # iregex is Unicode-aware on both databases, so "åsa" finds "Åsa".
            qs = qs.filter(
                **{f"{self.patient_prefix}name__iregex": re.escape(filters.patient_name)}
            )
        if filters.order_number:
            # By the referral's id: an index lookup in every historical table (the order
            # number of a historical referral row is not indexed, the referral's is).
            qs = qs.filter(
                **{
                    f"{self.referral_prefix}id__in": Referral.objects.filter(
                        order_number=filters.order_number
                    ).values("id")
                }
            )
        return qs

    def page_branch(self, filters: TimelineFilters, after: Cursor | None) -> QuerySet | None:
        qs = self.filtered(filters)
        if qs is None:
            return None
        if after is not None:
            # Rows sort by time (newest first), then kind code, then history id (highest
            # first); this is the part of that order after the cursor.
            before = Q(**{f"{self.time_field}__lt": after.at})
            same_time = Q(**{self.time_field: after.at})
            if self.code > after.kind:
                qs = qs.filter(before | same_time)
            elif self.code == after.kind:
                qs = qs.filter(
                    before | (same_time & Q(**{f"{self.id_field}__lt": after.history_id}))
                )
            else:
                qs = qs.filter(before)
        # No model ordering inside a UNION branch; the merged query orders.
        return qs.order_by().values(
            t_kind=Value(self.code), t_hid=F(self.id_field), t_at=F(self.time_field)
        )

    def versions_branch(self, history_ids: Iterable[int]) -> QuerySet | None:
        """(kind, history id of the predecessor, history id of the row it precedes) for
        these rows, or None if this kind has no versions to compare."""
        return None

    def detail_branch(self, history_ids: Iterable[int]) -> QuerySet:
        raise NotImplementedError

    def entry(
        self, row: dict, previous: dict | None, flags: dict[int, dict[int, tuple[str, str]]]
    ) -> TimelineEntry:
        raise NotImplementedError

    def _base_entry(self, row: dict, *, event: str, object_label: str) -> TimelineEntry:
        return TimelineEntry(
            kind=self.code,
            kind_label=str(self.label),
            history_id=row["t_hid"],
            at=row["t_at"],
            user_name=row["t_username"] or "",
            user_display=_user_display(row["t_username"], row["t_first"], row["t_last"]),
            event=event,
            object_label=object_label,
            referral_id=row["t_referral"],
            patient_id=row["t_patient"],
            patient_label=_patient_label(row["t_pname"], row["t_pnumber"]),
            reason=row["t_reason"] or "",
        )


Formatter = Callable[[Any], str]


class TrackedModelKind(HistoryKind):
    """A model tracked by django-simple-history: one row per version, diffed field by field."""

    def __init__(
        self,
        *,
        code: str,
        label: Promise,
        model: type[models.Model],
        describe: Callable[[dict, dict], str],
        referral_prefix: str | None = None,
        patient_prefix: str | None = None,
        predecessor_key: str = "id",
        excluded: Iterable[str] = (),
        related_labels: dict[str, str] | None = None,
        formatters: dict[str, Formatter] | None = None,
        why: Callable[[dict], str] | None = None,
        has_flags: bool = False,
    ) -> None:
        self.code = code
        self.label = label
        self.model = model
        self.history_model = model.history.model
        self.describe = describe
        self.referral_prefix = referral_prefix
        self.patient_prefix = patient_prefix
        self.predecessor_key = predecessor_key
        # Flags travel in their own history table and are compared by flag_changes();
        # diff_against() would otherwise read them with a query per row.
        m2m = {f.name for f in self.history_model._history_m2m_fields}
        self.excluded = {"id", *m2m, *excluded}
        self.related_labels = related_labels or {}
        self.formatters = formatters or {}
        self.why = why
        self.has_flags = has_flags
        self._labels_by_language: dict[str, dict[str, str]] = {}

    def source(self) -> QuerySet:
        return self.history_model.objects.all()

    @cached_property
    def fields(self) -> list[models.Field]:
        names = [f.name for f in self.history_model.tracked_fields]
        return [self.history_model._meta.get_field(name) for name in names]

    def _labels(self) -> dict[str, str]:
        """Field name → verbose name in the active language (built once per language)."""
        language = get_language()
        if language not in self._labels_by_language:
            self._labels_by_language[language] = {f.name: str(f.verbose_name) for f in self.fields}
        return self._labels_by_language[language]

    def _json(self) -> JSONObject:
        values: dict[str, Any] = {f.attname: F(f.attname) for f in self.fields}
        # The display names of related rows travel with the values, so that a diff of a
        # foreign key shows "Anna Radiolog" rather than 17 without another query.
        values.update(
            {f"{attname}__label": F(path) for attname, path in self.related_labels.items()}
        )
        return JSONObject(**values)

    def versions_branch(self, history_ids: Iterable[int]) -> QuerySet:
        # The version before, in the order simple-history's prev_record uses (time), with
        # the history id breaking ties: the rows whose next version (LEAD over every version
        # of the object) is one of these rows. Django filters on the window function after
        # computing it (an outer query), so every version counts but only the predecessors
        # leave the database.
        ids = list(history_ids)
        key = self.predecessor_key
        objects = self.history_model.objects.filter(history_id__in=ids).values(key)
        return (
            self.history_model.objects.filter(**{f"{key}__in": objects})
            .annotate(
                t_next=Window(
                    Lead("history_id"),
                    partition_by=[F(key)],
                    order_by=[F("history_date").asc(), F("history_id").asc()],
                )
            )
            .filter(t_next__in=ids)
            .order_by()
            .values(t_kind=Value(self.code), t_hid=F("history_id"), t_before=F("t_next"))
        )

    def detail_branch(self, history_ids: Iterable[int]) -> QuerySet:
        return self.detail_values(
            self.history_model.objects.filter(history_id__in=list(history_ids)).order_by()
        )

    def detail_values(self, rows: QuerySet, **extra: Any) -> QuerySet:
        """These rows in the shape of the detail UNION (DETAIL_COLUMNS, then `extra`)."""
        ref, pat = self.referral_prefix, self.patient_prefix
        about: dict[str, Any] = {}
        if ref is not None:
            about.update(
                t_referral=F(f"{ref}id"),
                t_source=F(f"{ref}source"),
                t_order=F(f"{ref}order_number"),
            )
        if pat is not None:
            about.update(
                t_patient=F(f"{pat}id"),
                t_pname=F(f"{pat}name"),
                t_pnumber=F(f"{pat}personal_number"),
            )
        return _detail_values(
            rows,
            t_kind=Value(self.code),
            t_hid=F("history_id"),
            t_at=F("history_date"),
            t_type=F("history_type"),
            t_reason=F("history_change_reason"),
            t_username=F("history_user__username"),
            t_first=F("history_user__first_name"),
            t_last=F("history_user__last_name"),
            **about,
            t_data=self._json(),
            **extra,
        )

    # -- values --------------------------------------------------------------------------

    def _decoded(self, row: dict) -> tuple[dict, models.Model]:
        """A detail row's values and instance, made once per row: on a page of one
        object's versions, each row is also the predecessor of the entry before it."""
        if "_decoded" not in row:
            data = _decode_json(row["t_data"]) or {}
            row["_decoded"] = (data, self.instance(data))
        return row["_decoded"]

    def instance(self, data: dict) -> models.Model:
        """A historical model instance (unsaved) from the JSON the query built."""
        return self.history_model(
            **{f.attname: _from_json(f, data.get(f.attname)) for f in self.fields}
        )

    def display(self, name: str, value: Any, data: dict) -> str:
        model_field = self.history_model._meta.get_field(name)
        if value is None or value == "":
            return EMPTY
        if name in self.formatters:
            return self.formatters[name](value)
        if isinstance(model_field, models.ForeignKey):
            return str(data.get(f"{model_field.attname}__label") or value)
        return format_value(model_field, value)

    def changes(
        self, new: models.Model, new_data: dict, old: models.Model | None, old_data: dict
    ) -> list[FieldChange]:
        labels = self._labels()
        if old is None:
            # A first version: everything it was created with counts as the change.
            return [
                FieldChange(
                    name=f.name,
                    label=labels[f.name],
                    before=EMPTY,
                    after=self.display(f.name, getattr(new, f.attname), new_data),
                )
                for f in self.fields
                if f.name not in self.excluded
                and f.editable
                and getattr(new, f.attname) not in (None, "", [], {})
            ]
        delta = new.diff_against(old, excluded_fields=self.excluded)
        return [
            FieldChange(
                name=change.field,
                label=labels.get(change.field, change.field),
                before=self.display(change.field, change.old, old_data),
                after=self.display(change.field, change.new, new_data),
            )
            for change in delta.changes
        ]

    def entry(
        self, row: dict, previous: dict | None, flags: dict[int, dict[int, tuple[str, str]]]
    ) -> TimelineEntry:
        data, new = self._decoded(row)
        prev_data, old = self._decoded(previous) if previous is not None else ({}, None)
        entry = self._base_entry(
            row,
            event=str(HISTORY_TYPES.get(row["t_type"], row["t_type"])),
            object_label=self.describe(data, row),
        )
        entry.changes = self.changes(new, data, old, prev_data)
        if self.has_flags:
            entry.flag_changes = flag_changes(
                flags.get(row["t_hid"], {}),
                flags.get(previous["t_hid"], {}) if previous is not None else {},
            )
        if self.why:
            entry.override_reason = self.why(data)
        return entry


class AdminUserKind(HistoryKind):
    """Users and roles have no simple-history table; the admin's own log is their history."""

    code = "user"
    label = gettext_lazy("Användare och roller")
    time_field = "action_time"
    id_field = "id"
    user_path = "user"

    def source(self) -> QuerySet:
        return LogEntry.objects.filter(
            content_type__app_label="auth", content_type__model__in=("user", "group")
        )

    def detail_branch(self, history_ids: Iterable[int]) -> QuerySet:
        return _detail_values(
            self.source().filter(id__in=list(history_ids)).order_by(),
            t_kind=Value(self.code),
            t_hid=F("id"),
            t_at=F("action_time"),
            t_type=Value("", output_field=_TEXT),
            t_reason=Value("", output_field=_TEXT),
            t_username=F("user__username"),
            t_first=F("user__first_name"),
            t_last=F("user__last_name"),
            t_data=JSONObject(
                model=F("content_type__model"),
                object_repr=F("object_repr"),
                action_flag=F("action_flag"),
                change_message=F("change_message"),
            ),
        )

    def entry(
        self, row: dict, previous: dict | None, flags: dict[int, dict[int, tuple[str, str]]]
    ) -> TimelineEntry:
        data = _decode_json(row["t_data"]) or {}
        flag = data.get("action_flag")
        event = {ADDITION: "+", DELETION: "-"}.get(flag, "~")
        what = _("Användare") if data.get("model") == "user" else _("Roll (grupp)")
        entry = self._base_entry(
            row,
            event=str(HISTORY_TYPES[event]),
            object_label=f"{what}: {data.get('object_repr') or ''}",
        )
        entry.summary = LogEntry(
            action_flag=flag, change_message=data.get("change_message") or ""
        ).get_change_message()
        return entry


class HistoryRegistry:
    """The kinds of object the auditor sees, in the order the kind filter lists them."""

    def __init__(self) -> None:
        self._kinds: dict[str, HistoryKind] = {}

    def register(self, kind: HistoryKind) -> HistoryKind:
        # Plain lowercase letters: the timeline orders by code in SQL and compares codes in
        # Python for its cursor, and only for such strings do all collations agree.
        if not re.fullmatch(r"[a-z]+", kind.code):
            raise ValueError(f"history kind code {kind.code!r} must be lowercase letters")
        if kind.code in self._kinds:
            raise ValueError(f"history kind {kind.code!r} registered twice")
        self._kinds[kind.code] = kind
        return kind

    def get(self, code: str) -> HistoryKind:
        return self._kinds[code]

    def __iter__(self) -> Iterator[HistoryKind]:
        return iter(self._kinds.values())

    def choices(self) -> list[tuple[str, str]]:
        return [(kind.code, str(kind.label)) for kind in self]


# --- Value formatting ----------------------------------------------------------------------


def _from_json(model_field: models.Field, raw: Any) -> Any:
    """A Python value from what JSON_OBJECT made of a column on SQLite or PostgreSQL."""
    if raw is None:
        return None
    if isinstance(model_field, models.JSONField):
        # SQLite hands a JSON column to json_object() as its text; PostgreSQL nests it.
        return json.loads(raw) if connection.vendor == "sqlite" and isinstance(raw, str) else raw
    if isinstance(model_field, models.DateTimeField):
        moment = parse_datetime(raw) if isinstance(raw, str) else raw
        if moment is not None and timezone.is_naive(moment):
            moment = moment.replace(tzinfo=UTC)  # SQLite stores UTC without an offset
        return moment
    if isinstance(model_field, models.DateField):
        return date.fromisoformat(str(raw)[:10])
    if isinstance(model_field, models.DecimalField):
        return Decimal(str(raw))  # str() first: a float's binary tail is not a change
    if isinstance(model_field, models.BooleanField):
        return bool(raw)
    return model_field.to_python(raw)


def format_value(model_field: models.Field | None, value: Any) -> str:
    """How an auditor reads a stored value; never markup (templates escape it)."""
    if value is None or value == "":
        return EMPTY
    if model_field is not None and model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return _("Ja") if value else _("Nej")
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _labels(catalogue: dict[str, str]) -> Formatter:
    def formatter(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(catalogue.get(code, code) for code in value) or EMPTY
        return catalogue.get(value, value)

    return formatter


def _weeks(value: Any) -> str:
    return _("%(weeks)s veckor") % {"weeks": value}


def _referral_label(data: dict, row: dict) -> str:
    return f"{row['t_source'] or ''}/{row['t_order'] or ''}"


registry = HistoryRegistry()
registry.register(
    TrackedModelKind(
        code="referral",
        label=gettext_lazy("Remisser"),
        model=Referral,
        describe=_referral_label,
        referral_prefix="",
        patient_prefix="patient__",
        # The version counter moves with every write and says nothing of its own.
        excluded=("version",),
        related_labels={"assigned_to_id": "assigned_to__username", "patient_id": "patient__name"},
    )
)
registry.register(
    TrackedModelKind(
        code="decision",
        label=gettext_lazy("Beslut"),
        model=Assessment,
        describe=lambda data, row: (
            _("Beslut om %(referral)s") % {"referral": _referral_label(data, row)}
        ),
        referral_prefix="referral__",
        patient_prefix="referral__patient__",
        # A new decision on a referral is a new Assessment row; what the auditor asks is
        # how it differs from the previous decision on the same referral.
        predecessor_key="referral_id",
        excluded=("decided_at", "decided_by", "recommendation"),
        related_labels={
            "referral_id": "referral__order_number",
            "decided_by_id": "decided_by__username",
            "guideline_version_id": "guideline_version__label",
        },
        formatters={
            "questions": _labels(rules.QUESTIONS),
            "recommended_action": _labels(rules.ACTIONS),
            "priority_weeks": _weeks,
            "recommended_priority_weeks": _weeks,
        },
        why=lambda data: data.get("override_reason") or "",
        has_flags=True,
    )
)
registry.register(
    TrackedModelKind(
        code="reply",
        label=gettext_lazy("Svar"),
        model=Reply,
        describe=lambda data, row: (
            _("Svar på %(referral)s") % {"referral": _referral_label(data, row)}
        ),
        referral_prefix="referral__",
        patient_prefix="referral__patient__",
        excluded=("written_at",),
        related_labels={
            "referral_id": "referral__order_number",
            "author_id": "author__username",
            "template_id": "template__title",
        },
    )
)
registry.register(
    TrackedModelKind(
        code="template",
        label=gettext_lazy("Svarsmallar"),
        model=ReplyTemplate,
        describe=lambda data, row: _("Svarsmall ”%(title)s”") % {"title": data.get("title")},
    )
)
registry.register(
    TrackedModelKind(
        code="guideline",
        label=gettext_lazy("Riktlinjeversioner"),
        model=GuidelineVersion,
        describe=lambda data, row: _("Riktlinjeversion %(label)s") % {"label": data.get("label")},
    )
)
registry.register(
    TrackedModelKind(
        code="flag",
        label=gettext_lazy("Flaggkatalog"),
        model=Flag,
        describe=lambda data, row: _("Flagga %(code)s") % {"code": data.get("code")},
    )
)
registry.register(
    TrackedModelKind(
        code="imaging",
        label=gettext_lazy("Tidigare undersökningar"),
        model=PriorImaging,
        describe=lambda data, row: (
            _("Tidigare undersökning %(region)s %(date)s")
            % {"region": data.get("region"), "date": data.get("performed_on")}
        ),
        patient_prefix="patient__",
    )
)
registry.register(
    TrackedModelKind(
        code="patient",
        label=gettext_lazy("Patienter"),
        model=Patient,
        describe=lambda data, row: _("Patient %(name)s") % {"name": data.get("name")},
        patient_prefix="",
        formatters={"personal_number": lambda number: f"{number[:8]}-{number[8:]}"},
    )
)
registry.register(AdminUserKind())


# --- Flags of decisions, with the labels of their time --------------------------------------


def _flag_rows(history_ids: Iterable[int] | QuerySet) -> tuple[QuerySet, dict[str, Any]]:
    """The flag links of these HistoricalAssessment rows (ids, or a subquery of them) and
    the expressions of their history id, flag id, code and label as it was when the
    decision was recorded."""
    through = apps.get_model("triage", "HistoricalAssessment_flags")
    flag_history = Flag.history.model.objects.filter(id=OuterRef("flag_id")).order_by(
        "-history_date", "-history_id"
    )
    then = flag_history.filter(history_date__lte=OuterRef("history__history_date"))
    values = {
        "history_id": F("history_id"),
        "flag_id": F("flag_id"),
        "code": Coalesce(F("flag__code"), Subquery(flag_history.values("code")[:1])),
        # The label the radiologist saw; a flag without an older version (never edited
        # since it was loaded) shows its current label.
        "label": Coalesce(
            Subquery(then.values("label")[:1]),
            F("flag__label"),
            Subquery(flag_history.values("label")[:1]),
        ),
    }
    if not isinstance(history_ids, QuerySet):
        history_ids = [hid for hid in set(history_ids) if hid]
    rows = through.objects.filter(history_id__in=history_ids)
    return rows.order_by(), values


def _add_flag(result: dict[int, dict[int, tuple[str, str]]], row: dict) -> None:
    code = row["code"] or f"#{row['flag_id']}"
    result[row["history_id"]][row["flag_id"]] = (code, row["label"] or code)


def flags_by_version(history_ids: Iterable[int]) -> dict[int, dict[int, tuple[str, str]]]:
    """For each HistoricalAssessment id: {flag id: (code, label as it was then)}, one query."""
    rows, values = _flag_rows(history_ids)
    result: dict[int, dict[int, tuple[str, str]]] = defaultdict(dict)
    # Prefixed names: an annotation may not be called like a field of the model.
    for row in rows.values(**{f"f_{name}": value for name, value in values.items()}):
        _add_flag(result, {name[2:]: value for name, value in row.items()})
    return result


def _flag_branch(history_ids: Iterable[int]) -> QuerySet:
    """The flags of these decisions as rows of the detail UNION (kind FLAG_ROWS; the values
    travel in t_data), so that a page of the timeline needs no query of its own for them."""
    return _flag_branch_values(*_flag_rows(history_ids))


def _flag_branch_values(rows: QuerySet, values: dict[str, Any]) -> QuerySet:
    return _detail_values(
        rows, t_kind=Value(FLAG_ROWS), t_hid=F("m2m_history_id"), t_data=JSONObject(**values)
    )


def flag_changes(
    now: dict[int, tuple[str, str]], before: dict[int, tuple[str, str]]
) -> list[FlagChange]:
    added = [FlagChange(True, *now[pk]) for pk in now.keys() - before.keys()]
    removed = [FlagChange(False, *before[pk]) for pk in before.keys() - now.keys()]
    return sorted(added, key=lambda c: c.label) + sorted(removed, key=lambda c: c.label)


# --- The timeline ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelinePage:
    entries: list[TimelineEntry]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def patient_referrals(self) -> list[tuple[int, int | None]]:
        return patient_referrals(self.entries)


def patient_referrals(entries: Iterable[TimelineEntry]) -> list[tuple[int, int | None]]:
    return [(e.patient_id, e.referral_id) for e in entries if e.patient_id is not None]


def _page_keys(
    filters: TimelineFilters, *, offset: int, limit: int, after: Cursor | None = None
) -> list[dict]:
    """(kind, history id, time) of one page, newest first: one UNION query."""
    branches = [
        branch for kind in registry if (branch := kind.page_branch(filters, after)) is not None
    ]
    if not branches:
        return []
    merged = branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]
    return list(merged.order_by("-t_at", "t_kind", "-t_hid")[offset : offset + limit])


def _union(branches: list[QuerySet]) -> QuerySet:
    return branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]


def _predecessors(keys: list[dict]) -> dict[tuple[str, int], int]:
    """(kind, history id) → the history id of the version before it: one UNION query that
    returns only the predecessors, however many versions the objects have."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    for key in keys:
        by_kind[key["t_kind"]].append(key["t_hid"])
    branches = [
        branch
        for code, ids in by_kind.items()
        if (branch := registry.get(code).versions_branch(ids)) is not None
    ]
    if not branches:
        return {}
    return {(row["t_kind"], row["t_before"]): row["t_hid"] for row in _union(branches)}


def _entries(keys: list[dict]) -> list[TimelineEntry]:
    """The full rows of these keys with their predecessors and the decisions' flags: one
    query for the predecessors' ids, one UNION for all the rows and flags."""
    if not keys:
        return []
    previous = _predecessors(keys)
    wanted: dict[str, set[int]] = defaultdict(set)
    for key in keys:
        wanted[key["t_kind"]].add(key["t_hid"])
    for (code, _hid), before in previous.items():
        wanted[code].add(before)
    branches = [registry.get(code).detail_branch(ids) for code, ids in wanted.items()]
    flag_ids = [
        hid
        for code, ids in wanted.items()
        if getattr(registry.get(code), "has_flags", False)
        for hid in ids
    ]
    if flag_ids:
        branches.append(_flag_branch(flag_ids))
    rows: dict[tuple[str, int], dict] = {}
    flags: dict[int, dict[int, tuple[str, str]]] = defaultdict(dict)
    for row in _union(branches):
        if row["t_kind"] == FLAG_ROWS:
            _add_flag(flags, _decode_json(row["t_data"]))
        else:
            rows[row["t_kind"], row["t_hid"]] = row
    entries = []
    for key in keys:
        row = rows.get((key["t_kind"], key["t_hid"]))
        if row is None:
            continue
        before = previous.get((key["t_kind"], key["t_hid"]))
        entries.append(
            registry.get(key["t_kind"]).entry(
                row, rows.get((key["t_kind"], before)) if before else None, flags
            )
        )
    return entries


def timeline_page(filters: TimelineFilters, *, page: int = 1, per_page: int = 50) -> TimelinePage:
    """One page of the timeline in three queries, however long the history is."""
    number = max(1, page)
    keys = _page_keys(filters, offset=(number - 1) * per_page, limit=per_page + 1)
    # One row more than the page tells whether there is a next page without a COUNT(*),
    # which would read the whole history on every page.
    return TimelinePage(
        entries=_entries(keys[:per_page]), number=number, has_next=len(keys) > per_page
    )


def timeline_chunks(filters: TimelineFilters, *, size: int = 500) -> Iterator[list[TimelineEntry]]:
    """The whole filtered timeline in chunks, each read after the last (keyset, no OFFSET)."""
    after: Cursor | None = None
    while True:
        keys = _page_keys(filters, offset=0, limit=size, after=after)
        if not keys:
            return
        yield _entries(keys)
        last = keys[-1]
        after = Cursor(at=last["t_at"], kind=last["t_kind"], history_id=last["t_hid"])
        if len(keys) < size:
            return


# --- The per-referral record ---------------------------------------------------------------


@dataclass(slots=True)
class Version:
    """One historical row with what changed against the one before."""

    row: models.Model
    changes: list[FieldChange]
    user_display: str
    event: str
    has_previous: bool
    flags: list[tuple[str, str]] = field(default_factory=list)
    flag_changes: list[FlagChange] = field(default_factory=list)
    template_version: models.Model | None = None
    guideline_then: models.Model | None = None


def _versions(
    kind: TrackedModelKind, rows: list[dict], *, key: Callable[[models.Model], Any]
) -> list[Version]:
    """Each row diffed against the previous row with the same key (rows oldest first)."""
    last: dict[Any, tuple[models.Model, dict]] = {}
    versions = []
    for row in rows:
        instance, data = row["instance"], row["data"]
        previous, old_data = last.get(key(instance), (None, {}))
        versions.append(
            Version(
                row=instance,
                changes=kind.changes(instance, data, previous, old_data),
                event=str(HISTORY_TYPES.get(instance.history_type, instance.history_type)),
                has_previous=previous is not None,
                user_display=_user_display(row["t_username"], row["t_first"], row["t_last"]),
            )
        )
        last[key(instance)] = (instance, data)
    return versions


def _historical(model: type[models.Model], data: dict) -> models.Model:
    """An unsaved instance of a historical model from a JSON object of its columns."""
    return model(
        **{
            f.attname: _from_json(f, data.get(f.attname))
            for f in model._meta.concrete_fields
            if f.attname in data
        }
    )


def _json_of(model: type[models.Model]) -> JSONObject:
    return JSONObject(**{f.attname: F(f.attname) for f in model._meta.concrete_fields})


@dataclass(slots=True)
class ReferralRecord:
    referral: Referral
    referral_versions: list[Version]
    decisions: list[Version]
    replies: list[Version]
    prior_imaging: list[PriorImaging]
    access_log: list[AccessLog]
    access_log_truncated: bool
    # Per kind ("referral", "decision", "reply"): versions older than those shown.
    hidden_versions: dict[str, int]


ACCESS_LOG_ON_RECORD = 500
# Versions of each kind (referral, decisions, replies) on the record, newest first kept. A
# referral rarely has more; one that has (a reply saved ten thousand times) shows its
# newest versions and says how many more the timeline holds, so the page stays readable
# and costs the same however long the story is.
RECORD_VERSIONS = 20


def _record_rows(referral: Referral) -> tuple[dict[str, list[dict]], dict]:
    """Every version of the referral, its decisions and its replies, with the guideline
    version of each decision's time, the template version of each reply and the flags of
    each decision: one UNION query (the timeline's row shape plus t_extra)."""
    guideline_history = GuidelineVersion.history.model
    guideline = guideline_history.objects.filter(id=OuterRef("guideline_version_id"))
    # The guideline as it was when the decision was recorded; a guideline loaded without a
    # history row of its own time shows its oldest known version.
    guideline_then = Coalesce(
        Subquery(
            guideline.filter(history_date__lte=OuterRef("history_date"))
            .order_by("-history_date", "-history_id")
            .values(j=_json_of(guideline_history))[:1]
        ),
        Subquery(
            guideline.order_by("history_date", "history_id").values(j=_json_of(guideline_history))[
                :1
            ]
        ),
    )
    template_history = ReplyTemplate.history.model
    template_version = Subquery(
        template_history.objects.filter(history_id=OuterRef("template_history_id")).values(
            j=_json_of(template_history)
        )[:1]
    )
    extra = {
        "referral": _null(models.JSONField()),
        "decision": JSONObject(
            guideline=guideline_then,
            guideline_label=F("guideline_version__label"),
            decider_username=F("decided_by__username"),
            decider_first=F("decided_by__first_name"),
            decider_last=F("decided_by__last_name"),
        ),
        "reply": JSONObject(template=template_version),
    }
    branches = []
    newest: dict[str, QuerySet] = {}
    for code, t_extra in extra.items():
        kind = registry.get(code)
        assert isinstance(kind, TrackedModelKind)
        versions = kind.history_model.objects.filter(**{f"{kind.referral_prefix}id": referral.pk})
        # The newest RECORD_VERSIONS and the one before them, whose only use is as the
        # predecessor that the oldest shown version is compared with.
        newest[code] = versions.order_by("-history_date", "-history_id").values("history_id")[
            : RECORD_VERSIONS + 1
        ]
        branches.append(
            kind.detail_values(
                kind.history_model.objects.filter(history_id__in=newest[code]).order_by(),
                t_extra=t_extra,
                t_total=SubqueryCount(versions.order_by().values("history_id")),
            )
        )
    rows, values = _flag_rows(newest["decision"])
    branches.append(
        _flag_branch_values(rows, values).annotate(
            t_extra=_null(models.JSONField()), t_total=_null(models.BigIntegerField())
        )
    )
    by_kind: dict[str, list[dict]] = defaultdict(list)
    flags: dict[int, dict[int, tuple[str, str]]] = defaultdict(dict)
    for row in _union(branches):
        if row["t_kind"] == FLAG_ROWS:
            _add_flag(flags, _decode_json(row["t_data"]))
            continue
        kind = registry.get(row["t_kind"])
        assert isinstance(kind, TrackedModelKind)
        data = _decode_json(row["t_data"]) or {}
        instance = kind.instance(data)
        instance.history_id = row["t_hid"]
        instance.history_date = row["t_at"]
        instance.history_type = row["t_type"]
        instance.history_change_reason = row["t_reason"]
        by_kind[row["t_kind"]].append(
            {**row, "instance": instance, "data": data, "extra": _decode_json(row["t_extra"])}
        )
    for rows_of_kind in by_kind.values():
        rows_of_kind.sort(key=lambda row: (row["t_at"], row["t_hid"]))
    return by_kind, flags


def referral_record(referral: Referral) -> ReferralRecord:
    """The story of one referral (its newest RECORD_VERSIONS versions of each kind) in
    three queries, however many versions it has."""
    referral_kind = registry.get("referral")
    decision_kind = registry.get("decision")
    reply_kind = registry.get("reply")
    assert isinstance(referral_kind, TrackedModelKind)
    assert isinstance(decision_kind, TrackedModelKind)
    assert isinstance(reply_kind, TrackedModelKind)

    rows, flags = _record_rows(referral)
    guideline_history = GuidelineVersion.history.model
    template_history = ReplyTemplate.history.model
    for row in rows["decision"]:
        extra = row["extra"] or {}
        # What the template shows of the decider and the guideline, without a query each.
        row["instance"].decided_by = User(
            id=row["instance"].decided_by_id,
            username=extra.get("decider_username") or "",
            first_name=extra.get("decider_first") or "",
            last_name=extra.get("decider_last") or "",
        )
        row["instance"].guideline_version = GuidelineVersion(
            id=row["instance"].guideline_version_id, label=extra.get("guideline_label") or ""
        )
    decisions = _versions(decision_kind, rows["decision"], key=lambda row: row.referral_id)
    previous_flags: dict[int, tuple[str, str]] = {}
    for version, row in zip(decisions, rows["decision"], strict=True):
        current = flags.get(version.row.history_id, {})
        version.flags = sorted(current.values(), key=lambda pair: pair[1])
        version.flag_changes = flag_changes(current, previous_flags)
        previous_flags = current
        then = _decode_json((row["extra"] or {}).get("guideline"))
        version.guideline_then = _historical(guideline_history, then) if then else None

    replies = _versions(reply_kind, rows["reply"], key=lambda row: row.id)
    for version, row in zip(replies, rows["reply"], strict=True):
        used = _decode_json((row["extra"] or {}).get("template"))
        version.template_version = _historical(template_history, used) if used else None

    hidden_versions = {
        code: (rows[code][0]["t_total"] - min(len(rows[code]), RECORD_VERSIONS))
        if rows[code]
        else 0
        for code in ("referral", "decision", "reply")
    }
    log = list(
        AccessLog.objects.filter(referral=referral)
        .select_related("user")
        .order_by("-at", "-id")[: ACCESS_LOG_ON_RECORD + 1]
    )
    return ReferralRecord(
        referral=referral,
        # The oldest row of a kind with hidden versions only served as a predecessor.
        referral_versions=_versions(referral_kind, rows["referral"], key=lambda row: row.id)[
            -RECORD_VERSIONS:
        ],
        decisions=decisions[-RECORD_VERSIONS:],
        replies=replies[-RECORD_VERSIONS:],
        prior_imaging=list(PriorImaging.objects.filter(patient_id=referral.patient_id)),
        access_log=log[:ACCESS_LOG_ON_RECORD],
        access_log_truncated=len(log) > ACCESS_LOG_ON_RECORD,
        hidden_versions=hidden_versions,
    )


# --- The access log --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessLogFilters:
    user: str = ""
    patient_number: str = ""
    patient_name: str = ""
    date_from: date | None = None
    date_to: date | None = None
    action: str = ""


def access_log_rows(filters: AccessLogFilters) -> QuerySet[AccessLog]:
    qs = AccessLog.objects.all()
    if filters.user:
        qs = qs.filter(user__username__iexact=filters.user)
    if filters.patient_number:
        qs = qs.filter(patient__personal_number=filters.patient_number)
    if filters.patient_name:
        qs = qs.filter(patient__name__iregex=re.escape(filters.patient_name))
    start, end = day_bounds(filters.date_from, filters.date_to)
    if start:
        qs = qs.filter(at__gte=start)
    if end:
        qs = qs.filter(at__lt=end)
    if filters.action:
        qs = qs.filter(action=filters.action)
    return qs


def _with_people(qs: QuerySet[AccessLog]) -> QuerySet[AccessLog]:
    return qs.select_related("user", "patient", "referral")


@dataclass(frozen=True, slots=True)
class AccessLogPage:
    rows: list[AccessLog]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def access_log_page(
    filters: AccessLogFilters, *, page: int = 1, per_page: int = 50
) -> AccessLogPage:
    number = max(1, page)
    start = (number - 1) * per_page
    rows = list(
        _with_people(access_log_rows(filters)).order_by("-at", "-id")[start : start + per_page + 1]
    )
    return AccessLogPage(rows=rows[:per_page], number=number, has_next=len(rows) > per_page)


@dataclass(frozen=True, slots=True)
class AccessLogSample:
    rows: list[AccessLog]
    seed: int
    size: int
    population: int
    max_id: int | None


def access_log_sample(
    filters: AccessLogFilters, *, size: int, seed: int, max_id: int | None = None
) -> AccessLogSample:
    """A reproducible random sample of the filtered rows for the routine log review.

    The same filters, seed and upper id give the same sample later: the population is the
    filtered ids up to `max_id` (by default the highest at the time of drawing, so that rows
    written afterwards, such as this review's own, do not change it), in id order.
    """
    qs = access_log_rows(filters)
    if max_id is not None:
        qs = qs.filter(id__lte=max_id)
    ids = list(qs.order_by("id").values_list("id", flat=True))
    if max_id is None and ids:
        max_id = ids[-1]
    # Not for secrecy: the point of the seed is that anyone can draw the same sample again.
    chosen = random.Random(seed).sample(ids, min(size, len(ids)))  # noqa: S311
    rows = list(_with_people(AccessLog.objects.filter(id__in=chosen)).order_by("at", "id"))
    return AccessLogSample(rows=rows, seed=seed, size=size, population=len(ids), max_id=max_id)


@dataclass(frozen=True, slots=True)
class UnitSummary:
    care_unit: str
    count: int
    first: datetime
    last: datetime
    users: list[dict]
    rows: list[AccessLog]


@dataclass(frozen=True, slots=True)
class PatientExtract:
    patient: Patient
    units: list[UnitSummary]
    total: int
    truncated: bool


EXTRACT_ROW_LIMIT = 5000


def patient_extract(
    patient: Patient, *, date_from: date | None = None, date_to: date | None = None
) -> PatientExtract:
    """Which care units and users looked at this patient's data and when, by unit."""
    qs = access_log_rows(AccessLogFilters(date_from=date_from, date_to=date_to)).filter(
        patient=patient
    )
    per_user = list(
        qs.order_by()
        .values("care_unit", "user__username", "user__first_name", "user__last_name", "role")
        .annotate(count=Count("id"), first=Min("at"), last=Max("at"))
        .order_by("care_unit", "first")
    )
    rows = list(
        qs.select_related("user", "referral").order_by("care_unit", "at", "id")[
            : EXTRACT_ROW_LIMIT + 1
        ]
    )
    units: dict[str, dict] = {}
    for item in per_user:
        unit = units.setdefault(
            item["care_unit"], {"count": 0, "first": item["first"], "last": item["last"]}
        )
        unit["count"] += item["count"]
        unit["first"] = min(unit["first"], item["first"])
        unit["last"] = max(unit["last"], item["last"])
        unit.setdefault("users", []).append(
            {
                "user": _user_display(
                    item["user__username"], item["user__first_name"], item["user__last_name"]
                ),
                "role": item["role"],
                "count": item["count"],
                "first": item["first"],
                "last": item["last"],
            }
        )
    by_unit: dict[str, list[AccessLog]] = defaultdict(list)
    for row in rows[:EXTRACT_ROW_LIMIT]:
        by_unit[row.care_unit].append(row)
    return PatientExtract(
        patient=patient,
        units=[
            UnitSummary(
                care_unit=name,
                count=unit["count"],
                first=unit["first"],
                last=unit["last"],
                users=unit["users"],
                rows=by_unit.get(name, []),
            )
            for name, unit in units.items()
        ],
        total=sum(unit["count"] for unit in units.values()),
        truncated=len(rows) > EXTRACT_ROW_LIMIT,
    )
