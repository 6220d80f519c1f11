"""Reconciliation rules: which account an incoming bank line pays, if any. Pure.

A line is matched only by a remittance code that was actually issued, found in its memo or
structured reference (case, spaces, hyphens and full-width characters do not matter). A code
one edit away from exactly one issued code, or a payer account seen before on a confirmed
match to exactly one account, makes a suggestion for finance; it never credits anything.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .remittance import ALPHABET, CODE_LENGTH, SEPARATORS, normalize_text
from .statements import IN

CNY = "CNY"
MATCHED = "matched"
SUGGESTED = "suggested"
UNMATCHED = "unmatched"
IGNORED = "ignored"
EXCEPTION = "exception"

# Codes hide in runs of alphabet characters once the text is normalised; anything else
# (CJK, punctuation, 0/O/1/I) ends a run. A run shorter than a code minus one holds nothing.
# The runs are found before the separators are dropped, as alphabet characters with only
# separators between them: deleting separators from a whole memo with str.translate is slow
# for non-ASCII text (most memos hold CJK); only the few runs found need it.
_SEPARATED_RUN = re.compile(f"[{ALPHABET}](?:[{re.escape(SEPARATORS)}]*[{ALPHABET}])*")
_DROP_SEPARATORS = str.maketrans("", "", SEPARATORS)


@dataclass(frozen=True)
class LineFacts:
    """What the rules read of a statement line; any object with these attributes will do."""

    booked: bool
    reversal: bool
    direction: str
    currency: str
    memo: str
    reference: str
    counterparty_account: str


class Decision(NamedTuple):
    """What a line is, and why; a tuple, since a run makes one per line."""

    status: str
    account_id: str | None = None  # set only when matched
    suggested_account_id: str | None = None
    reason: str = ""


class CodeIndex:
    """The issued codes (code -> account id) and their single-deletion neighbourhood.

    The neighbourhood maps every string made by deleting one character of an issued code to
    those codes (SymSpell): a near miss is then found by a few dictionary lookups per text
    window instead of generating every substitution of every window.
    """

    def __init__(self, codes: Mapping[str, str]):
        self.accounts: dict[str, str] = dict(codes)
        self.deletions: dict[str, list[str]] = {}
        self._matches: dict[str, Decision] = {}
        deletions = self.deletions
        for code in self.accounts:
            for i in range(len(code)):
                variant = code[:i] + code[i + 1 :]
                bucket = deletions.get(variant)
                if bucket is None:
                    deletions[variant] = [code]
                elif code not in bucket:  # a doubled letter gives one variant twice
                    bucket.append(code)

    def match(self, code: str) -> Decision:
        """Return the decision of a line paying with this issued code (one per code, shared)."""
        decision = self._matches.get(code)
        if decision is None:
            decision = self._matches[code] = Decision(
                MATCHED, account_id=self.accounts[code], reason=f"remittance code {code}"
            )
        return decision

    def exact(self, runs: list[str]) -> set[str]:
        """Return the issued codes standing in the runs."""
        accounts, found = self.accounts, set()
        for run in runs:
            if len(run) == CODE_LENGTH:  # the usual case: the code alone, one window
                if run in accounts:
                    found.add(run)
                continue
            for i in range(len(run) - CODE_LENGTH + 1):
                window = run[i : i + CODE_LENGTH]
                if window in accounts:
                    found.add(window)
        return found

    def near(self, runs: list[str]) -> set[str]:
        """Return the issued codes one substitution, insertion or deletion from a window."""
        accounts, deletions, found = self.accounts, self.deletions, set()
        for run in runs:
            for i in range(len(run) - CODE_LENGTH + 2):
                # A character dropped: the window is one of a code's deletions.
                short = run[i : i + CODE_LENGTH - 1]
                found.update(deletions.get(short, ()))
                if i + CODE_LENGTH <= len(run):
                    # A character replaced: a deletion of the window meets a deletion of the
                    # code at the same position.
                    window = run[i : i + CODE_LENGTH]
                    for j in range(CODE_LENGTH):
                        for code in deletions.get(window[:j] + window[j + 1 :], ()):
                            if _one_substitution(window, code):
                                found.add(code)
                if i + CODE_LENGTH + 1 <= len(run):
                    # A character added: deleting one character of the window gives a code.
                    long = run[i : i + CODE_LENGTH + 1]
                    for j in range(CODE_LENGTH + 1):
                        candidate = long[:j] + long[j + 1 :]
                        if candidate in accounts:
                            found.add(candidate)
        return found


def _one_substitution(a: str, b: str) -> bool:
    return sum(x != y for x, y in zip(a, b)) == 1


class PayerIndex:
    """Payer bank accounts seen on confirmed matches, and the one account each paid for."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self._accounts: dict[str, str | None] = {}
        self._keys: dict[str, str] = {}  # as written -> normalised; payers repeat a lot
        for payer, account_id in pairs:
            self.learn(payer, account_id)

    def learn(self, payer: str, account_id: str) -> None:
        """Record a confirmed match; a payer seen for two accounts identifies neither."""
        # Called for every matched line of a run: the key cache is read here directly.
        key = self._keys.get(payer)
        if key is None:
            key = self._key(payer)
        if not key:
            return
        accounts = self._accounts
        known = accounts.get(key, account_id)
        accounts[key] = account_id if known == account_id else None

    def account_for(self, payer: str) -> str | None:
        """Return the one account this payer paid for, or None."""
        key = self._key(payer)
        return self._accounts.get(key) if key else None

    def _key(self, payer: str) -> str:
        key = self._keys.get(payer)
        if key is None:
            # A masked number (1234****9876, as personal exports print them) names nobody.
            key = self._keys[payer] = "" if "*" in payer else normalize_text(payer)
        return key


