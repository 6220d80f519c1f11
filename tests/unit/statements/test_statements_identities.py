"""Line identities: what makes re-importing a statement add nothing, and no money lost."""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from app.adapters.statements import parse_statement
from app.adapters.statements.values import to_fen
from app.domain.money import parse_bank_amount
from app.domain.statements import StatementLine, _fingerprint, line_identities

BASE = StatementLine(
    line_no=2,
    transaction_id=None,
    booked_at=datetime.date(2026, 11, 26),
    amount_fen=10000,
    direction="in",
    currency="CNY",
    counterparty_name="上海甲公司",
    counterparty_account="31001234567890123456",
    memo="充值 GC7K-2M4P-Q",
    reference="",
    raw="...",
)


def test_identity_of_a_line_with_a_unique_bank_id_is_that_id():
    assert line_identities([dataclasses.replace(BASE, transaction_id="B-1")]) == ["tx:B-1"]


def test_identity_without_an_id_is_a_pinned_fingerprint():
    # Pins scheme version 1: if this changes, stored keys no longer match (needs a migration).
    payload = (
        '["2026-11-26",10000,"in","CNY","31001234567890123456","上海甲公司",'
        '"充值 GC7K-2M4P-Q","",true,false]'
    )
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    assert line_identities([BASE]) == [f"fp:{digest}:0"]


def test_identity_ignores_line_number_and_raw_text():
    moved = dataclasses.replace(BASE, line_no=99, raw="other export layout")
    assert line_identities([moved]) == line_identities([BASE])


def test_identical_lines_get_distinct_occurrence_indexes():
    keys = line_identities([BASE, BASE, BASE])
    assert [key.rsplit(":", 1)[1] for key in keys] == ["0", "1", "2"]
    assert len({key.rsplit(":", 1)[0] for key in keys}) == 1


def test_repeated_transaction_id_falls_back_to_fingerprints():
    a = dataclasses.replace(BASE, transaction_id="SHARED")
    b = dataclasses.replace(BASE, transaction_id="SHARED", amount_fen=5)
    keys = line_identities([a, b])
    assert all(key.startswith("fp:") for key in keys)
    assert len(set(keys)) == 2


def test_pending_line_never_takes_the_bank_id_key():
    pending = dataclasses.replace(BASE, transaction_id="B-1", booked=False)
    booked = dataclasses.replace(BASE, transaction_id="B-1")
    (pending_key,) = line_identities([pending])
    assert pending_key.startswith("fp:")
    assert pending_key != line_identities([booked])[0]
    # and booked later, the same transfer is a new key
    assert line_identities([dataclasses.replace(BASE, booked=False)]) != line_identities([BASE])


def test_reversal_is_not_the_same_line_as_the_original():
    reversal = dataclasses.replace(BASE, reversal=True)
    assert line_identities([reversal]) != line_identities([BASE])


def test_reimporting_the_same_file_gives_the_same_keys(data_file):
    for name in ("icbc-debit-v2.csv", "cmxl-mt940.sta", "oca-test-camt053.xml", "canonical.csv"):
        first = line_identities(parse_statement(data_file(name)).lines)
        second = line_identities(parse_statement(data_file(name)).lines)
        assert first == second
        assert len(set(first)) == len(first)


def test_gbk_and_utf8_exports_of_the_same_statement_give_the_same_keys(fixture_text):
    text = fixture_text("abc-personal.csv")
    gbk = line_identities(parse_statement(text.encode("gbk")).lines)
    utf8 = line_identities(parse_statement(text.encode("utf-8-sig")).lines)
    assert gbk == utf8


def test_overlapping_canonical_statements_share_keys_for_shared_lines():
    header = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo"
    rows = [f",2026-11-{day:02d},{day}.00,CNY,甲,6222,GC7K-2M4P-Q" for day in range(1, 8)]
    rows.insert(3, rows[3])  # two identical transfers on the 4th
    older = "\n".join([header, *rows[:6]]).encode()
    newer = "\n".join([header, *rows[2:]]).encode()
    old_keys = line_identities(parse_statement(older).lines)
    new_keys = line_identities(parse_statement(newer).lines)
    assert set(old_keys) & set(new_keys) == set(old_keys[2:6])
    assert len(set(new_keys) - set(old_keys)) == 2


