"""Shared intake for every format: one referral per (source, order number), duplicates
recognised, changes and cancellations applied through services, rejects kept in the inbox.

A format module turns bytes into a ParsedMessage (or raises IntakeRejection); message_intake
does the rest. The only outcomes of message_intake are referrals written or one inbox entry:
an exception from a parser is turned into a rejection, never passed on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from triage import personnummer, services
from triage.models import InboxMessage, IntakeMessage, Referral, Sender

logger = logging.getLogger(__name__)

PERSONNUMMER_SYSTEM = "urn:oid:1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER_SYSTEM = "urn:oid:1.2.752.129.2.1.3.3"
SYSTEM_KINDS = {
    PERSONNUMMER_SYSTEM: "personnummer",
    SAMORDNINGSNUMMER_SYSTEM: "samordningsnummer",
}
KIND_SYSTEMS = {kind: system for system, kind in SYSTEM_KINDS.items()}

# Lengths of the Referral and Patient columns: longer values are refused, never cut.
_TEXT_LIMITS = {
    "order_number": (64, "Remissnumret"),
    "patient_name": (200, "Patientens namn"),
    "referring_unit": (200, "Remitterande enhet"),
    "referring_clinician": (200, "Remittenten"),
    "requested_text": (200, "Undersökningstexten"),
    "anamnesis": (100_000, "Anamnesen"),
}
# A referral in the triage states can still take the sender's changes; after a decision a
# changed referral needs a person (the decision was made on the old text).
UPDATABLE_STATUSES = frozenset(
    {Referral.Status.NEW, Referral.Status.IN_TRIAGE, Referral.Status.AWAITING_INFORMATION}
)
COMPARED_FIELDS = (
    "patient_id",
    "written_on",
    "referring_unit",
    "referring_clinician",
    "requested",
    "requested_text",
    "anamnesis",
    "method_change_allowed",
    "referrer_priority",
)


# Before the referrer's priority was a field (migration 0010), the importers wrote it as the
# anamnesis's first line. A referral taken in then and sent again unchanged must not count
# as changed (a decided one would be refused) just because today's importers leave it out.
_PRIORITY_LINE = re.compile(r"Remittentens prioritet: (?:Akut|Snarast|Brådskande)(?:\n|\Z)")


def without_priority_line(anamnesis: str) -> str:
    found = _PRIORITY_LINE.match(anamnesis)
    return anamnesis[found.end() :] if found else anamnesis


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


OUTCOME_LABELS = {
    Outcome.CREATED: "skapad",
    Outcome.UPDATED: "uppdaterad",
    Outcome.UNCHANGED: "oförändrad dubblett",
    Outcome.CANCELLED: "makulerad",
    Outcome.REJECTED: "avvisad",
}


class IntakeRejection(Exception):
    """A message that cannot be taken in; str(error) is the Swedish reason for the inbox.

    `code` is the FHIR issue type (structure, not-supported, required, value, invalid,
    business-rule, conflict, exception); the HL7 ACK derives AE or AR from it.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        order_number: str = "",
        message_id: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.order_number = order_number
        self.message_id = message_id


@dataclass(frozen=True, slots=True)
class OrderData:
    """One referral as a message states it, already checked and in our vocabulary."""

    order_number: str
    cancel: bool
    personal_number: str  # 12-digit canonical form
    patient_name: str
    written_on: date
    referring_unit: str = ""
    referring_clinician: str = ""
    requested: str = "other"
    requested_text: str = ""
    anamnesis: str = ""
    method_change_allowed: bool = True
    referrer_priority: str = "routine"  # Referral.ReferrerPriority


@dataclass(slots=True)
class ParsedMessage:
    message_key: str
    content_hash: str
    label: str
    orders: list[OrderData]
    message_id: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MessageSource:
    """One message cut out of a file or request body, parsed only when it is taken in."""

    raw: bytes
    origin: str
    parse: Callable[[], ParsedMessage]


@dataclass(frozen=True, slots=True)
class OrderResult:
    order_number: str
    outcome: Outcome
    referral_id: int | None


