"""SWIFT MT940 customer statements, read with wolph's ``mt940`` package (PyPI ``mt-940``).

The package reads the fields it copes with: the statement line ``:61:`` (value date, entry
date and its year across New Year, debit/credit mark with reversals, funds code, amount,
transaction type, references), the balances ``:60F:``/``:60M:``/``:62F:``/``:62M:`` (mark,
date, currency, amount) and the statement number ``:28C:``. It runs as
``mt940.models.Transactions`` with its default tag processors, its own ``StatementGLS`` tag
for ``:61:`` (the package's fix for customer references longer than 16 characters, its
issue #111) and ``Options`` that sign ``RC`` as the debit it is and accept lowercase marks.

This module does what the package cannot, each where it is done, with the reason:

* tokenising: the package gives no line numbers and no raw text, which every refusal and
  every ``StatementLine`` need, and it does not know the SWIFT envelope ``{1:..}{4:``;
* one ``Transactions`` per statement, split on ``:20:``: parsed as one, a file's
  statement-level fields (``:25:``, ``:60F:``, ``:62F:``) are those of its last statement,
  and a line's currency can be an earlier statement's;
* a ``:28C:`` value wrapped onto a second line is joined before the package sees it;
* a ``:61:`` is handed over as its first line only: with two supplementary-details lines
  (the payer's name often takes two) the package fails, and the tail of a bank reference
  longer than its 23 characters lands where the supplementary details belong. The
  continuation lines are read here;
* strictness where the package's looser patterns would read a damaged line as something
  else instead of failing: it moves a 30 February value date to the 29th, reads a balance
  with trailing text or a currency that is not three letters, and takes a ``:61:``
  without SWIFT's transaction type (then an amount of 16 characters reads as 15 plus a
  reference, and the next ``:61:`` is merged into it) or with half an entry date. These
  are refused here, as before (``_BALANCE``, ``_check_statement_line``);
* ``:86:`` is not handed to the package at all, see ``describe``;
* the balance check, zero-amount lines, and the mapping to ``StatementLine``.

Each field's result is taken as the package's processors hand it over (a post-processor
keeps it), not from its merged ``Transaction.data``, where an ``:86:`` ``KREF`` would
replace the ``:61:`` customer reference. That post-processor also tells which field the
package failed on, so an exception from it is refused with that field's line.

Differences from the former hand-written reader, for files it read:

* two-digit years are 2000 + YY (it read 69-99 as 1969-1999);
* the entry date's year follows the package's rule (a year earlier or later when entry
  and value date are 330 days or more apart within one year) instead of "December value
  date and January entry date, or the reverse". Both agree while the two dates are about
  a month apart or less, which is every real statement line;
* now accepted: lowercase debit/credit marks, four spaces for an absent entry date, a
  space before the amount, an amount starting with its decimal comma;
* now refused: an amount (``:61:`` or balance) longer than SWIFT's 15 characters, and a
  ``:28C:`` that is not a statement number (5n[/5n]).

MT940 has no reliable per-transaction id (``:20:`` is the statement's reference, and the
line's references are often ``NONREF``), so ``transaction_id`` is always ``None`` and the
line identities are fingerprints of what is read here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import mt940

from app.domain.errors import StatementRejected
from app.domain.statements import IN, OUT, ParsedStatement, StatementLine

from .text import reject, split_lines
from .values import to_fen

_TAG = re.compile(r":(\d{2}[A-Z]?|NS):")
# The shape of a balance, checked before the package reads it: its own pattern accepts
# any three characters as the currency and ignores whatever follows the amount, and it
# cuts an amount after 16 characters. SWIFT's amount is at most 15 characters.
_BALANCE = re.compile(r"[CD]\d{6}[A-Z]{3}(?=[\d,]{1,15}$)\d+(?:,\d*)?")
_BALANCE_TAGS = frozenset({"60F", "60M", "62F", "62M"})
# The fields handed to the package; :25: (plain text it would cut at 35 characters and
# at the first line) and :86: (see ``describe``) are read here, the rest are not needed.
_HANDED = _BALANCE_TAGS | {"20", "28", "28C", "61"}
# SWIFT's transaction type: N, F or S and three letters or digits.
_TYPE = re.compile(r"[NFS][A-Z0-9]{3}")
_MALFORMED = {
    "61": "malformed :61: statement line",
    "28": "malformed statement number :28:",
    "28C": "malformed statement number :28C:",
}
# Sign RC (reversal of a credit: money left the account) negative like D, where 5.x
# keeps it positive unless asked (its issue #130); lowercase marks signed like uppercase.
_OPTIONS = mt940.Options(reversal_sign=True, case_insensitive_marks=True)
# The package's own :61: variant for customer references longer than SWIFT's 16
# characters (GLS/Atruvia, its issue #111): the reference runs up to "//", as banks mean.
_TAGS = {61: mt940.tags.StatementGLS()}
_POST_PROCESSORS = tuple(
    sorted({f"post_{tag.slug}" for tag in mt940.models.Transactions.default_tags().values()})
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
    parsed: dict | None = None  # what the package read, for the fields handed to it
    error: StatementRejected | None = None  # why it could not, if so


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
    accounts: list[tuple[str, int]] = []
    for statement in statements:
        # One package parse per statement, so that nothing it keeps per parse carries
        # over: parsed as one, the statement-level fields of the last statement overwrite
        # the others', and the lines of a statement opened by :60M: get an earlier
        # statement's :60F: currency. (What is read here comes from each field's own
        # result, see _read_with_package, not from those statement-level fields.)
        _read_with_package(statement)
        stated = _read_statement(statement, lines)
        if stated is not None:
            accounts.append(stated)
    return ParsedStatement.of_statements("mt940", lines, accounts)


def _tokenise(physical: list[str]) -> list[_Statement]:
    # The package finds fields too, but without line numbers or raw text, and it would
    # take an envelope line or a bank's header line for part of the previous field.
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


def _handed_value(f: _Field) -> str:
    if f.tag in ("28", "28C"):
        # The package reads :28C: as one line; some banks wrap "00084/" "001".
        return "".join(part.strip() for part in f.lines)
    # A :61: goes over without its supplementary-details lines: with two of them the
    # package fails, and with a bank reference over 23 characters it puts the reference's
    # tail where they belong. ``_line61`` reads them. A balance has one line.
    return f.lines[0].strip()


def _read_with_package(statement: _Statement) -> None:
    """Have the package read the statement's fields it copes with, into ``field.parsed``.

    A field it cannot read gets ``field.error`` instead, and the fields after it are not
    read: ``_read_statement`` raises that error when it reaches the field, so that the
    first problem in the file is the one refused, whoever found it.
    """
    handed = []
    for f in statement.fields:
        if f.tag not in _HANDED:
            continue
        if f.tag in _BALANCE_TAGS and not _BALANCE.fullmatch(_handed_value(f)):
            f.error = reject(f"malformed balance :{f.tag}:", f.line_no, _handed_value(f))
            break
        handed.append(f)
    results: list[dict] = []

    def keep(transactions, tag, tag_dict, result):
        # Runs last for every field, so it also counts the fields read without error.
        results.append(result)
        return result

    defaults = mt940.models.Transactions.DEFAULT_PROCESSORS
    processors = {key: [*defaults.get(key, []), keep] for key in _POST_PROCESSORS}
    # Instead of its :61: pre-processor, which moves a 30 February value date to the 29th
    # (a date that does not exist is a damaged line), ours that checks what it matched.
    processors["pre_statement"] = [_check_statement_line]
    transactions = mt940.models.Transactions(processors=processors, tags=_TAGS, options=_OPTIONS)
    # One physical line per field, each starting with its tag: the package finds exactly
    # these fields, in this order.
    text = "\n".join(f":{f.tag}:{_handed_value(f)}" for f in handed)
    try:
        transactions.parse(text)
    except Exception as exc:  # the package's errors name no line: the field being read does
        if len(results) >= len(handed):
            message = "the mt940 package could not read the statement"
            raise reject(message, statement.line_no) from exc
        failed = handed[len(results)]
        failed.error = _refusal(failed, exc)
        failed.error.__cause__ = exc
    else:
        if len(results) != len(handed):
            raise reject("the mt940 package did not read every field", statement.line_no)
    for f, result in zip(handed, results):
        f.parsed = result


class _Doubt(Exception):
    """Raised by our processors inside the package's parse: a value it read but we refuse."""


