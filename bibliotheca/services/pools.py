"""Find or create identifiers and license pools for a page of ids, in set-based SQL."""

from datetime import datetime

from bibliotheca.models import Collection, Identifier, LicensePool


def find_or_create_pools(
    collection: Collection, item_ids: list[str], *, now: datetime
) -> tuple[dict[str, LicensePool], set[str]]:
    """({item id: pool}, ids whose pool is new); two INSERT ... ON CONFLICT, two SELECTs."""
    kind = Identifier.Type.BIBLIOTHECA_ID
    Identifier.objects.bulk_create(
        [Identifier(type=kind, value=v) for v in item_ids], ignore_conflicts=True
    )
    identifiers = dict(
        Identifier.objects.filter(type=kind, value__in=item_ids).values_list("value", "id")
    )
    existing = set(
        LicensePool.objects.filter(
            collection=collection, identifier_id__in=identifiers.values()
        ).values_list("identifier__value", flat=True)
    )
    LicensePool.objects.bulk_create(
        [
            LicensePool(collection=collection, identifier_id=identifiers[v], created_at=now)
            for v in item_ids
            if v not in existing
        ],
        ignore_conflicts=True,
    )
    pools = {
        pool.identifier.value: pool
        for pool in LicensePool.objects.filter(
            collection=collection, identifier_id__in=identifiers.values()
        ).select_related("identifier")
    }
    return pools, set(item_ids) - existing