@dataclass(slots=True)
class IntakeResult:
    origin: str
    label: str = ""
    message_id: str = ""
    orders: list[OrderResult] = field(default_factory=list)
    duplicate_message: bool = False
    error: str = ""
    error_code: str = ""
    inbox_message: InboxMessage | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        return bool(self.error)

    def describe(self) -> str:
        """One Swedish line for a person reading an import report or an acknowledgement."""
        if self.rejected:
            where = f" (inkorg #{self.inbox_message.pk})" if self.inbox_message else ""
            return f"avvisad – {self.error}{where}"
        parts = [f"{OUTCOME_LABELS[order.outcome]} ({order.order_number})" for order in self.orders]
        text = ", ".join(parts) or "inga remisser"
        if self.duplicate_message:
            text += " – meddelandet var redan mottaget"
        return text


# --- Helpers shared by the format modules ------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_text(value: object, limit: int = 2000) -> str:
    """Text that every database stores as given: no NUL or other control characters, no
    lone surrogates (from JSON "\\ud800"), cut to the column length. For metadata only."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    cleaned = "".join(
        ch if ch in "\n\t" or not (ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0) else "�" for ch in text
    )
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def identity_for(
    value: str, *, expected_kind: str | None, reference_date: date, where: str
) -> personnummer.Identity:
    """The patient's identity, cross-checked against the kind its system promises."""
    try:
        identity = personnummer.parse_personnummer(value, reference_date=reference_date)
    except personnummer.PersonnummerError as error:
        raise IntakeRejection(f"{where}: {error}", code="value") from None
    if expected_kind is not None and identity.kind != expected_kind:
        raise IntakeRejection(
            f"{where}: värdet är ett {identity.kind} men anges som {expected_kind} "
            f"(systemet ska vara {KIND_SYSTEMS[identity.kind]}).",
            code="value",
        )
    return identity


def local_date(moment: datetime) -> date:
    """The Swedish calendar date of an aware moment (a referral written 00:30 in Stockholm
    is written that day, although it is the day before in UTC)."""
    return timezone.localtime(moment).date()


# --- Senders ------------------------------------------------------------------------------


def sender_save(*, sender: Sender, user: AbstractBaseUser | None, reason: str) -> Sender:
    """Save a sender; a new one gets its inactive import account, the author of its imports."""
    with transaction.atomic():
        if sender.user_id is None:
            user_model = get_user_model()
            account = user_model(
                username=f"sender:{sender.name}",
                first_name=sender.name,
                last_name=_("(import)"),
                is_active=False,
            )
            account.set_unusable_password()
            account.save()
            sender.user = account
        sender._history_user = user
        sender._change_reason = reason
        sender.save()
    return sender


def sender_register(
    *, name: str, user: AbstractBaseUser | None, reason: str = "", **fields: object
) -> Sender:
    """Create a sender (system) with its import account."""
    return sender_save(
        sender=Sender(name=name, **fields),
        user=user,
        reason=reason or _("Avsändare registrerad"),
    )


# --- Taking a message in -------------------------------------------------------------------


def message_intake(
    *,
    sender: Sender,
    format: str,
    source: MessageSource,
    received_at: datetime | None = None,
    user: AbstractBaseUser | None = None,
    reason_suffix: str = "",
    inbox_message: InboxMessage | None = None,
) -> IntakeResult:
    """Take one message in: referrals written, or the message kept in the inbox.

    `user` is the history author when a person re-processes from the inbox; imports are
    written by the sender's import account. The referral writes commit before this returns,
    so a caller acknowledges only what is stored.
    """
    received_at = received_at or timezone.now()
    result = IntakeResult(origin=source.origin)
    try:
        parsed = source.parse()
    except IntakeRejection as rejection:
        return _reject(sender, format, source, rejection, received_at, result, inbox_message, user)
    except Exception:  # the promise: nothing a sender sends can crash the intake
        logger.exception("Parser failed on a message from %s (%s)", sender.name, source.origin)
        rejection = IntakeRejection(
            _("Meddelandet kunde inte tolkas (internt fel i tolkningen); det är sparat."),
            code="exception",
        )
        return _reject(sender, format, source, rejection, received_at, result, inbox_message, user)

    result.label = safe_text(parsed.label, 300)
    result.message_id = safe_text(parsed.message_id, 200)
    result.warnings = list(parsed.warnings)
    try:
        with transaction.atomic():
            _store(sender, format, source, parsed, received_at, user, reason_suffix, result)
    except IntakeRejection as rejection:
        rejection.message_id = rejection.message_id or parsed.message_id
        result.orders = []
        result.duplicate_message = False
        return _reject(sender, format, source, rejection, received_at, result, inbox_message, user)
    return result