def _check_statement_line(transactions, tag, tag_dict, *args):
    """Refuse a :61: the package's looser pattern matched in a way SWIFT's does not.

    On a damaged line that looseness reads wrong values instead of failing: its
    transaction type is optional and may start with any letter, so "...010,00N154..."
    damaged to "...010BN154..." reads as 10 with type "BN15", an amount longer than its 15
    characters reads as a shorter one plus a reference, and a :61: without a type is merged
    with the next one; and half an entry date ("1102" cut to "11") is taken for a month.
    """
    if not _TYPE.fullmatch(tag_dict.get("id") or ""):
        raise _Doubt("malformed :61: statement line (transaction type)")
    month, day = tag_dict.get("entry_month"), tag_dict.get("entry_day")
    if (month is None) != (day is None) or (month or "").isdigit() != (day or "").isdigit():
        raise _Doubt("malformed :61: statement line (entry date)")
    return tag_dict


def _refusal(f: _Field, exc: Exception) -> StatementRejected:
    if isinstance(exc, _Doubt):
        message = str(exc)
    elif isinstance(exc, RuntimeError):  # the tag's pattern did not match the value
        message = _MALFORMED.get(f.tag, f"malformed :{f.tag}:")
    elif isinstance(exc, ValueError):  # a date that does not exist
        message = "bad date"
    elif isinstance(exc, ArithmeticError):  # decimal.InvalidOperation, e.g. "1,2,3"
        message = "malformed amount"
    else:
        message = f"the mt940 package could not read :{f.tag}: ({type(exc).__name__})"
    return reject(message, f.line_no, _handed_value(f))


