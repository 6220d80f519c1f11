"""ISO 20022 CAMT.053 bank-to-customer statements, versions 001.02 to 001.08.

Every ``NtryDtls/TxDtls`` of an entry is a transfer of its own (a batch entry books
many, each with its own amount in the entry's currency, adding up to the entry); an entry
without details, or with one, is one transfer of the entry's amount and direction.
"""
from __future__ import annotations

import datetime
import re

from app.domain.statements import IN, OUT, ParsedStatement, StatementLine

from . import xml_tree
from .text import reject
from .values import currency_code, iso_timestamp, to_fen

_NAMESPACE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})")
SUPPORTED_VERSIONS = range(2, 9)
_XML_AMOUNT = re.compile(r"\d+(?:\.\d+)?")
_NOT_PROVIDED = "NOTPROVIDED"


def looks_like_camt053(head: bytes) -> bool:
    """Tell whether the start of an XML file names the CAMT.053 namespace."""
    return b"camt.053.001." in head


def parse(data: bytes) -> ParsedStatement:
    """Parse CAMT.053 XML bytes (DTDs and entities refused) into statement lines."""
    root, encoding = xml_tree.parse(data)
    match = _NAMESPACE.fullmatch(root.ns)
    if root.name != "Document" or match is None:
        raise reject("not a CAMT.053 document", root.line, f"{{{root.ns}}}{root.name}")
    version = int(match.group(1))
    if version not in SUPPORTED_VERSIONS:
        raise reject("unsupported CAMT.053 version (001.02 to 001.08 are read)", root.line, root.ns)
    message = root.child("BkToCstmrStmt")
    if message is None:
        raise reject("CAMT.053 document without BkToCstmrStmt", root.line)
    reader = _Reader(data, encoding)
    lines: list[StatementLine] = []
    accounts: list[tuple[str, int]] = []
    for statement in message.all("Stmt"):
        account = statement.text_at("Acct", "Id", "IBAN") or statement.text_at(
            "Acct", "Id", "Othr", "Id"
        )
        if account:
            accounts.append((account, (statement.child("Acct") or statement).line))
        account_currency = statement.text_at("Acct", "Ccy")
        for entry in statement.all("Ntry"):
            lines.extend(reader.entry(entry, account_currency))
    return ParsedStatement.of_statements("camt053", lines, accounts)


class _Reader:
    def __init__(self, data: bytes, encoding: str):
        self.data = data
        self.encoding = encoding

    def raw(self, node: xml_tree.Node) -> str:
        return self.data[node.start : node.end].decode(self.encoding, errors="replace")

    def entry(self, ntry: xml_tree.Node, account_currency: str) -> list[StatementLine]:
        fen, currency = _amount(ntry.child("Amt"), ntry, account_currency, "entry amount")
        incoming = _credit(ntry.text_at("CdtDbtInd"), ntry.line)
        status = ntry.text_at("Sts") or ntry.text_at("Sts", "Cd")  # 001.08: <Sts><Cd>
        common = {
            "booked_at": _booking_date(ntry),
            "booked": status == "BOOK",
            "reversal": ntry.text_at("RvslInd").lower() in ("true", "1"),
        }
        details = [tx for dtls in ntry.all("NtryDtls") for tx in dtls.all("TxDtls")]
        entry_info = ntry.text_at("AddtlNtryInf")
        entry_ref = ntry.text_at("AcctSvcrRef")
        if not details:
            if fen == 0:
                return []
            return [
                self._line(ntry, ntry, fen, currency, incoming, common, entry_ref, [entry_info])
            ]
        if len(details) == 1:
            # One transfer: the entry amount is the money booked (a detail's TxAmt can be
            # before charges or in the instructed currency).
            if fen == 0:
                return []
            tx = details[0]
            if _detail_direction(tx, incoming) != incoming:
                # The entry's amount moved the entry's way: a debit is never read as a credit.
                message = "the only detail's CdtDbtInd contradicts its entry's"
                raise reject(message, tx.line, tx.text_at("CdtDbtInd"))
            tid = tx.text_at("Refs", "AcctSvcrRef") or entry_ref
            return [self._line(tx, ntry, fen, currency, incoming, common, tid, [entry_info])]
        return self._batch(ntry, details, fen, currency, incoming, common, account_currency)

    def _batch(self, ntry, details, fen, currency, incoming, common, account_currency):
        amounts = [tx.child("Amt") or tx.child("AmtDtls", "TxAmt", "Amt") for tx in details]
        if not any(amounts):
            # The bank gives only the total: the batch cannot be split. Money going out stays
            # one line of the entry (a payroll run, say; never credited); money coming in is
            # refused, since as one line a code in one detail's text would credit its account
            # with every detail's money.
            if not incoming:
                return [self._combined(ntry, details, fen, currency, common)]
            raise reject(
                f"batch entry of {len(details)} transfers, none with an amount of its own",
                ntry.line,
                ntry.text_at("Amt"),
            )
        lines: list[StatementLine] = []
        total = 0
        for tx, node in zip(details, amounts):
            if node is None:
                raise reject("batch detail without its own amount", tx.line, self.raw(tx)[:200])
            tx_fen, tx_currency = _amount(node, tx, account_currency, "detail amount")
            if tx_currency != currency:
                # Checked against nothing, and never money of the detail's currency (a CNY
                # detail of a EUR booking would be credited as CNY). Going out, the entry
                # stays one line of its own amount and currency.
                if not incoming:
                    return [self._combined(ntry, details, fen, currency, common)]
                raise reject(
                    f"batch detail amount in {tx_currency}, the entry books {currency}",
                    tx.line,
                    tx_currency,
                )
            tx_incoming = _detail_direction(tx, incoming)
            total += tx_fen if tx_incoming else -tx_fen
            if tx_fen:
                # A shared entry AcctSvcrRef names the batch, not a transfer: only the
                # detail's own reference can be its id.
                tid = tx.text_at("Refs", "AcctSvcrRef")
                lines.append(
                    self._line(tx, ntry, tx_fen, tx_currency, tx_incoming, common, tid, [])
                )
        if total != (fen if incoming else -fen):
            raise reject(
                f"batch details add up to {total} fen, the entry books"
                f" {fen if incoming else -fen} fen",
                ntry.line,
                ntry.text_at("Amt"),
            )
        return lines

    def _combined(self, ntry, details, fen, currency, common) -> StatementLine:
        """An outgoing batch entry as one line of its amount, with every detail's text."""
        memos, references, parties = [], [], set()
        for tx in details:
            memo, reference = _remittance(tx, [])
            memos.append(memo)
            references.append(reference)
            parties.add(_counterparty(tx, False, common["reversal"]))
        name, account = parties.pop() if len(parties) == 1 else ("", "")
        return StatementLine(
            line_no=ntry.line,
            transaction_id=None,
            amount_fen=fen,
            direction=OUT,
            currency=currency,
            counterparty_name=name,
            counterparty_account=account,
            memo=" ".join(m for m in memos if m),
            reference=" ".join(r for r in references if r),
            raw=self.raw(ntry),
            **common,
        )

    def _line(self, node, ntry, fen, currency, incoming, common, tid, extra) -> StatementLine:
        memo, reference = _remittance(node, extra)
        name, account = _counterparty(node, incoming, common["reversal"])
        return StatementLine(
            line_no=node.line,
            transaction_id=tid or None,
            amount_fen=fen,
            direction=IN if incoming else OUT,
            currency=currency,
            counterparty_name=name,
            counterparty_account=account,
            memo=memo,
            reference=reference,
            raw=self.raw(node),
            **common,
        )


