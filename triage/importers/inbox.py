"""The inbox of rejected messages: re-process after a correction, or dismiss with a reason;
and the one place that cuts a file or body of any format into messages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePath

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from triage.importers.csv_swedish import csv_sources
from triage.importers.fhir import fhir_sources
from triage.importers.hl7 import CHARSETS, hl7_sources, read_envelope
from triage.importers.intake import (
    IntakeResult,
    MessageSource,
    message_intake,
    safe_text,
)
from triage.models import InboxMessage, IntakeFormat, Sender
from triage.services import ServiceError

_ROW_ORIGIN = re.compile(r"(?P<file>.*) rad (?P<row>\d+)")
EXTENSION_FORMATS = {
    ".json": IntakeFormat.FHIR,
    ".ndjson": IntakeFormat.FHIR,
    ".hl7": IntakeFormat.HL7,
    ".er7": IntakeFormat.HL7,
    ".csv": IntakeFormat.CSV,
}


def detect_format(name: str, raw: bytes) -> str:
    """The format a file is in, from its extension or, failing that, its first bytes."""
    by_extension = EXTENSION_FORMATS.get(PurePath(name).suffix.lower())
    if by_extension:
        return by_extension
    start = raw.lstrip(b"\xef\xbb\xbf \t\r\n\x0b")[:3]
    if start[:1] in (b"{", b"["):
        return IntakeFormat.FHIR
    if start in (b"MSH", b"FHS", b"BHS"):
        return IntakeFormat.HL7
    return IntakeFormat.CSV


def message_sources(
    *, format: str, raw: bytes, origin: str, sender: Sender, first_row: int = 2
) -> Iterator[MessageSource]:
    """The messages of a file or body in the given format."""
    if format == IntakeFormat.FHIR:
        return fhir_sources(raw, origin=origin, ndjson=origin.lower().endswith(".ndjson"))
    if format == IntakeFormat.HL7:
        return hl7_sources(raw, origin=origin, default_charset=sender.default_charset)
    return csv_sources(raw, origin=origin, first_data_row=first_row)


def inbox_reprocess(
    *, message: InboxMessage, user: AbstractBaseUser, corrected_text: str | None = None
) -> list[IntakeResult]:
    """Run a rejected message through the intake again, as it was or as corrected.

    The person who re-processes is the history author (they may have corrected the text);
    the reason names the inbox entry and the original message. The referral keeps the time
    the message first arrived.
    """
    with transaction.atomic():
        locked = (
            InboxMessage.objects.select_for_update().select_related("sender").get(pk=message.pk)
        )
        if locked.status != InboxMessage.Status.REJECTED:
            raise ServiceError(_("Meddelandet är redan hanterat."))
        if corrected_text is not None and corrected_text != locked.corrected_text:
            locked.corrected_text = corrected_text
            locked._history_user = user
            locked._change_reason = _("Innehållet korrigerat")
            locked.save(update_fields=["corrected_text"])

        content = (
            _corrected_bytes(locked.corrected_text, locked.format, locked.sender)
            if locked.corrected_text
            else bytes(locked.raw)
        )
        origin = locked.origin
        file_name, row = _file_and_row(origin)
        sources = list(
            message_sources(
                format=locked.format,
                raw=content,
                origin=file_name,
                sender=locked.sender,
                first_row=row,
            )
        )
        suffix = f" (inkorg #{locked.pk})"
        results: list[IntakeResult] = []
        if len(sources) == 1:
            # The usual case: one message in, one message out, and a failure stays in this
            # inbox entry instead of opening a new one.
            source = MessageSource(raw=sources[0].raw, origin=origin, parse=sources[0].parse)
            results.append(
                message_intake(
                    sender=locked.sender,
                    format=locked.format,
                    source=source,
                    received_at=locked.received_at,
                    user=user,
                    reason_suffix=suffix,
                    inbox_message=locked,
                )
            )
        else:
            # A whole file that was refused (e.g. a missing column) and now splits into rows:
            # each row is taken in on its own; failing rows get inbox entries of their own.
            for source in sources:
                results.append(
                    message_intake(
                        sender=locked.sender,
                        format=locked.format,
                        source=source,
                        received_at=locked.received_at,
                        user=user,
                        reason_suffix=suffix,
                    )
                )
        if len(sources) == 1 and results[0].rejected:
            return results

        referral_id = next(
            (order.referral_id for result in results for order in result.orders), None
        )
        locked.status = InboxMessage.Status.REPROCESSED
        locked.handled_by = user
        locked.handled_at = timezone.now()
        locked.referral_id = referral_id
        locked._history_user = user
        locked._change_reason = safe_text(
            _("Ombearbetat: %(outcome)s")
            % {"outcome": "; ".join(result.describe() for result in results)},
            100,
        )
        locked.save()
    message.refresh_from_db()
    return results


def _corrected_bytes(text: str, format: str, sender: Sender) -> bytes:
    """A corrected text as the bytes its format expects: an HL7 message in the character set
    its MSH-18 (or the sender's default) names, everything else in UTF-8."""
    if format == IntakeFormat.HL7:
        envelope = read_envelope(text)
        codec = CHARSETS.get(envelope.charset.upper(), sender.default_charset)
        try:
            return text.encode(codec)
        except UnicodeEncodeError:
            pass  # the parser then names the character that does not fit
    return text.encode("utf-8")


def _file_and_row(origin: str) -> tuple[str, int]:
    # "remisser.csv rad 7" → ("remisser.csv", 7): a re-processed CSV row keeps its number.
    match = _ROW_ORIGIN.fullmatch(origin)
    if match:
        return match.group("file"), int(match.group("row"))
    return origin.split(" meddelande ")[0], 2


def inbox_dismiss(*, message: InboxMessage, user: AbstractBaseUser, reason: str) -> InboxMessage:
    """Close a rejected message without taking it in; the reason is required and kept."""
    reason = reason.strip()
    if not reason:
        raise ServiceError(_("Ange varför meddelandet avförs."))
    with transaction.atomic():
        locked = InboxMessage.objects.select_for_update().get(pk=message.pk)
        if locked.status != InboxMessage.Status.REJECTED:
            raise ServiceError(_("Meddelandet är redan hanterat."))
        locked.status = InboxMessage.Status.DISMISSED
        locked.dismiss_reason = reason
        locked.handled_by = user
        locked.handled_at = timezone.now()
        locked._history_user = user
        locked._change_reason = safe_text(_("Avfört: %(reason)s") % {"reason": reason}, 100)
        locked.save()
    message.refresh_from_db()
    return locked


def inbox_correct(*, message: InboxMessage, user: AbstractBaseUser, corrected_text: str) -> None:
    """Save a corrected text without re-processing it yet."""
    with transaction.atomic():
        locked = InboxMessage.objects.select_for_update().get(pk=message.pk)
        if locked.status != InboxMessage.Status.REJECTED:
            raise ServiceError(_("Meddelandet är redan hanterat."))
        locked.corrected_text = corrected_text
        locked._history_user = user
        locked._change_reason = _("Innehållet korrigerat")
        locked.save(update_fields=["corrected_text"])
    message.refresh_from_db()
