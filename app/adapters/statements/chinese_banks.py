"""Chinese bank CSV exports, read through the layouts of ``bank_presets``.

One engine for every bank: find the header row among the preamble lines, map columns
with the preset, read records until the summary lines at the end.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.statements import IN, OUT, ParsedStatement, StatementLine

from .bank_presets import PRESETS, BankPreset, find_column, matches, normalise_header
from .csv_rows import CsvText
from .text import reject
from .values import clean, clean_id, currency_code, parse_when, to_fen, with_time

# Exports put a title, the card number and the period before the header.
HEADER_SEARCH_RECORDS = 100

# Words of the summary and notes after the data ("人民币合计", "共 12 笔", "以下空白").
_FOOTER_WORDS = re.compile(r"合计|总计|小计|汇总|笔数|共计|统计|以下空白|以下为空|打印|下载|说明|注[:：]")
# "卡号: 1234****9876", "账号：6222..." in the preamble.
_PREAMBLE_ACCOUNT = re.compile(
    r"(?:^|[\s,，])(?:卡号|账号|帐号)\s*[:：][\s,，\"']*([0-9][0-9* \-]{5,}[0-9*])"
)
# The account at the end of a combined counterparty cell: digits (maybe masked) or an IBAN,
# after optional separators. Searched, not matched with a lazy name group: the lookbehinds
# skip starts inside a run of separators or of account characters, and the possessive runs
# never give back, so a 16 KiB cell of spaces or digits costs one pass, not a quadratic
# backtrack. The leftmost match is the one a lazy ``^(.*?)`` would have found.
_PARTY_ACCOUNT = re.compile(
    r"(?<![\s:：])[\s:：]*+"
    r"(?:(?<![0-9*\-])[*\-]*+([0-9][0-9*\-]{5,}+)|([A-Z]{2}\d{2}[A-Z0-9]{8,30}))$"
)
_CREDIT_FLAGS = ("贷", "收", "cr", "c", "credit", "+")
_DEBIT_FLAGS = ("借", "支", "付", "dr", "d", "debit", "-")


@dataclass(frozen=True)
class _Columns:
    """A preset resolved against one header row: column indexes, None where absent."""

    width: int
    date: int
    time: int | None
    split: tuple[tuple[int | None, int | None, int | None], ...]
    signed: int | None
    unsigned: int | None
    flag: int | None
    currency: int | None
    memo: tuple[int, ...]
    name: int | None
    account: int | None
    party: int | None
    ids: tuple[int, ...]


def find_header(csv_text: CsvText, bank: str | None = None):
    """Return ``(preset, first_line, last_line, headers)`` of the header row, or None."""
    presets = [p for p in PRESETS if bank is None or p.format == bank]
    for first, last, cells in csv_text.records(limit=HEADER_SEARCH_RECORDS):
        if len(cells) < 2:
            continue
        headers = [normalise_header(cell) for cell in cells]
        for preset in presets:
            if matches(preset, headers):
                return preset, first, last, headers
    return None


def parse(text: str, bank: str | None = None) -> ParsedStatement:
    """Parse a bank export; ``bank`` restricts detection to one bank's layouts."""
    csv_text = CsvText(text)
    found = find_header(csv_text, bank)
    if found is None:
        label = next((p.bank for p in PRESETS if p.format == bank), "known bank")
        first = next((n for n, line in enumerate(csv_text.lines, 1) if line.strip()), 1)
        raise reject(
            f"no {label} export header found in the first {HEADER_SEARCH_RECORDS} lines",
            first,
            csv_text.line(first),
        )
    preset, header_first, header_last, headers = found
    columns = _resolve(preset, headers, header_first)
    records = csv_text.records()
    for _first, last, _cells in records:
        if last == header_last:
            break
    lines = tuple(_read(csv_text, records, preset, columns))
    preamble = "\n".join(csv_text.lines[: header_first - 1])
    match = _PREAMBLE_ACCOUNT.search(preamble)
    account = match.group(1).replace(" ", "") if match else ""
    return ParsedStatement(format=preset.format, lines=lines, account=account)


def _resolve(preset: BankPreset, headers: list[str], line: int) -> _Columns:
    def one(candidates):
        return find_column(headers, candidates) if candidates else None

    date = one(preset.date)
    if date is None:
        raise reject(f"{preset.bank} header has no date column", line, ",".join(headers))
    split = tuple(
        (one((income,)), one((expense,)), one((ccy,)) if ccy else None)
        for income, expense, ccy in preset.split
    )
    split = tuple(triple for triple in split if triple[0] is not None or triple[1] is not None)
    signed, unsigned, flag = one(preset.signed), one(preset.unsigned), one(preset.flag)
    if not split and signed is None and (unsigned is None or flag is None):
        raise reject(f"{preset.bank} header has no amount column", line, ",".join(headers))
    memo = tuple(dict.fromkeys(i for i in (one((m,)) for m in preset.memo) if i is not None))
    ids = tuple(dict.fromkeys(i for i in (one((c,)) for c in preset.ids) if i is not None))
    width = len(headers)
    while width and not headers[width - 1]:
        width -= 1  # trailing empty header cells (a trailing comma) are not columns
    return _Columns(
        width=width,
        date=date,
        time=one(preset.time),
        split=split,
        signed=signed,
        unsigned=unsigned,
        flag=flag,
        currency=one(preset.currency),
        memo=memo,
        name=one(preset.name),
        account=one(preset.account),
        party=one(preset.party),
        ids=ids,
    )