def _amount(node, owner, account_currency: str, what: str) -> tuple[int, str]:
    if node is None:
        raise reject(f"missing {what}", owner.line)
    text = node.text
    if not _XML_AMOUNT.fullmatch(text):
        raise reject(f"malformed {what}", node.line, text)
    fen = to_fen(text, node.line, what)
    ccy = node.attrs.get("Ccy") or account_currency
    if not ccy:
        raise reject(f"{what} without a currency", node.line, text)
    return fen, currency_code(ccy, node.line)


def _credit(indicator: str, line: int) -> bool:
    if indicator == "CRDT":
        return True
    if indicator == "DBIT":
        return False
    raise reject("CdtDbtInd is neither CRDT nor DBIT", line, indicator)


def _detail_direction(tx, entry_incoming: bool) -> bool:
    indicator = tx.text_at("CdtDbtInd")
    return _credit(indicator, tx.line) if indicator else entry_incoming


def _booking_date(ntry) -> datetime.date | datetime.datetime:
    for path in (("BookgDt", "Dt"), ("BookgDt", "DtTm"), ("ValDt", "Dt"), ("ValDt", "DtTm")):
        node = ntry.child(*path)
        if node is None:
            continue
        try:
            if path[-1] == "Dt":
                return datetime.date.fromisoformat(node.text)
            return iso_timestamp(node.text)
        except ValueError:
            raise reject("bad date", node.line, node.text) from None
    raise reject("entry without a booking or value date", ntry.line)


def _remittance(node, extra: list[str]) -> tuple[str, str]:
    """Return ``(memo, reference)`` of a detail (or of an entry without details)."""
    structured = [n.text for n in node.all("RmtInf", "Strd", "CdtrRefInf", "Ref") if n.text]
    memo_parts = [n.text for n in node.all("RmtInf", "Ustrd") if n.text]
    end_to_end = node.text_at("Refs", "EndToEndId")
    if end_to_end.upper() == _NOT_PROVIDED:
        end_to_end = ""
    reference = " ".join(structured)
    if end_to_end:
        if reference:
            memo_parts.append(end_to_end)  # still searched for a remittance code
        else:
            reference = end_to_end
    for text in [node.text_at("AddtlTxInf"), *extra]:
        if text and text not in memo_parts:
            memo_parts.append(text)
    return " ".join(memo_parts), reference


def _counterparty(node, incoming: bool, reversal: bool) -> tuple[str, str]:
    """Return the other party: the debtor of a credit, the creditor of a debit."""
    parties = node.child("RltdPties")
    if parties is None:
        return "", ""
    sides = [("Dbtr", "DbtrAcct"), ("Cdtr", "CdtrAcct")]
    if not incoming:
        sides.reverse()
    for index, (party, account) in enumerate(sides):
        name = parties.text_at(party, "Nm") or parties.text_at(party, "Pty", "Nm")
        number = parties.text_at(account, "Id", "IBAN") or parties.text_at(
            account, "Id", "Othr", "Id"
        )
        if name or number:
            return name, number
        if not reversal or index:
            break
        # A reversal may name only the parties of the original transfer.
    return "", ""