def code_runs(*texts: str) -> list[str]:
    """Return the runs of code characters in the texts, normalised for code search.

    The runs of ``normalize_text``: case and full width folded, separators dropped.
    """
    runs: list[str] = []
    for text in texts:
        if text:
            folded = unicodedata.normalize("NFKC", text).upper()
            for run in _SEPARATED_RUN.findall(folded):
                if len(run) < CODE_LENGTH - 1:  # separators only make it longer
                    continue
                if not run.isalnum():  # holds separators: every one of them is no letter
                    run = run.translate(_DROP_SEPARATORS)
                    if len(run) < CODE_LENGTH - 1:
                        continue
                runs.append(run)
    return runs


# The decisions that name nothing of the line: one each, shared by every line they fit.
_PENDING = Decision(IGNORED, reason="not booked by the bank (pending)")
_REVERSAL = Decision(EXCEPTION, reason="a reversal by the bank; finance decides")
_OUTGOING = Decision(IGNORED, reason="outgoing transfer")
_NO_CODE = Decision(UNMATCHED, reason="no remittance code found")


def classify(line: LineFacts, codes: CodeIndex, payers: PayerIndex) -> Decision:
    """Decide what one statement line is: matched, suggested, unmatched, ignored or exception."""
    if not line.booked:
        return _PENDING
    if line.reversal:
        return _REVERSAL
    if line.direction != IN:
        return _OUTGOING
    runs = code_runs(line.memo, line.reference)
    found = codes.exact(runs) if runs else set()
    if line.currency != CNY:
        reason = f"currency {line.currency} is not CNY; never credited automatically"
        if len(found) == 1:
            code = found.pop()
            reason += f" (remittance code {code} of account {codes.accounts[code]})"
        return Decision(EXCEPTION, reason=reason)
    if len(found) == 1:
        return codes.match(found.pop())
    if found:
        return Decision(UNMATCHED, reason="several remittance codes: " + ", ".join(sorted(found)))
    near = codes.near(runs) if runs else set()
    if len(near) == 1:
        code = near.pop()
        return Decision(
            SUGGESTED,
            suggested_account_id=codes.accounts[code],
            reason=f"one character away from remittance code {code}",
        )
    payer = payers.account_for(line.counterparty_account)
    if payer is not None:
        return Decision(
            SUGGESTED,
            suggested_account_id=payer,
            reason="payer account seen on an earlier match to this account",
        )
    if near:
        return Decision(
            UNMATCHED, reason="one character away from several codes: " + ", ".join(sorted(near))
        )
    return _NO_CODE


def classify_each(
    lines: Iterable[LineFacts], codes: CodeIndex, payers: PayerIndex
) -> Iterator[Decision]:
    """Classify lines in order, lazily; a match teaches ``payers`` for the lines after it."""
    for line in lines:
        decision = classify(line, codes, payers)
        if decision.status == MATCHED and line.counterparty_account:
            payers.learn(line.counterparty_account, decision.account_id)
        yield decision


def classify_all(
    lines: Iterable[LineFacts], codes: CodeIndex, payers: PayerIndex
) -> list[Decision]:
    """Classify lines in order; a match teaches ``payers`` for the lines after it."""
    return list(classify_each(lines, codes, payers))
