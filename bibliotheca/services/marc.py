"""MARC purchase records: parse a MARCXML page and pull the Bibliotheca id out of 001."""

import io

import pymarc


def parse_marc_page(body: bytes) -> list[pymarc.Record]:
    """Records of a MARCXML page; an empty body means no records in the window."""
    if not body.strip():
        return []
    return [record for record in pymarc.parse_xml_to_array(io.BytesIO(body)) if record]


def bibliotheca_id(record: pymarc.Record) -> str | None:
    """The 001 value, or None when the record has no 001 or several (skipped and counted)."""
    fields = record.get_fields("001")
    return ((fields[0].data or "").strip() or None) if len(fields) == 1 else None
