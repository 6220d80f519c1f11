"""The reconciliation rules, one test per rule."""
import re

from hypothesis import given
from hypothesis import strategies as st

from app.domain.matching import (
    EXCEPTION,
    IGNORED,
    MATCHED,
    SUGGESTED,
    UNMATCHED,
    CodeIndex,
    LineFacts,
    PayerIndex,
    classify,
    classify_all,
    code_runs,
)
from app.domain.remittance import ALPHABET, SEPARATORS, check_character, normalize_text


def code(body: str) -> str:
    return body + check_character(body)


ALICE = code("ABCDEFGH")
BOB = code("XYZW2345")
CODES = CodeIndex({ALICE: "acc_alice", BOB: "acc_bob"})


def line(memo="", *, reference="", currency="CNY", direction="in", booked=True, reversal=False,
         payer=""):
    return LineFacts(
        booked=booked,
        reversal=reversal,
        direction=direction,
        currency=currency,
        memo=memo,
        reference=reference,
        counterparty_account=payer,
    )


def decide(facts, codes=CODES, payers=None):
    return classify(facts, codes, payers or PayerIndex())


def test_issued_code_in_memo_matches_its_account():
    decision = decide(line(f"货款 {ALICE} 谢谢"))
    assert (decision.status, decision.account_id) == (MATCHED, "acc_alice")
    assert decision.reason == f"remittance code {ALICE}"


def test_code_matches_in_lower_case_with_spaces_and_hyphens():
    spaced = f"{ALICE[:4].lower()} - {ALICE[4:8].lower()} {ALICE[8]}"
    assert decide(line(spaced)).account_id == "acc_alice"


def test_code_matches_in_full_width_characters():
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in ALICE)
    assert decide(line("汇款" + full_width)).account_id == "acc_alice"


def test_code_matches_in_the_structured_reference():
    assert decide(line("transfer", reference=ALICE)).account_id == "acc_alice"


def test_code_glued_to_other_letters_still_matches():
    assert decide(line("PAY" + ALICE + "XX")).account_id == "acc_alice"


def test_well_formed_code_that_was_never_issued_matches_nothing():
    stranger = code("MNPQRSTU")
    assert decide(line(stranger)).status == UNMATCHED


def test_one_substituted_character_suggests_the_issued_code():
    typo = ALICE[:3] + ("Z" if ALICE[3] != "Z" else "Y") + ALICE[4:]
    decision = decide(line(typo))
    assert (decision.status, decision.suggested_account_id, decision.account_id) == (
        SUGGESTED,
        "acc_alice",
        None,
    )


def test_one_dropped_character_suggests_the_issued_code():
    assert decide(line("款 " + ALICE[:5] + ALICE[6:] + " 款")).suggested_account_id == "acc_alice"


def test_one_added_character_suggests_the_issued_code():
    assert decide(line(ALICE[:5] + "K" + ALICE[5:])).suggested_account_id == "acc_alice"


def test_near_miss_of_two_issued_codes_suggests_nothing():
    codes = CodeIndex({"ABCDEFGHJ": "acc_one", "ABCDEFGKL": "acc_two"})
    # One substitution from each: position 8 from the first, position 9 from the second.
    decision = decide(line("ABCDEFGKJ"), codes)
    assert decision.status == UNMATCHED and decision.suggested_account_id is None


def test_two_characters_away_is_not_a_near_miss():
    swapped = ALICE[:3] + ALICE[4] + ALICE[3] + ALICE[5:]  # a transposition is two edits
    assert decide(line(swapped)).status == UNMATCHED


def test_payer_account_seen_on_a_confirmed_match_is_suggested():
    payers = PayerIndex([("6222 0212 3456", "acc_bob")])
    decision = decide(line("货款", payer="622202123456"), payers=payers)
    assert (decision.status, decision.suggested_account_id) == (SUGGESTED, "acc_bob")


def test_payer_seen_for_two_accounts_suggests_nothing():
    payers = PayerIndex([("6222", "acc_bob"), ("6222", "acc_alice")])
    assert decide(line("货款", payer="6222"), payers=payers).status == UNMATCHED


def test_a_match_earlier_in_the_run_teaches_the_payer():
    decisions = classify_all(
        [line(ALICE, payer="6222"), line("second payment, no code", payer="6222")],
        CODES,
        PayerIndex(),
    )
    assert [d.status for d in decisions] == [MATCHED, SUGGESTED]
    assert decisions[1].suggested_account_id == "acc_alice"


def test_other_currency_is_an_exception_even_with_a_valid_code():
    decision = decide(line(ALICE, currency="EUR"))
    assert (decision.status, decision.account_id) == (EXCEPTION, None)
    assert "EUR" in decision.reason and ALICE in decision.reason


def test_outgoing_line_is_ignored():
    assert decide(line(ALICE, direction="out")).status == IGNORED


def test_line_not_booked_is_ignored_with_a_reason():
    decision = decide(line(ALICE, booked=False))
    assert decision.status == IGNORED and "pending" in decision.reason


def test_reversal_is_an_exception_for_finance():
    assert decide(line(ALICE, reversal=True)).status == EXCEPTION


def test_line_without_any_code_is_unmatched():
    assert decide(line("房租 2024年1月")).status == UNMATCHED


def test_two_different_issued_codes_match_neither():
    decision = decide(line(f"{ALICE} {BOB}"))
    assert decision.status == UNMATCHED and ALICE in decision.reason and BOB in decision.reason


def test_deletion_index_holds_every_single_deletion_of_every_code():
    index = CodeIndex({ALICE: "acc_alice"})
    assert set(index.deletions) == {ALICE[:i] + ALICE[i + 1 :] for i in range(len(ALICE))}


def test_masked_payer_account_identifies_nobody():
    payers = PayerIndex([("1234****9876", "acc_bob")])
    assert decide(line("货款", payer="1234****9876"), payers=payers).status == UNMATCHED



_RUNS_OF = re.compile(f"[{ALPHABET}]{{8,}}").findall
_PIECES = st.sampled_from(
    [*ALPHABET, *ALPHABET.lower(), *SEPARATORS, "0", "I", "货", "Ａ", "ß", "ｋ７", "\ufb01"]
)


@given(st.lists(_PIECES, max_size=40).map("".join) | st.text(), st.text(max_size=12))
def test_code_runs_are_the_runs_of_the_normalised_text(memo, reference):
    # code_runs drops separators only inside the runs it finds: the runs must be exactly those
    # of the whole normalised text.
    expected = _RUNS_OF(normalize_text(memo)) + _RUNS_OF(normalize_text(reference))
    assert code_runs(memo, reference) == expected
