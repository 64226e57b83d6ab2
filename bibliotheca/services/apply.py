"""Bibliographic apply: write Edition rows from item data; idempotent by data hash.

An import page stages the new data of its changed items as PendingEdition rows of a
batch (edition_row, sql.stage_editions) and queues an apply run for the batch, in the page's
transaction; the run moves them to Edition (apply_staged).
"""

import uuid
from datetime import date
from typing import Any

from django.utils import timezone

from bibliotheca import sql
from bibliotheca.models import Edition

AUDIO_FORMATS = {"MP3"}


def apply_staged(batch: str) -> dict[str, int]:
    """Write the Edition rows staged for `batch`, taking them: one statement.

    The rows are deleted by the statement that writes them, so a second delivery (or a
    re-run) of the batch's run finds nothing left and writes nothing; a failed attempt
    rolls back and its retry finds them all. Rows already at their hash are left alone.
    """
    taken, created, written = sql.apply_staged(uuid.UUID(batch), now=timezone.now())
    return {"created": created, "updated": written - created, "unchanged": taken - written}


def edition_row(identifier_id: int, digest: str, data: dict[str, str]) -> dict[str, Any]:
    """A staged Edition row (sql.stage_editions) of item data, JSON-ready."""
    row = {"identifier_id": identifier_id, "data_hash": digest, **edition_fields(data)}
    row["published"] = row["published"] and row["published"].isoformat()
    return row


def edition_fields(data: dict[str, str]) -> dict[str, Any]:
    """Item XML fields -> Edition fields."""
    authors = [a.strip() for a in data.get("Authors", "").split(";") if a.strip()]
    return {
        "title": data.get("Title", "")[:500],
        "subtitle": data.get("SubTitle", "")[:500],
        "authors": authors,
        "narrator": data.get("Narrator", "")[:255],
        "publisher": data.get("Publisher", "")[:255],
        "language": data.get("Language", "")[:16],
        "medium": medium(data),
        "isbn": (data.get("ISBN13") or data.get("PhysicalISBN", ""))[:20],
        "published": _parse_date(data.get("PubDate", ""), data.get("PubYear", "")),
        "description": data.get("Description", ""),
        "cover_url": data.get("CoverLinkURL", "")[:1000],
        "link_url": data.get("BookLinkURL", "")[:1000],
    }


def medium(data: dict[str, str]) -> str:
    """The Edition medium of item data (BookFormat MP3: audiobook, else ebook)."""
    if data.get("BookFormat", "").upper() in AUDIO_FORMATS:
        return Edition.Medium.AUDIOBOOK
    return Edition.Medium.EBOOK


def _parse_date(value: str, year: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return date(int(year), 1, 1) if year.isdigit() else None
