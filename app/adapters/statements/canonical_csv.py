"""The canonical CSV statement of API.md: a header row, then one transfer per record.

``transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo``;
extra columns are ignored, the amount is signed (negative is money sent).
"""
from __future__ import annotations

from app.domain.statements import IN, OUT, ParsedStatement, StatementLine

from .csv_rows import CsvText
from .text import reject
from .values import currency_code, parse_iso_when, to_fen

COLUMNS = (
    "transaction_id",
    "booked_at",
    "amount",
    "currency",
    "counterparty_name",
    "counterparty_account",
    "memo",
)
_STRIP = " \t"


def _header_names(cells: list[str]) -> list[str]:
    """The header's column names as compared: without spaces, tabs or a stray byte order mark."""
    return [cell.strip(" \t\ufeff").lower() for cell in cells]


def header_columns(cells: list[str]) -> dict[str, int] | None:
    """Map the canonical column names to their index, or None if a name is missing."""
    return _columns(_header_names(cells))


def _columns(names: list[str]) -> dict[str, int] | None:
    if not set(COLUMNS) <= set(names):
        return None
    return {name: names.index(name) for name in COLUMNS}


def parse(text: str) -> ParsedStatement:
    """Parse canonical CSV text; any bad record refuses the whole file."""
    csv_text = CsvText(text)
    records = csv_text.records()
    columns = None
    for first, last, cells in records:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines before the header
        names = _header_names(cells)
        columns = _columns(names)
        if columns is None:
            missing = [name for name in COLUMNS if name not in names]
            raise reject(
                f"not a canonical CSV header (missing {', '.join(missing)})",
                first,
                csv_text.raw(first, last),
            )
        duplicated = sorted({name for name in COLUMNS if names.count(name) > 1})
        if duplicated:
            raise reject("column named twice in the header", first, ", ".join(duplicated))
        break
    if columns is None:
        raise reject("no header row", 1)
    return ParsedStatement(format="csv", lines=tuple(_lines(csv_text, records, columns)))


def _lines(csv_text: CsvText, records, columns: dict[str, int]):
    i_id, i_at, i_amount, i_ccy, i_name, i_account, i_memo = (columns[n] for n in COLUMNS)
    width = max(columns.values()) + 1
    currencies: dict[str, str] = {}  # cache: the same few currency cells repeat on every line
    for first, last, cells in records:
        if len(cells) < width:
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            raise reject(
                f"record has {len(cells)} cells, the header needs {width}",
                first,
                csv_text.raw(first, last),
            )
        at_text = cells[i_at].strip(_STRIP)
        if not at_text:
            raise reject("missing booked_at", first, csv_text.raw(first, last))
        amount_text = cells[i_amount].strip(_STRIP)
        if not amount_text:
            raise reject("missing amount", first, csv_text.raw(first, last))
        fen = to_fen(amount_text, first)
        if fen == 0:
            raise reject("amount is zero, which is no transfer", first, amount_text)
        ccy_text = cells[i_ccy].strip(_STRIP)
        currency = currencies.get(ccy_text)
        if currency is None:
            if not ccy_text:
                raise reject("missing currency", first, csv_text.raw(first, last))
            currency = currencies[ccy_text] = currency_code(ccy_text, first)
        tid = cells[i_id].strip(_STRIP)
        yield StatementLine(
            line_no=first,
            transaction_id=tid or None,
            booked_at=parse_iso_when(at_text, first),
            amount_fen=fen if fen > 0 else -fen,
            direction=IN if fen > 0 else OUT,
            currency=currency,
            counterparty_name=cells[i_name].strip(_STRIP),
            counterparty_account=cells[i_account].strip(_STRIP),
            memo=cells[i_memo].strip(_STRIP),
            reference="",
            raw=csv_text.raw(first, last),
        )
