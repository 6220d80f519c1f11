"""Column layouts of Chinese bank CSV exports: one table row per layout, no code.

Header names are compared after ``normalise_header``: padding and inner spaces removed,
full-width brackets made ASCII, a bilingual ``[ English ]`` suffix dropped; a name also
matches a header that adds a parenthesised note (``贷方发生额`` matches
``贷方发生额（收入）``). For every field the candidates are tried in order; the first
present in the header is used, except ``memo``, where every present column is joined.

The ICBC and CMB personal layouts are those of the real exports in
tests/data/statements; the other layouts follow the banks' published column names and
should be checked against a real export of each bank as one arrives.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BankPreset:
    """How to read one bank export layout; see the module docstring for matching."""

    format: str  # the format name callers pass: "icbc", "ccb", ...
    bank: str  # for messages
    signature: tuple[tuple[str, ...], ...]  # every group needs one of its names in the header
    date: tuple[str, ...]
    time: tuple[str, ...] = ()
    # (income, expense, currency) column triples, tried per record in order: the first
    # triple with an amount in the record is used (ICBC fills 记账金额 or 交易金额).
    split: tuple[tuple[str, str, str], ...] = ()
    signed: tuple[str, ...] = ()  # one signed amount column: + is money in
    unsigned: tuple[str, ...] = ()  # an unsigned amount column, read with ``flag``
    flag: tuple[str, ...] = ()  # debit/credit flag column: 贷/Cr is in, 借/Dr is out
    currency: tuple[str, ...] = ()  # absent from the export: CNY
    memo: tuple[str, ...] = ()
    name: tuple[str, ...] = ()
    account: tuple[str, ...] = ()
    party: tuple[str, ...] = ()  # name and account in one cell (CMB 对手信息)
    ids: tuple[str, ...] = ()  # the bank's per-transaction id; the first non-empty is used


_MEMO = ("摘要", "交易摘要", "附言", "交易附言", "客户摘要", "备注", "用途", "交易用途")

PRESETS: tuple[BankPreset, ...] = (
    BankPreset(
        format="icbc",
        bank="ICBC",
        signature=(("交易金额(收入)", "记账金额(收入)"), ("交易金额(支出)", "记账金额(支出)")),
        date=("交易日期", "记账日期"),
        time=("交易时间",),
        split=(
            ("记账金额(收入)", "记账金额(支出)", "记账币种"),
            ("交易金额(收入)", "交易金额(支出)", "交易币种"),
        ),
        memo=("摘要", "交易详情", "附言", "用途", "备注"),
        name=("对方户名",),
        account=("对方账户", "对方账号"),
    ),
    BankPreset(
        format="ccb",
        bank="CCB",
        signature=(("借方发生额",), ("贷方发生额",)),
        date=("交易时间", "交易日期", "记账日期"),
        split=(("贷方发生额", "借方发生额", "币种"),),
        currency=("币种", "币别"),
        memo=_MEMO,
        name=("对方户名",),
        account=("对方账号", "对方账户"),
        ids=("账户明细编号-交易流水号",),
    ),
    BankPreset(
        format="bocom",
        bank="BOCOM",
        signature=(("借贷", "借贷标志", "借贷方向"), ("交易金额", "发生额")),
        date=("交易日期", "记账日期"),
        time=("交易时间",),
        unsigned=("交易金额", "发生额"),
        flag=("借贷", "借贷标志", "借贷方向"),
        currency=("币种", "币别"),
        memo=_MEMO,
        name=("对方户名", "对方账户名"),
        account=("对方账号", "对方账户"),
        ids=("流水号", "交易流水号"),
    ),
    BankPreset(
        format="abc",
        bank="ABC",
        signature=(("交易金额",), ("本次余额",)),
        date=("交易日期",),
        time=("交易时间",),
        signed=("交易金额",),
        currency=("币种",),
        memo=_MEMO,
        name=("对方户名",),
        account=("对方账号", "对方账户"),
        ids=("日志号",),
    ),
    BankPreset(
        format="boc",
        bank="BOC",
        signature=(("金额",), ("币别",)),
        date=("记账日期", "交易日期"),
        time=("记账时间", "交易时间"),
        signed=("金额",),
        currency=("币别",),
        memo=("附言", "摘要", "用途", "备注"),
        name=("对方账户名", "对方户名"),
        account=("对方卡号/账号", "对方账号"),
    ),
    BankPreset(
        format="cmb",
        bank="CMB",
        signature=(("交易金额",), ("联机余额", "对手信息")),
        date=("记账日期", "交易日期"),
        time=("交易时间",),
        signed=("交易金额",),
        currency=("货币", "币种"),
        memo=("交易摘要", "客户摘要", "摘要", "附言", "用途", "备注"),
        party=("对手信息",),
        ids=("流水号", "业务参考号"),
    ),
    BankPreset(
        # CMB's corporate (企业网银) export: split columns, 收/付方 counterparty.
        format="cmb",
        bank="CMB",
        signature=(("借方金额",), ("贷方金额",), ("流水号", "业务参考号")),
        date=("交易日", "交易日期"),
        time=("交易时间",),
        split=(("贷方金额", "借方金额", "币种"),),
        currency=("币种",),
        memo=("摘要", "用途", "业务摘要", "其它摘要", "扩展摘要"),
        name=("收/付方名称",),
        account=("收/付方帐号", "收/付方账号"),
        ids=("流水号", "业务参考号"),
    ),
)

BANK_FORMATS: tuple[str, ...] = tuple(dict.fromkeys(p.format for p in PRESETS))

_FULL_WIDTH = str.maketrans("（）【】：／", "()[]:/")
_SPACES = re.compile(r"[\s\u3000\ufeff\"']+")


def normalise_header(cell: str) -> str:
    """Normalise a header cell for comparison with the names in the table."""
    name = _SPACES.sub("", cell.translate(_FULL_WIDTH))
    if not name.endswith("]"):
        return name
    # The "[" opening the suffix is the first after any other "]". Found with string
    # methods, not a regex searched from every "[": a 16 KiB cell of them would cost
    # seconds, and the preamble lines before the header are searched cell by cell.
    opening = name.find("[", name.rfind("]", 0, -1) + 1, -1)
    return name if opening == -1 else name[:opening]


def find_column(headers: list[str], candidates: tuple[str, ...]) -> int | None:
    """Return the index of the first candidate present in normalised ``headers``."""
    for candidate in candidates:
        for index, header in enumerate(headers):
            if header == candidate or header.startswith(candidate + "("):
                return index
    return None


def matches(preset: BankPreset, headers: list[str]) -> bool:
    """Tell whether a normalised header row has every signature group of ``preset``."""
    return all(find_column(headers, group) is not None for group in preset.signature)
