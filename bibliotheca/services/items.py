"""Item metadata: `<ArrayOfItem>` parsed into plain dicts, hashed (an Edition is applied
when its hash changes) and turned into the Edition rows a page stages."""

import hashlib
import json
from datetime import date
from typing import Any
from xml.etree import ElementTree

from bibliotheca.models import Edition

#: Item fields we keep (the rest of the XML is ignored); also what the hash covers.
ITEM_FIELDS = tuple(
    "ItemId Title SubTitle ISBN13 PhysicalISBN Authors Narrator Publisher Language "
    "Description PubDate PubYear Genre NumberOfPages CoverLinkURL BookLinkURL BookFormat".split()
)


def parse_items(body: bytes) -> dict[str, dict[str, str]]:
    """{item id: {field: text}}; raises ElementTree.ParseError or ValueError on a bad body."""
    root = ElementTree.fromstring(body)
    if _local(root.tag) != "ArrayOfItem":
        raise ValueError(f"expected ArrayOfItem, got {_local(root.tag)}")
    items: dict[str, dict[str, str]] = {}
    for element in root:
        if _local(element.tag) != "Item":
            continue
        data = {name: "" for name in ITEM_FIELDS}
        for child in element:
            name = _local(child.tag)
            if name in data:
                data[name] = (child.text or "").strip()
        if data["ItemId"]:
            items[data["ItemId"]] = data
    return items


def data_hash(item: dict[str, Any]) -> str:
    """Stable hash of the item data: equal data, equal hash, whatever the field order."""
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def edition_row(identifier_id: int, digest: str, data: dict[str, str]) -> dict[str, Any]:
    """A staged Edition row (sql.stage_editions) of item data, JSON-ready."""
    authors = [a.strip() for a in data.get("Authors", "").split(";") if a.strip()]
    published = _parse_date(data.get("PubDate", ""), data.get("PubYear", ""))
    return {
        "identifier_id": identifier_id,
        "data_hash": digest,
        "title": data.get("Title", "")[:500],
        "subtitle": data.get("SubTitle", "")[:500],
        "authors": authors,
        "narrator": data.get("Narrator", "")[:255],
        "publisher": data.get("Publisher", "")[:255],
        "language": data.get("Language", "")[:16],
        "medium": medium(data),
        "isbn": (data.get("ISBN13") or data.get("PhysicalISBN", ""))[:20],
        "published": published and published.isoformat(),
        "description": data.get("Description", ""),
        "cover_url": data.get("CoverLinkURL", "")[:1000],
        "link_url": data.get("BookLinkURL", "")[:1000],
    }


def medium(data: dict[str, str]) -> str:
    """The Edition medium of item data (BookFormat MP3: audiobook, else ebook)."""
    if data.get("BookFormat", "").upper() == "MP3":
        return Edition.Medium.AUDIOBOOK
    return Edition.Medium.EBOOK


def _parse_date(value: str, year: str) -> date | None:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return date(int(year), 1, 1) if year.isdigit() else None
