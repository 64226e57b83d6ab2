"""Item metadata: parse `<ArrayOfItem>` into plain dicts and hash them for needs-apply."""

import hashlib
import json
from typing import Any
from xml.etree import ElementTree

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
