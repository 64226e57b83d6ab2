"""A deterministic catalogue: the same settings always give the same records and items."""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape

FORMATS = ("EPUB", "EPUB3", "PDF", "MP3")


@dataclass(frozen=True, kw_only=True)
class PurchaseRecord:
    #: Bibliotheca item id (the MARC 001).
    item_id: str
    #: When the purchase happened (what the date window filters on).
    purchased_at: datetime


@dataclass(kw_only=True)
class Catalogue:
    """`records_per_day` purchases on each of `days` days from `start_date`, evenly spread."""

    start_date: date = date(2014, 1, 1)
    days: int = 10
    records_per_day: int = 20
    #: Every n-th record (by global position, 1-based) has no 001 / two 001 fields; 0: never.
    no_001_every: int = 0
    two_001_every: int = 0
    #: Bump to change every item's metadata (new hashes -> new applies).
    metadata_version: int = 1
    #: The partner lists a purchase this long after it happened (or its clock is behind
    #: ours): a window asked for at `listed_by` leaves out the purchases listed later.
    listing_delay: timedelta = timedelta(0)
    #: Item ids the items endpoint leaves out of its answer (withdrawn by the partner).
    missing_items: set[str] = field(default_factory=set)
    #: {item id: the 001 text its purchase record carries instead of the id} (a partner's
    #: odd record: spaces, commas, non-ASCII).
    odd_001: dict[str, str] = field(default_factory=dict)

    def records_between(
        self, start: datetime, end: datetime, *, listed_by: datetime | None = None
    ) -> list[PurchaseRecord]:
        """Records with start <= purchased_at < end, oldest first; with `listed_by` (the
        moment asked), only those listed by then (purchased_at + listing_delay)."""
        first = max(self.start_date, start.date())
        last = min(self.start_date + timedelta(days=self.days - 1), end.date())
        found: list[PurchaseRecord] = []
        day = first
        while day <= last:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            step = 86400 / self.records_per_day
            for i in range(self.records_per_day):
                at = midnight + timedelta(seconds=int(i * step))
                listed = listed_by is None or at + self.listing_delay <= listed_by
                if start <= at < end and listed:
                    found.append(PurchaseRecord(item_id=f"bib{day:%Y%m%d}{i:04d}", purchased_at=at))
            day += timedelta(days=1)
        return found

    @property
    def total_records(self) -> int:
        return self.days * self.records_per_day

    def position(self, item_id: str) -> int:
        """1-based global position of an item id."""
        day = datetime.strptime(item_id[3:11], "%Y%m%d").date()
        return (day - self.start_date).days * self.records_per_day + int(item_id[11:]) + 1

    def marc_record_xml(self, record: PurchaseRecord) -> str:
        position = self.position(record.item_id)
        controls = [escape(self.odd_001.get(record.item_id, record.item_id))]
        if self.no_001_every and position % self.no_001_every == 0:
            controls = []
        elif self.two_001_every and position % self.two_001_every == 0:
            controls = [record.item_id, record.item_id + "x"]
        title = escape(self.item(record.item_id)["Title"])
        fields = "".join(f'<controlfield tag="001">{c}</controlfield>' for c in controls)
        return (
            "<record><leader>00000nam a2200000 a 4500</leader>"
            f'{fields}<controlfield tag="005">{record.purchased_at:%Y%m%d%H%M%S}.0</controlfield>'
            f'<datafield tag="245" ind1="0" ind2="0"><subfield code="a">{title}</subfield>'
            "</datafield></record>"
        )

    def item(self, item_id: str) -> dict[str, str]:
        """Item metadata, derived from the id and metadata_version only."""
        seed = hashlib.sha256(f"{item_id}:{self.metadata_version}".encode()).hexdigest()
        n = int(seed[:8], 16)
        fmt = FORMATS[n % len(FORMATS)]
        return {
            "ItemId": item_id,
            "Title": f"Title {seed[:6]} v{self.metadata_version}",
            "SubTitle": f"Subtitle {seed[6:10]}" if n % 3 == 0 else "",
            "ISBN13": f"978{n % 10**10:010d}",
            "PhysicalISBN": "",
            "Authors": f"Author{n % 97}, Ann; Writer{n % 13}, Bob",
            "Narrator": f"Narrator {n % 7}" if fmt == "MP3" else "",
            "Publisher": f"Publisher {n % 11}",
            "Language": "en" if n % 5 else "fr",
            "Description": f"<p>Book {item_id}, version {self.metadata_version}.</p>",
            "PubDate": f"{2000 + n % 20}-0{1 + n % 9}-1{n % 9}",
            "PubYear": str(2000 + n % 20),
            "Genre": "Fiction",
            "NumberOfPages": str(100 + n % 400),
            "CoverLinkURL": f"https://images.example.com/{item_id}.jpg",
            "BookLinkURL": f"https://ebook.example.com/{item_id}",
            "BookFormat": fmt,
        }

    def items_xml(self, item_ids: list[str]) -> str:
        parts = []
        for item_id in item_ids:
            if item_id in self.missing_items:
                continue
            data = self.item(item_id)
            fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in data.items())
            parts.append(
                f"<Item>{fields}<TotalCopies>1</TotalCopies><OnHoldCount>0</OnHoldCount>"
                "<AvailableCopies>1</AvailableCopies></Item>"
            )
        return f"<ArrayOfItem>{''.join(parts)}</ArrayOfItem>"