def message_reason(sender: Sender, label: str, suffix: str = "") -> str:
    return safe_text(f"Import från {sender.name}: {label}{suffix}", 100)


def _store(
    sender: Sender,
    format: str,
    source: MessageSource,
    parsed: ParsedMessage,
    received_at: datetime,
    user: AbstractBaseUser | None,
    reason_suffix: str,
    result: IntakeResult,
) -> None:
    if not parsed.orders:
        raise IntakeRejection(_("Meddelandet innehåller ingen remiss."), code="required")
    parsed.orders = [_with_newlines(order) for order in parsed.orders]
    seen: set[str] = set()
    for order in parsed.orders:
        _check_order(order)
        if order.order_number in seen:
            raise IntakeRejection(
                f"Remissnumret {order.order_number} förekommer två gånger i samma meddelande.",
                code="business-rule",
                order_number=order.order_number,
            )
        seen.add(order.order_number)

    # The idempotency record is written first: a second delivery of the same message waits
    # on this row's unique index until the first commits, then finds it, instead of racing
    # it for the referral and writing a second history row.
    message_key = safe_text(parsed.message_key, 200)
    try:
        with transaction.atomic():
            record = IntakeMessage.objects.create(
                sender=sender,
                format=format,
                message_key=message_key,
                content_hash=parsed.content_hash,
                label=result.label,
                received_at=received_at,
                raw=source.raw,
                warnings=safe_text("\n".join(parsed.warnings), 5000),
            )
    except IntegrityError:
        earlier = IntakeMessage.objects.get(sender=sender, message_key=message_key)
        if earlier.content_hash != parsed.content_hash:
            raise IntakeRejection(
                f"Meddelande-id {parsed.message_id or parsed.message_key} har redan tagits emot "
                f"{timezone.localtime(earlier.received_at):%Y-%m-%d %H:%M} med annat innehåll. "
                "Ett nytt meddelande ska ha ett nytt id.",
                code="conflict",
            ) from None
        result.duplicate_message = True
        result.orders = [
            OrderResult(item["order_number"], Outcome.UNCHANGED, item.get("referral_id"))
            for item in earlier.outcome
        ]
        return

    actor = user or sender.user
    reason = message_reason(sender, result.label, reason_suffix)
    result.orders = [
        _apply_order(sender, order, received_at, actor, reason) for order in parsed.orders
    ]
    record.outcome = [
        {
            "order_number": item.order_number,
            "outcome": item.outcome,
            "referral_id": item.referral_id,
        }
        for item in result.orders
    ]
    record.save(update_fields=["outcome"])


def _with_newlines(order: OrderData) -> OrderData:
    # CRLF and CR inside a text (an Excel cell, a JSON string) are plain line breaks to us;
    # the same text must compare equal however the sender ended its lines.
    changes = {
        name: value.replace("\r\n", "\n").replace("\r", "\n")
        for name, value in ((field_name, getattr(order, field_name)) for field_name in _TEXT_LIMITS)
        if "\r" in value
    }
    return replace(order, **changes) if changes else order


def _check_order(order: OrderData) -> None:
    if not order.order_number.strip():
        raise IntakeRejection(_("Remissnummer saknas."), code="required")
    for name, (limit, label) in _TEXT_LIMITS.items():
        value = getattr(order, name)
        if len(value) > limit:
            raise IntakeRejection(
                f"{label} är längre än {limit} tecken.",
                code="value",
                order_number=order.order_number[:64],
            )
        if safe_text(value, limit + 1) != value:
            raise IntakeRejection(
                f"{label} innehåller otillåtna tecken (styrtecken eller trasig Unicode).",
                code="value",
                order_number=order.order_number[:64],
            )
    if not order.cancel and not order.patient_name.strip():
        raise IntakeRejection(
            _("Patientens namn saknas."), code="required", order_number=order.order_number
        )


