"""A team's credit history as CSV rows: one schema, written by one function, for the credits
page's download and for the owner's data export alike, so the same entries never read two ways.

Every entry is a row (captures and releases included, unlike the page's folded history).
"""

from collections.abc import Iterator

from apps.billing.models import LedgerEntry

COLUMNS = ["time", "kind", "amount", "available_change", "memo", "video", "top_up"]
ROWS_PER_QUERY = 2000


def rows(team_id: int) -> Iterator[list[object]]:
    """The team's entries, oldest first, as rows under `COLUMNS`."""
    entries = (
        LedgerEntry.objects.filter(team_id=team_id)
        .select_related("job", "topup")
        .order_by("created_at", "id")
    )
    for entry in entries.iterator(chunk_size=ROWS_PER_QUERY):
        yield [
            entry.created_at.isoformat(),
            entry.kind,
            entry.amount,
            entry.available_change,
            _text_cell(entry.memo),
            entry.job.public_id if entry.job else "",
            entry.topup.public_id if entry.topup else "",
        ]


def _text_cell(value: str) -> str:
    # Spreadsheets run cells that start with these as formulas.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
