"""Bibliographic apply: write Edition rows from item data; idempotent by data hash."""

from datetime import date
from typing import Any

from django.db import transaction
from django.utils import timezone

from bibliotheca.models import Edition

AUDIO_FORMATS = {"MP3"}


def apply_bibliographic(*, items: list[dict[str, Any]]) -> dict[str, int]:
    """items: [{"identifier_id", "data", "data_hash"}]; rows already at that hash are left alone.

    Runs on the `apply` cluster. Delivered twice, or queued by two imports of the same
    data, it writes once: the second sees the stored hash and skips.
    """
    ids = [item["identifier_id"] for item in items]
    with transaction.atomic():
        current = {
            e.identifier_id: e
            for e in Edition.objects.select_for_update().filter(identifier_id__in=ids)
        }
        now = timezone.now()
        created, updated, unchanged = [], [], 0
        for item in items:
            edition = current.get(item["identifier_id"])
            if edition is not None and edition.data_hash == item["data_hash"]:
                unchanged += 1
                continue
            fields = edition_fields(item["data"])
            if edition is None:
                created.append(
                    Edition(
                        identifier_id=item["identifier_id"],
                        data_hash=item["data_hash"],
                        updated_at=now,
                        **fields,
                    )
                )
            else:
                for name, value in fields.items():
                    setattr(edition, name, value)
                edition.data_hash, edition.updated_at = item["data_hash"], now
                updated.append(edition)
        Edition.objects.bulk_create(created)
        Edition.objects.bulk_update(
            updated, [*EDITION_FIELDS, "data_hash", "updated_at"], batch_size=500
        )
    return {"created": len(created), "updated": len(updated), "unchanged": unchanged}


EDITION_FIELDS = (
    "title",
    "subtitle",
    "authors",
    "narrator",
    "publisher",
    "language",
    "medium",
    "isbn",
    "published",
    "description",
    "cover_url",
    "link_url",
)


def edition_fields(data: dict[str, str]) -> dict[str, Any]:
    """Item XML fields -> Edition fields."""
    authors = [a.strip() for a in data.get("Authors", "").split(";") if a.strip()]
    medium = (
        Edition.Medium.AUDIOBOOK
        if data.get("BookFormat", "").upper() in AUDIO_FORMATS
        else Edition.Medium.EBOOK
    )
    return {
        "title": data.get("Title", "")[:500],
        "subtitle": data.get("SubTitle", "")[:500],
        "authors": authors,
        "narrator": data.get("Narrator", "")[:255],
        "publisher": data.get("Publisher", "")[:255],
        "language": data.get("Language", "")[:16],
        "medium": medium,
        "isbn": (data.get("ISBN13") or data.get("PhysicalISBN", ""))[:20],
        "published": _parse_date(data.get("PubDate", ""), data.get("PubYear", "")),
        "description": data.get("Description", ""),
        "cover_url": data.get("CoverLinkURL", "")[:1000],
        "link_url": data.get("BookLinkURL", "")[:1000],
    }


def _parse_date(value: str, year: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return date(int(year), 1, 1) if year.isdigit() else None