# Properties over generated lines. Small alphabets make equal fingerprints likely.

lines_strategy = st.builds(
    StatementLine,
    line_no=st.integers(1, 10_000),
    transaction_id=st.one_of(st.none(), st.sampled_from(["A", "B", "C", "D"])),
    booked_at=st.dates(datetime.date(2026, 1, 1), datetime.date(2026, 1, 3)),
    amount_fen=st.integers(1, 3),
    direction=st.sampled_from(["in", "out"]),
    currency=st.just("CNY"),
    counterparty_name=st.sampled_from(["", "甲"]),
    counterparty_account=st.sampled_from(["", "6222"]),
    memo=st.sampled_from(["", "GC7K-2M4P-Q", "付款\n\"x\""]),
    reference=st.just(""),
    raw=st.text(max_size=5),
    booked=st.booleans(),
    reversal=st.just(False),
)


def distinct(lines: list[StatementLine]) -> list[StatementLine]:
    """Keep the first line of each fingerprint and each bank id: lines that differ."""
    seen_fp, seen_id, kept = set(), set(), []
    for line in lines:
        if _fingerprint(line) in seen_fp or (line.transaction_id in seen_id):
            continue
        seen_fp.add(_fingerprint(line))
        if line.transaction_id:
            seen_id.add(line.transaction_id)
        kept.append(line)
    return kept


@settings(max_examples=200, deadline=None)
@given(st.lists(lines_strategy, max_size=30))
def test_identities_are_unique_within_a_file_so_duplicates_stay_distinct(lines):
    keys = line_identities(lines)
    assert len(keys) == len(lines)
    assert len(set(keys)) == len(keys)


@settings(max_examples=200, deadline=None)
@given(st.lists(lines_strategy, max_size=30), st.randoms(use_true_random=False))
def test_identities_of_distinct_lines_do_not_depend_on_their_order(lines, rng: random.Random):
    lines = distinct(lines)
    shuffled = lines[:]
    rng.shuffle(shuffled)
    by_line = dict(zip(map(id, lines), line_identities(lines)))
    assert [by_line[id(line)] for line in shuffled] == line_identities(shuffled)


def unrelated(extra: list[StatementLine], others: list[StatementLine]) -> list[StatementLine]:
    """Keep the lines of ``extra`` that share no fingerprint and no bank id with ``others``."""
    fps = {_fingerprint(line) for line in others}
    ids = {line.transaction_id for line in others if line.transaction_id}
    return [
        line for line in extra if _fingerprint(line) not in fps and line.transaction_id not in ids
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(lines_strategy, max_size=15),
    st.lists(lines_strategy, max_size=15),
    st.lists(lines_strategy, max_size=15),
)
def test_overlapping_statements_give_shared_lines_the_same_keys(before, shared, after):
    # The overlap may hold identical transfers; the days before and after it are other lines.
    before = unrelated(before, shared)
    after = unrelated(after, shared + before)
    alone = line_identities(shared)
    assert line_identities(before + shared)[len(before) :] == alone  # lines prepended
    assert line_identities(shared + after)[: len(shared)] == alone  # lines appended
    older = set(line_identities(before + shared))
    newer = set(line_identities(shared + after))
    assert older & newer == set(alone)


# The hot-path amount reader agrees with the shared money parser


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(r"[+-]?[0-9]{1,12}(\.[0-9]{1,2})?", fullmatch=True)
    | st.from_regex(r"[+-]?[0-9]{1,3}(,[0-9]{3}){0,3}(\.[0-9]{1,4})?", fullmatch=True)
)
def test_fast_amount_path_agrees_with_parse_bank_amount(text):
    try:
        expected = parse_bank_amount(text)
    except Exception:
        expected = None
    try:
        got = to_fen(text, 1)
    except Exception:
        got = None
    assert got == expected