def _register_patient(order: OrderData, actor: AbstractBaseUser, reason: str):
    for attempt in range(2):
        try:
            return services.patient_register(
                personal_number=order.personal_number,
                name=order.patient_name,
                reference_date=order.written_on,
                user=actor,
                reason=reason,
            )
        except IntegrityError:
            # Another message registered the same new patient a moment ago; the second
            # attempt finds that row (patient_register runs in a savepoint of ours).
            if attempt:
                raise
        except services.ServiceError as error:
            raise IntakeRejection(
                str(error), code="value", order_number=order.order_number
            ) from None
    raise AssertionError("unreachable")


def _apply_order(
    sender: Sender,
    order: OrderData,
    received_at: datetime,
    actor: AbstractBaseUser,
    reason: str,
) -> OrderResult:
    referrals = Referral.objects.select_for_update().filter(
        source=sender.name, order_number=order.order_number
    )
    if order.cancel:
        return _cancel(referrals.select_related("patient").first(), order, actor, reason)

    # The patient first: a concurrent message for the same new patient makes us wait here
    # until it commits, and the referral is looked up after that.
    patient = _register_patient(order, actor, reason)
    existing = referrals.first()
    if existing is None:
        try:
            # referral_create runs in a savepoint of its own, so a unique-constraint error
            # leaves our transaction usable.
            referral = services.referral_create(
                user=actor,
                reason=reason,
                source=sender.name,
                order_number=order.order_number,
                patient=patient,
                # Local time, so that the service compares Swedish calendar dates.
                received_at=timezone.localtime(received_at),
                written_on=order.written_on,
                referring_unit=order.referring_unit,
                referring_clinician=order.referring_clinician,
                requested=order.requested,
                requested_text=order.requested_text,
                anamnesis=order.anamnesis,
                method_change_allowed=order.method_change_allowed,
                referrer_priority=order.referrer_priority,
            )
            return OrderResult(order.order_number, Outcome.CREATED, referral.pk)
        except IntegrityError:
            # A different message for the same order committed first (the unique constraint
            # on source and order number); carry on as an update of that referral.
            existing = referrals.get()
        except services.ServiceError as error:
            existing = referrals.first()
            if existing is None:
                raise IntakeRejection(
                    str(error), code="business-rule", order_number=order.order_number
                ) from None
    return _update(existing, order, patient, actor, reason)


def _cancel(
    existing: Referral | None, order: OrderData, actor: AbstractBaseUser, reason: str
) -> OrderResult:
    if existing is None:
        raise IntakeRejection(
            f"Makuleringen gäller remiss {order.order_number}, som inte har tagits emot. "
            "Ombearbeta meddelandet när remissen har kommit, eller avför det.",
            code="business-rule",
            order_number=order.order_number,
        )
    if existing.patient.personal_number != order.personal_number:
        raise IntakeRejection(
            f"Makuleringen av remiss {order.order_number} anger en annan patient än remissen.",
            code="business-rule",
            order_number=order.order_number,
        )
    if existing.status == Referral.Status.CANCELLED:
        return OrderResult(order.order_number, Outcome.UNCHANGED, existing.pk)
    try:
        services.referral_set_status(
            referral=existing, status=Referral.Status.CANCELLED, user=actor, reason=reason
        )
    except services.ServiceError as error:
        raise IntakeRejection(
            f"Remiss {order.order_number} kan inte makuleras automatiskt: {error}",
            code="business-rule",
            order_number=order.order_number,
        ) from None
    return OrderResult(order.order_number, Outcome.CANCELLED, existing.pk)


def _update(
    referral: Referral, order: OrderData, patient, actor: AbstractBaseUser, reason: str
) -> OrderResult:
    wanted = {
        "patient_id": patient.pk,
        "written_on": order.written_on,
        "referring_unit": order.referring_unit,
        "referring_clinician": order.referring_clinician,
        "requested": order.requested,
        "requested_text": order.requested_text,
        "anamnesis": order.anamnesis,
        "method_change_allowed": order.method_change_allowed,
        "referrer_priority": order.referrer_priority,
    }
    stored = {name: getattr(referral, name) for name in COMPARED_FIELDS}
    stored["anamnesis"] = without_priority_line(referral.anamnesis)
    changed = [name for name in COMPARED_FIELDS if stored[name] != wanted[name]]
    if not changed:
        return OrderResult(order.order_number, Outcome.UNCHANGED, referral.pk)
    if referral.status not in UPDATABLE_STATUSES:
        raise IntakeRejection(
            f"Remiss {order.order_number} har status ”{referral.get_status_display()}” och "
            "tar inte emot ändringar automatiskt; beslutet gjordes på den tidigare texten. "
            "Kontakta radiologen och ombearbeta eller avför meddelandet.",
            code="business-rule",
            order_number=order.order_number,
        )
    if order.written_on > local_date(referral.received_at):
        raise IntakeRejection(
            _("Remissdatumet kan inte ligga efter mottagningsdatumet."),
            code="business-rule",
            order_number=order.order_number,
        )
    for name in changed:
        setattr(referral, name, wanted[name])
    if referral.status == Referral.Status.AWAITING_INFORMATION:
        # The referrer completed the referral: it goes back to the worklist.
        referral.status = Referral.Status.NEW
        referral.assigned_to = None
    # A radiologist's open form carries the old version and will be told to reload.
    referral.version += 1
    referral._history_user = actor
    referral._change_reason = reason
    referral.save()
    return OrderResult(order.order_number, Outcome.UPDATED, referral.pk)