def _read_statement(statement: _Statement, out: list[StatementLine]) -> tuple[str, int] | None:
    account = None
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
        if f.error is not None:
            raise f.error
        if f.tag == "25":
            number = "".join(part.strip() for part in f.lines)
            account = (number, f.line_no) if number else None
        elif f.tag in ("60F", "60M"):
            currency, opening = _balance(f)
        elif f.tag == "61":
            flush(None)
            if currency is None:
                value = _handed_value(f)
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
                message = "closing balance currency differs from the opening"
                raise reject(message, f.line_no, _handed_value(f))
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
    (balance,) = f.parsed.values()  # {"final_opening_balance": Balance}, etc.
    amount = balance.amount.amount  # a Decimal, negative for D
    fen = to_fen(f"{abs(amount):f}", f.line_no, "balance")
    return balance.amount.currency, -fen if amount < 0 else fen


def _line61(f: _Field) -> dict:
    data = f.parsed  # checked by _check_statement_line
    amount = data["amount"].amount  # signed: C and RD positive, D and RC negative
    fen = to_fen(f"{abs(amount):f}", f.line_no)
    incoming = amount > 0
    booked = data.get("entry_date") or data["date"]  # the package's mt940.models.Date
    return {
        "booked_at": date(booked.year, booked.month, booked.day),
        "fen": fen,
        "signed": fen if incoming else -fen,
        "direction": IN if incoming else OUT,
        "reversal": data["status"].upper().startswith("R"),
        "customer_ref": (data.get("customer_reference") or "").strip(),
        # The second and later lines of the :61: (not handed to the package). Its
        # "extra_details" is ignored: from a first line alone it can only hold the tail
        # of a bank reference longer than 23 characters, never the payer's name.
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
    """Read an :86: field into ``memo``, ``name``, ``account`` and ``reference``.

    This is ours, not ``mt940.processors``: the line identity (``line_identities``)
    fingerprints memo, name, account and reference, so their reading must not change
    for files already imported, or an overlapping statement would import its transfers
    again. The package's reading differs where it matters: for a structured ``?NN``
    :86: it replaces the ``?20``-``?29`` purpose by the SEPA ``SVWZ+`` text alone and
    drops any text before the first ``EREF+``-style keyword, cuts " BIC"/" IBAN" off
    sub-fields, puts ``?31`` in front of the name (unless ``Options.applicant_iban``),
    does not read ``?38`` (the IBAN), and splits on any ``?``; it has no reading of the
    slash-tagged ``/NAME/.../REMI/`` of Rabobank, ABN AMRO and ING; it joins free-text
    lines with line breaks; and its merge appends a statement-level :86: (after
    ``:62F:``) to the last line's details.
    """
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
