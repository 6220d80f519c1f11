"""SWIFT MT940 customer statements.

Why not the ``mt940`` package: the one installed here is Tryton's ``mt940`` 0.8.1 (the
PyPI name ``mt940``), not wolph's ``mt-940`` (``mt940.models``/``mt940.parse``), and it
cannot serve this importer:

* it gives no line numbers and no raw text, which refusals and ``StatementLine`` need;
* it crashes (ValueError) on a ``:61:`` with more than one continuation line, the case
  where banks put the payer's name on the second ``:61:`` line, and (AttributeError) on
  any ``:61:`` its regex does not match, instead of naming the line;
* it reads only ``:60F:``, so a statement opened by ``:60M:`` has no currency;
* it dates an entry in the value date's year, so an entry booked on 2 January for a
  value date of 31 December lands a year early;
* it cuts a bank reference at 34 characters without a word (the long-reference bug);
* it takes any continuation line that starts with ``-`` or ``:`` for a new field.

And line identities are derived from what we parse, so there must be exactly one,
deterministic reading of each ``:61:``: a fallback parser used only when the package
fails would give the same line two fingerprints depending on its neighbours. So this
module tokenises the file itself; the tests cross-check amounts and dates against the
package on the sample files where it copes.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from app.domain.statements import IN, OUT, ParsedStatement, StatementLine

from .text import reject, split_lines
from .values import to_fen

_TAG = re.compile(r":(\d{2}[A-Z]?|NS):")
_BALANCE = re.compile(r"([CD])(\d{6})([A-Z]{3})(\d+(?:,\d*)?)")
_LINE61 = re.compile(
    r"(?P<value>\d{6})(?P<entry>\d{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z])?"
    r"(?P<amount>\d+(?:,\d*)?)(?P<type>[NFS][A-Z0-9]{3})(?P<rest>.*)"
)
# Markers that banks put where a customer reference would stand.
_NO_REFERENCE = frozenset({"", "NONREF", "NOTPROVIDED", "EREF", "MARF", "PREF", "KREF"})
# A :61: supplementary-details line that is an account (Rabobank puts the IBAN there).
_ACCOUNT_LIKE = re.compile(r"(?:[A-Z]{2}\d{2}[A-Z0-9]{8,30}|[A-Z]?\d{6,20})")
# German/Polish structured :86: ("051?00UEBERWEISUNG?20Gehalt...").
_GVC = re.compile(r"\d{3}\?")
_SUBFIELD = re.compile(r"\?(\d{2})")
_SEPA_EREF = re.compile(r"EREF\+(.*?)(?=(?:KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC)\+|$)")
# Tags of the slash-delimited :86: (Rabobank, ABN AMRO, ING): /NAME/.../REMI/...
_SLASH_TAGS = (
    "CDTRREFTP", "CDTRREF", "EREF", "KREF", "MREF", "CRED", "DEBT", "IBAN", "BIC", "NAME",
    "REMI", "TRTP", "CNTP", "BENM", "ORDP", "ADDR", "MARF", "PREF", "CSID", "ISDT", "RTRN",
    "PURP", "ULTC", "ULTD", "ISSR", "SCOR", "RTYP", "SVWZ", "ID", "CD", "CUR",
)
_SLASH_SPLIT = re.compile(r"/(" + "|".join(_SLASH_TAGS) + r")/")
# SWIFT wraps :86: at 65 characters; a shorter line ended where the writer ended it.
_SWIFT_LINE = 65


@dataclass
class _Field:
    tag: str
    line_no: int
    lines: list[str]  # the value: the first line without its tag, then continuation lines
    raw: list[str]  # the physical lines, tag included


@dataclass
class _Statement:
    line_no: int
    fields: list[_Field] = field(default_factory=list)


def looks_like_mt940(text: str) -> bool:
    """Tell whether text has MT940 fields: a ``:20:`` and a ``:25:`` or balance line."""
    head = text[:65536]
    return bool(re.search(r"(?m)^:20:", head)) and bool(re.search(r"(?m)^:(25|60[FM]):", head))


def parse(text: str) -> ParsedStatement:
    """Parse MT940 text into lines; zero-amount information lines are left out."""
    statements = _tokenise(split_lines(text))
    if not statements:
        raise reject("no MT940 statement (no :20: field)", 1)
    lines: list[StatementLine] = []
    accounts: list[str] = []
    for statement in statements:
        account = _read_statement(statement, lines)
        if account:
            accounts.append(account)
    account = accounts[0] if accounts and len(set(accounts)) == 1 else ""
    return ParsedStatement(format="mt940", lines=tuple(lines), account=account)


def _tokenise(physical: list[str]) -> list[_Statement]:
    statements: list[_Statement] = []
    current: _Field | None = None
    for number, line in enumerate(physical, 1):
        text = line.rstrip()
        if text.startswith("{"):
            # SWIFT envelope "{1:F01...}{2:...}{4:"; a field may follow on the same line.
            _, sep, text = text.partition("{4:")
            current = None
            if not sep or not text:
                continue
        if not text or text == ":940:":
            continue
        if text == "-" or text.startswith("-}"):
            current = None  # end of message
            continue
        match = _TAG.match(text)
        if match:
            tag = match.group(1)
            current = _Field(tag, number, [text[match.end() :]], [line])
            if tag == "20":
                statements.append(_Statement(number))
            elif not statements:
                raise reject("MT940 field before the first :20:", number, line)
            statements[-1].fields.append(current)
        elif current is not None:
            current.lines.append(text)
            current.raw.append(line)
        # else: a bank's header line between messages (ABN AMRO writes "ABNANL2A", "940")
    return statements


def _read_statement(statement: _Statement, out: list[StatementLine]) -> str:
    account = ""
    currency = None
    opening = closing = None
    closing_field = None
    total = 0
    pending: tuple[_Field, dict] | None = None

    def flush(description: _Field | None) -> None:
        nonlocal pending
        if pending is not None:
            entry_field, entry = pending
            pending = None
            if entry["fen"]:
                out.append(_to_line(entry_field, entry, description, currency))

    for f in statement.fields:
        value = f.lines[0].strip()
        if f.tag == "25":
            account = "".join(part.strip() for part in f.lines)
        elif f.tag in ("60F", "60M"):
            currency, opening = _balance(f)
        elif f.tag == "61":
            flush(None)
            if currency is None:
                raise reject(":61: before the opening balance (:60F:)", f.line_no, value)
            entry = _line61(f)
            total += entry["signed"]
            pending = (f, entry)
        elif f.tag == "86":
            flush(f)  # an :86: after a :61: is its description; otherwise the statement's
        elif f.tag in ("62F", "62M"):
            flush(None)
            closing_currency, closing = _balance(f)
            closing_field = f
            if currency is not None and closing_currency != currency:
                raise reject("closing balance currency differs from the opening", f.line_no, value)
        else:
            flush(None)
    flush(None)
    if opening is None:
        raise reject("statement has no opening balance (:60F:)", statement.line_no)
    if closing is None:
        last = statement.fields[-1]
        raise reject(
            "statement has no closing balance (:62F:); is the file truncated?",
            last.line_no + len(last.lines) - 1,
            last.raw[-1],
        )
    if opening + total != closing:
        # The balances are the bank's own check that no line is missing or misread.
        raise reject(
            f"balances do not add up: opening {opening} fen plus lines {total} fen is not"
            f" the closing balance",
            closing_field.line_no,
            closing_field.raw[0],
        )
    return account


def _balance(f: _Field) -> tuple[str, int]:
    value = f.lines[0].strip()
    match = _BALANCE.fullmatch(value)
    if match is None:
        raise reject(f"malformed balance :{f.tag}:", f.line_no, value)
    _date(match.group(2), f.line_no, value)
    fen = to_fen(_decimal_comma(match.group(4)), f.line_no, "balance")
    return match.group(3), fen if match.group(1) == "C" else -fen


def _decimal_comma(amount: str) -> str:
    whole, _, frac = amount.partition(",")
    return f"{whole}.{frac}" if frac else whole


def _date(yymmdd: str, line: int, value: str) -> datetime.date:
    try:
        return datetime.datetime.strptime(yymmdd, "%y%m%d").date()
    except ValueError:
        raise reject("bad date", line, value) from None


def _line61(f: _Field) -> dict:
    value = f.lines[0].strip()
    match = _LINE61.fullmatch(value)
    if match is None:
        raise reject("malformed :61: statement line", f.line_no, value)
    value_date = _date(match.group("value"), f.line_no, value)
    booked = value_date
    if match.group("entry"):
        month, day = int(match.group("entry")[:2]), int(match.group("entry")[2:])
        year = value_date.year
        # The entry date has no year: it is near the value date, across New Year maybe.
        if value_date.month == 12 and month == 1:
            year += 1
        elif value_date.month == 1 and month == 12:
            year -= 1
        try:
            booked = datetime.date(year, month, day)
        except ValueError:
            raise reject("bad entry date", f.line_no, value) from None
    mark = match.group("mark")
    fen = to_fen(_decimal_comma(match.group("amount")), f.line_no)
    # RC is the reversal of a credit, so money left the account; RD brings money back.
    incoming = mark in ("C", "RD")
    customer_ref, _, bank_ref = match.group("rest").partition("//")
    return {
        "booked_at": booked,
        "fen": fen,
        "signed": fen if incoming else -fen,
        "direction": IN if incoming else OUT,
        "reversal": mark.startswith("R"),
        "customer_ref": customer_ref.strip(),
        "bank_ref": bank_ref.strip(),
        "supplementary": " ".join(part.strip() for part in f.lines[1:] if part.strip()),
    }


def _to_line(f61: _Field, entry: dict, f86: _Field | None, currency: str) -> StatementLine:
    info = describe(f86.lines) if f86 is not None else {}
    name = info.get("name", "")
    account = info.get("account", "")
    memo = info.get("memo", "")
    supplementary = entry["supplementary"]
    if supplementary:
        if _ACCOUNT_LIKE.fullmatch(supplementary):
            account = account or supplementary
        elif not name:
            name = supplementary  # the payer's name on the second :61: line
        else:
            memo = f"{supplementary} {memo}".strip()
    reference = entry["customer_ref"]
    if reference.upper() in _NO_REFERENCE:
        reference = info.get("reference", "")
    raw = f61.raw + (f86.raw if f86 is not None else [])
    return StatementLine(
        line_no=f61.line_no,
        transaction_id=None,  # MT940 has no reliable per-transaction id
        booked_at=entry["booked_at"],
        amount_fen=entry["fen"],
        direction=entry["direction"],
        currency=currency,
        counterparty_name=name,
        counterparty_account=account,
        memo=memo,
        reference=reference,
        raw="\n".join(raw),
        reversal=entry["reversal"],
    )


def describe(lines: list[str]) -> dict[str, str]:
    """Read an :86: field into ``memo``, ``name``, ``account`` and ``reference``."""
    joined = "".join(lines).strip()
    if _GVC.match(joined):
        return _describe_subfields(joined)
    if joined.startswith("/") and _SLASH_SPLIT.match(joined):
        return _describe_slash_tags(joined)
    text = lines[0].strip()
    for previous, line in zip(lines, lines[1:]):
        # A full 65-character line was wrapped mid-word; a shorter one ended a phrase.
        text += ("" if len(previous.rstrip()) >= _SWIFT_LINE else " ") + line.strip()
    return {"memo": text.strip()}


def _describe_subfields(text: str) -> dict[str, str]:
    # ?00 booking text, ?20-?29 and ?60-?63 purpose, ?30 bank code, ?31 account,
    # ?32-?33 name, ?38 IBAN. Subfields are wrapped, not separated: join with "".
    parts = _SUBFIELD.split(text)
    fields: dict[str, str] = {}
    for code, value in zip(parts[1::2], parts[2::2]):
        fields[code] = fields.get(code, "") + value
    purpose = "".join(
        fields.get(code, "") for code in [f"{n}" for n in range(20, 30)] + ["60", "61", "62", "63"]
    ).strip()
    eref = _SEPA_EREF.search(purpose)
    reference = eref.group(1).strip() if eref else ""
    if reference.upper() == "NOTPROVIDED":
        reference = ""
    return {
        "memo": purpose or fields.get("00", "").strip(),
        "name": (fields.get("32", "") + fields.get("33", "")).strip(),
        "account": (fields.get("38") or fields.get("31") or "").strip(),
        "reference": reference,
    }


def _describe_slash_tags(text: str) -> dict[str, str]:
    parts = _SLASH_SPLIT.split(text)
    fields: dict[str, str] = {}
    for tag, value in zip(parts[1::2], parts[2::2]):
        fields.setdefault(tag, value.strip())  # the first NAME is the counterparty's
    name = fields.get("NAME", "")
    account = fields.get("IBAN", "")
    if "CNTP" in fields:  # ING: account/BIC/name/city
        cntp = fields["CNTP"].split("/")
        account = account or cntp[0].strip()
        if len(cntp) > 2:
            name = name or cntp[2].strip()
    remi = fields.get("REMI", "")
    reference = fields.get("CDTRREF", "")
    if remi.startswith("USTD//"):  # ING unstructured remittance
        remi = remi[len("USTD//") :].rstrip("/")
    elif remi.startswith("STRD/"):  # ING structured: STRD/CUR/<reference>
        reference = reference or remi.rsplit("/", 1)[-1]
        remi = ""
    eref = fields.get("EREF", "")
    if not reference and eref.upper() != "NOTPROVIDED":
        reference = eref
    return {
        "memo": remi.strip() or text,
        "name": name,
        "account": account,
        "reference": reference.strip(),
    }