# --- The inbox ------------------------------------------------------------------------------


def _reject(
    sender: Sender,
    format: str,
    source: MessageSource,
    rejection: IntakeRejection,
    received_at: datetime,
    result: IntakeResult,
    inbox_message: InboxMessage | None,
    user: AbstractBaseUser | None,
) -> IntakeResult:
    result.error = safe_text(str(rejection) or _("Okänt fel."), 5000)
    result.error_code = rejection.code
    result.message_id = result.message_id or safe_text(rejection.message_id, 200)
    result.inbox_message = inbox_store(
        sender=sender,
        format=format,
        raw=source.raw,
        origin=source.origin,
        error=result.error,
        received_at=received_at,
        message_id=result.message_id,
        order_number=safe_text(rejection.order_number, 64),
        existing=inbox_message,
        user=user,
    )
    return result


def inbox_store(
    *,
    sender: Sender,
    format: str,
    raw: bytes,
    origin: str,
    error: str,
    received_at: datetime,
    message_id: str = "",
    order_number: str = "",
    existing: InboxMessage | None = None,
    user: AbstractBaseUser | None = None,
) -> InboxMessage:
    """Keep a rejected message; the same content rejected again is counted, not stored twice."""
    if existing is not None:
        # A re-processing attempt that failed again: the message keeps its place with the new
        # error (the old one stays in its history).
        existing.error = error
        existing._history_user = user
        existing._change_reason = _("Ombearbetning misslyckades")
        existing.save(update_fields=["error"])
        return existing

    content_hash = sha256_hex(raw)
    with transaction.atomic():
        open_message = InboxMessage.objects.filter(
            sender=sender, content_hash=content_hash, status=InboxMessage.Status.REJECTED
        ).first()
        if open_message is None:
            message = InboxMessage(
                sender=sender,
                format=format,
                received_at=received_at,
                last_received_at=received_at,
                origin=safe_text(origin, 300),
                message_id=safe_text(message_id, 200),
                order_number=safe_text(order_number, 64),
                raw=raw,
                content_hash=content_hash,
                error=error,
            )
            message._history_user = sender.user
            message._change_reason = safe_text(f"Avvisat: {origin}", 100)
            try:
                with transaction.atomic():
                    message.save()
                return message
            except IntegrityError:
                # The same content was rejected a moment ago by another worker.
                open_message = InboxMessage.objects.get(
                    sender=sender, content_hash=content_hash, status=InboxMessage.Status.REJECTED
                )
        # Counters only: excluded from the history on purpose (see the model), so an update
        # query does not bypass anything an auditor relies on.
        InboxMessage.objects.filter(pk=open_message.pk).update(
            delivery_count=F("delivery_count") + 1, last_received_at=received_at
        )
    open_message.refresh_from_db()
    return open_message


def sources_intake(
    *,
    sender: Sender,
    format: str,
    sources: Iterator[MessageSource],
    received_at: datetime | None = None,
) -> Iterator[IntakeResult]:
    """Take in every message of a file or body, one after the other."""
    for source in sources:
        yield message_intake(sender=sender, format=format, source=source, received_at=received_at)


def rejecting_parse(rejection: IntakeRejection) -> Callable[[], ParsedMessage]:
    """A parse step that fails with a rejection found while cutting a file into messages."""

    def parse() -> ParsedMessage:
        raise rejection

    return parse
