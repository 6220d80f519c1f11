"""Bank statement lines as the parsers hand them to the importer and the reconciler.

Pure data and the line-identity scheme; standard library only.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

IN = "in"
OUT = "out"


@dataclass(frozen=True)
class StatementLine:
    """One transfer read from a statement file; amounts are positive fen with a direction."""

    line_no: int  # 1-based line where it starts in the file (CSV record, `:61:`, <TxDtls>)
    transaction_id: str | None  # the bank's own id, only where it is real and unique per transfer
    booked_at: datetime.date | datetime.datetime
    amount_fen: int  # positive, always
    direction: str  # IN or OUT: the way the money actually moved (a reversal of a credit is OUT)
    currency: str  # ISO 4217 code; 人民币/RMB are mapped to CNY
    counterparty_name: str
    counterparty_account: str
    memo: str  # free text: 摘要/附言/用途..., CAMT Ustrd, MT940 :86: purpose
    reference: str  # structured reference: CAMT CdtrRefInf/Ref or EndToEndId, MT940 customer ref
    raw: str  # the text of the line or entry as it stands in the file (decoded)
    booked: bool = True  # False for CAMT PDNG and other non-booked entries: never credited
    reversal: bool = False  # MT940 RC/RD, CAMT RvslInd true, negative amount in a split column


@dataclass(frozen=True)
class ParsedStatement:
    """A whole statement file, read without error."""

    format: str  # "csv", "icbc", "ccb", "abc", "boc", "bocom", "cmb", "mt940", "camt053"
    lines: tuple[StatementLine, ...]
    account: str = ""  # the statement's own account number, where the file states one
    # Every account number the file's statements state, with the line stating it, in file
    # order; ``account`` is "" when they differ.
    accounts: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of_statements(cls, format: str, lines, accounts) -> ParsedStatement:
        """A file of statements that each may state an account (MT940, CAMT.053): ``accounts``
        as ``(number, line)`` in file order; the file's ``account`` is theirs when they agree."""
        numbers = {number for number, _line in accounts}
        account = accounts[0][0] if len(numbers) == 1 else ""
        return cls(format=format, lines=tuple(lines), account=account, accounts=tuple(accounts))


def line_identities(lines: Iterable[StatementLine]) -> list[str]:
    """Return the stable identity key of each line of one file, for import idempotency.

    The scheme (version 1; changing it needs a data migration of every stored key):

    * ``"tx:" + transaction_id`` for a booked line whose ``transaction_id`` is set and
      occurs exactly once among the given lines. An id repeated within the file is not
      an id of a single transfer (e.g. a CAMT AcctSvcrRef shared by a batch): those lines
      fall back to the fingerprint. Lines that are not booked never use ``tx:``, so that
      the same bank id booked later in another statement is still a new line.
    * otherwise ``"fp:" + F + ":" + N`` where ``F`` is the lowercase hex SHA-256 of the
      UTF-8 JSON array (``ensure_ascii=False``, separators ``","`` and ``":"``)::

          [booked_at.isoformat(), amount_fen, direction, currency,
           counterparty_account, counterparty_name, memo, reference, booked, reversal]

      and ``N`` is the 0-based count of earlier lines in the same file with the same
      ``F``. Two identical-looking transfers in one file thus stay two keys (``:0``,
      ``:1``), and a statement that overlaps an earlier one yields the same keys for the
      lines they share, provided identical-looking lines are not cut apart by the overlap.

    The keys are unique within the lines given; they identify a line only within one
    bank account's statements, so storage must scope them by that account.
    """
    lines = list(lines)
    id_counts = Counter(line.transaction_id for line in lines if line.transaction_id)
    seen: Counter[str] = Counter()
    keys: list[str] = []
    for line in lines:
        tid = line.transaction_id
        if tid and line.booked and id_counts[tid] == 1:
            keys.append("tx:" + tid)
            continue
        digest = _fingerprint(line)
        keys.append(f"fp:{digest}:{seen[digest]}")
        seen[digest] += 1
    return keys


# What json.dumps(..., ensure_ascii=False, separators=(",", ":")) builds on every call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _fingerprint(line: StatementLine) -> str:
    # The field order and serialisation are part of the stored keys: never reorder.
    payload = _JSON(
        [
            line.booked_at.isoformat(),
            line.amount_fen,
            line.direction,
            line.currency,
            line.counterparty_account,
            line.counterparty_name,
            line.memo,
            line.reference,
            line.booked,
            line.reversal,
        ]
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
