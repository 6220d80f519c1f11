"""Activation codes: readable, normalised as typed, stored as a keyed hash."""
from app.domain.activation_codes import ALPHABET, derive_code, generate_code, hash_code, normalize_code

KEY = b"k" * 32


def test_codes_use_a_readable_alphabet_without_look_alikes():
    assert not set("01OIL") & set(ALPHABET)
    code = generate_code()
    assert set(code.replace("-", "")) <= set(ALPHABET) and len(code) == 19


def test_codes_are_random():
    assert len({generate_code() for _ in range(200)}) == 200


def test_case_spaces_hyphens_and_full_width_do_not_change_the_hash():
    code = generate_code()
    typed = " " + code.lower().replace("-", " ") + "\u3000"
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in code.replace("-", ""))
    assert hash_code(KEY, typed) == hash_code(KEY, code) == hash_code(KEY, full_width)


def test_the_hash_depends_on_the_secret_key():
    assert hash_code(KEY, "ABCD") != hash_code(b"other", "ABCD")
    assert len(hash_code(KEY, "ABCD")) == 64 and "ABCD" not in hash_code(KEY, "ABCD")


def test_normalisation_folds_case_and_drops_separators():
    assert normalize_code(" ab-cd_ef ") == "ABCDEF"


def test_a_derived_code_repeats_for_its_seed_only():
    assert derive_code(KEY, "s1") == derive_code(KEY, "s1") != derive_code(KEY, "s2")
    assert set(derive_code(KEY, "s1").replace("-", "")) <= set(ALPHABET)
