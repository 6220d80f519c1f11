"""Bank statement parsers: bytes in, ``ParsedStatement`` out, or the whole file refused.

Pure: no database, no Flask. Formats: the canonical CSV of API.md, the CSV exports of
ICBC, CCB, ABC, BOC, BOCOM and CMB (GBK or UTF-8), MT940 and CAMT.053 (001.02-001.08).
Every refusal is a ``StatementRejected`` whose detail names the line (counted in the
file, header and preamble included) and the offending value.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

from app.domain.errors import StatementRejected
from app.domain.statements import ParsedStatement, StatementLine, line_identities

from . import camt053, canonical_csv, chinese_banks, detect, mt940_reader
from .bank_presets import BANK_FORMATS
from .text import check_bytes, decode

FORMATS: tuple[str, ...] = ("auto", "csv", "mt940", "camt053", *BANK_FORMATS)

__all__ = [
    "FORMATS",
    "ParsedStatement",
    "StatementLine",
    "StatementRejected",
    "line_identities",
    "parse_statement",
]


def parse_statement(data: bytes, format: str = "auto") -> ParsedStatement:
    """Parse a statement file; refuse it whole, with a line number, on any doubt."""
    if format not in FORMATS:
        raise StatementRejected(
            f"unknown statement format {format!r}; use one of {', '.join(FORMATS)}",
            code="unknown_format",
        )
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError("parse_statement() needs the file's bytes")
    try:
        return _unique_ids(_parse(data, format))
    except StatementRejected:
        raise
    except Exception as exc:  # a parser bug must still refuse the file, never half-read it
        raise StatementRejected(
            f"the file could not be read ({type(exc).__name__}); nothing was imported"
        ) from exc


def _parse(data: bytes, format: str) -> ParsedStatement:
    check_bytes(data)
    if detect.is_xml(data):
        if format not in ("auto", "camt053"):
            raise StatementRejected(f"an XML file cannot be read as {format!r}", line=1)
        detect.detect_xml(data)
        return camt053.parse(data)
    if format == "camt053":
        raise StatementRejected("a CAMT.053 file must be XML", line=1)
    text = decode(data)
    if format == "auto":
        format = detect.detect_text(text)
    if format == "mt940":
        return mt940_reader.parse(text)
    if format == "csv":
        return canonical_csv.parse(text)
    return chinese_banks.parse(text, bank=format)


def _unique_ids(statement: ParsedStatement) -> ParsedStatement:
    """Drop a transaction id that repeats within the file: it names no single transfer."""
    counts = Counter(line.transaction_id for line in statement.lines if line.transaction_id)
    if all(count == 1 for count in counts.values()):
        return statement
    lines = tuple(
        dataclasses.replace(line, transaction_id=None)
        if line.transaction_id and counts[line.transaction_id] > 1
        else line
        for line in statement.lines
    )
    return dataclasses.replace(statement, lines=lines)