def _read(csv_text: CsvText, records, preset: BankPreset, cols: _Columns):
    in_summary = False
    for first, last, cells in records:
        if not any(clean(cell) for cell in cells):
            continue  # blank or padding-only line
        date_text = clean(cells[cols.date]) if cols.date < len(cells) else ""
        if in_summary or not _looks_like_date(date_text):
            if in_summary or _FOOTER_WORDS.search(",".join(cells)):
                in_summary = True
                if _looks_like_date(date_text):
                    raise reject(
                        "transaction line after the summary lines", first, csv_text.raw(first, last)
                    )
                continue
            if not date_text:
                raise reject("missing date", first, csv_text.raw(first, last))
            parse_when(date_text, first)  # raises with the bad value
        if len(cells) < cols.width:
            raise reject(
                f"record has {len(cells)} cells, the header has {cols.width} (truncated?)",
                first,
                csv_text.raw(first, last),
            )
        line = _line(csv_text, preset, cols, first, last, cells, date_text)
        if line is not None:
            yield line


def _looks_like_date(text: str) -> bool:
    return len(text) >= 8 and text[:4].isdigit()


def _line(csv_text, preset, cols: _Columns, first, last, cells, date_text):
    fen, reversal, currency_index = _amount(csv_text, cols, first, last, cells)
    if fen == 0:
        return None  # an information line (e.g. 0.00 interest): no money moved
    if currency_index is None:
        currency_index = cols.currency
    currency = "CNY"  # exports without a currency column are CNY accounts
    if currency_index is not None:
        ccy_text = clean(cells[currency_index])
        if not ccy_text:
            raise reject("missing currency", first, csv_text.raw(first, last))
        currency = currency_code(ccy_text, first)
    booked_at = parse_when(date_text, first)
    if cols.time is not None:
        booked_at = with_time(booked_at, clean(cells[cols.time]), first)
    name = clean(cells[cols.name]) if cols.name is not None else ""
    account = clean_id(cells[cols.account]) if cols.account is not None else ""
    if cols.party is not None and not (name or account):
        name, account = split_party(clean(cells[cols.party]))
    memo_parts: list[str] = []
    for index in cols.memo:
        part = clean(cells[index])
        if part and part not in memo_parts:
            memo_parts.append(part)
    transaction_id = next((v for v in (clean_id(cells[i]) for i in cols.ids) if v), None)
    return StatementLine(
        line_no=first,
        transaction_id=transaction_id,
        booked_at=booked_at,
        amount_fen=abs(fen),
        direction=IN if fen > 0 else OUT,
        currency=currency,
        counterparty_name=name,
        counterparty_account=account,
        memo=" ".join(memo_parts),
        reference="",
        raw=csv_text.raw(first, last),
        reversal=reversal,
    )


def _amount(csv_text, cols: _Columns, first, last, cells):
    """Return ``(signed fen, reversal, currency column)``; positive fen is money in."""
    for income_i, expense_i, ccy_i in cols.split:
        income = clean(cells[income_i]) if income_i is not None else ""
        expense = clean(cells[expense_i]) if expense_i is not None else ""
        if not income and not expense:
            continue
        income_fen = to_fen(income, first, "income amount") if income else 0
        expense_fen = to_fen(expense, first, "expense amount") if expense else 0
        if income_fen and expense_fen:
            raise reject(
                "both an income and an expense amount", first, csv_text.raw(first, last)
            )
        # A negative figure in a split column is a correction (红字冲正) of that side:
        # the money moved the other way, and the line is a reversal.
        if income_fen:
            return income_fen, income_fen < 0, ccy_i
        return -expense_fen, expense_fen < 0, ccy_i
    if cols.split and cols.signed is None and cols.unsigned is None:
        raise reject("no amount in the income or expense column", first, csv_text.raw(first, last))
    if cols.signed is not None:
        text = clean(cells[cols.signed])
        if not text:
            raise reject("missing amount", first, csv_text.raw(first, last))
        return to_fen(text, first), False, None
    text = clean(cells[cols.unsigned])
    if not text:
        raise reject("missing amount", first, csv_text.raw(first, last))
    if text[0] in "+-":
        raise reject("signed amount beside a debit/credit flag", first, text)
    fen = to_fen(text, first)
    flag = clean(cells[cols.flag])
    return fen * _flag_sign(flag, first), False, None


def _flag_sign(flag: str, line: int) -> int:
    """Read a debit/credit flag such as ``贷 Cr`` or ``借 Dr``: +1 for credit, -1 for debit."""
    words = flag.lower().replace("/", " ").split()
    first_char = flag[:1]
    if first_char in ("贷", "收") or (words and words[0] in _CREDIT_FLAGS):
        credit = True
    elif first_char in ("借", "支", "付") or (words and words[0] in _DEBIT_FLAGS):
        credit = False
    else:
        raise reject("unknown debit/credit flag", line, flag)
    # "贷 Dr" would contradict itself: refuse rather than guess.
    if any(w in ("dr", "debit") for w in words) and credit:
        raise reject("contradictory debit/credit flag", line, flag)
    if any(w in ("cr", "credit") for w in words) and not credit:
        raise reject("contradictory debit/credit flag", line, flag)
    return 1 if credit else -1


def split_party(cell: str) -> tuple[str, str]:
    """Split a combined counterparty cell (``张三 6222...``) into name and account."""
    match = _PARTY_ACCOUNT.search(cell)
    if match is None:
        return cell, ""
    group = 1 if match.group(1) is not None else 2
    end = match.start(group)
    while end and (cell[end - 1].isspace() or cell[end - 1] in ":："):
        end -= 1
    if "\n" in cell[:end]:  # the name is one line
        return cell, ""
    return cell[:end].strip(), match.group(group)
