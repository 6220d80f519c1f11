from hypothesis import given
from hypothesis import strategies as st

from app.domain.remittance import (
    ALPHABET,
    CODE_LENGTH,
    check_character,
    display,
    generate_code,
    is_valid,
    normalize_text,
)


def test_alphabet_has_no_confusable_characters():
    assert not set("01OI") & set(ALPHABET)
    assert len(set(ALPHABET)) == 32


def test_generated_codes_are_valid():
    for _ in range(500):
        code = generate_code()
        assert len(code) == CODE_LENGTH
        assert is_valid(code)


def test_every_single_character_typo_is_detected():
    code = "K7M4QP9X" + check_character("K7M4QP9X")
    for position in range(CODE_LENGTH):
        for replacement in ALPHABET:
            if replacement == code[position]:
                continue
            typo = code[:position] + replacement + code[position + 1 :]
            assert not is_valid(typo), typo


def test_most_adjacent_swaps_are_detected():
    detected = total = 0
    for _ in range(300):
        code = generate_code()
        for i in range(CODE_LENGTH - 1):
            if code[i] == code[i + 1]:
                continue
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            total += 1
            detected += not is_valid(swapped)
    assert detected / total > 0.9


def test_normalize_folds_full_width_case_spaces_and_hyphens():
    assert normalize_text("ｋ７ｍ４-qp9x z") == "K7M4QP9XZ"


def test_display_groups_the_code():
    assert display("ABCDEFGHJ") == "ABCD-EFGH-J"


def test_wrong_length_or_foreign_characters_are_invalid():
    assert not is_valid("ABC")
    assert not is_valid("ABCDEFGH0")


@given(st.text())
def test_normalize_drops_exactly_the_separators_after_folding(text):
    import unicodedata

    folded = unicodedata.normalize("NFKC", text).upper()
    separators = " \t\r\n-_\u2010\u2011\u2012\u2013\u2014\u2212"
    assert normalize_text(text) == "".join(ch for ch in folded if ch not in separators)


@given(st.text(ALPHABET, min_size=CODE_LENGTH - 1, max_size=CODE_LENGTH - 1), st.data())
def test_any_single_wrong_character_of_any_code_is_detected(body, data):
    code = body + check_character(body)
    assert is_valid(code)
    position = data.draw(st.integers(0, CODE_LENGTH - 1))
    replacement = data.draw(st.sampled_from([ch for ch in ALPHABET if ch != code[position]]))
    assert not is_valid(code[:position] + replacement + code[position + 1 :])
