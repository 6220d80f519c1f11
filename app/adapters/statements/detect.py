"""Tell a statement file's format from its content."""
from __future__ import annotations

import codecs

from . import camt053, canonical_csv, chinese_banks, mt940_reader
from .csv_rows import CsvText
from .text import reject

XML = "xml"
_HEAD_BYTES = 4096


def is_xml(data: bytes) -> bool:
    """Tell whether the bytes start (after a BOM and blanks) like an XML document."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    return data.lstrip()[:1] == b"<"


def detect_xml(data: bytes) -> str:
    """Return ``"camt053"`` for a CAMT.053 document, else refuse it."""
    if camt053.looks_like_camt053(data[:_HEAD_BYTES]):
        return "camt053"
    raise reject("an XML file that is not a CAMT.053 statement", 1, data[:_HEAD_BYTES].decode(
        "utf-8", errors="replace"
    ).lstrip()[:80])


def detect_text(text: str) -> str:
    """Return ``"mt940"``, ``"csv"`` or a bank preset name for decoded text, else refuse.

    MT940 by its ``:20:`` and ``:25:``/``:60F:`` fields; the canonical CSV by its header
    on the first non-blank line; a bank export by a header row among its first lines
    that carries the signature columns of one preset.
    """
    if mt940_reader.looks_like_mt940(text):
        return "mt940"
    csv_text = CsvText(text)
    for _first, _last, cells in csv_text.records(limit=chinese_banks.HEADER_SEARCH_RECORDS):
        if any(cell.strip() for cell in cells):
            if canonical_csv.header_columns(cells) is not None:
                return "csv"
            break
    found = chinese_banks.find_header(csv_text)
    if found is not None:
        return found[0].format
    first = next((n for n, line in enumerate(csv_text.lines, 1) if line.strip()), 1)
    raise reject(
        "unrecognised statement layout (not canonical CSV, a known bank export, MT940 or"
        " CAMT.053)",
        first,
        csv_text.line(first),
    )
