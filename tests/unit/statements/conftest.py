"""Fixtures of the statement parser tests: the sample and fixture files."""
from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "statements"


@pytest.fixture
def data_file():
    """Return a function reading a file of tests/data/statements as bytes."""

    def read(name: str) -> bytes:
        return (DATA / name).read_bytes()

    return read


@pytest.fixture
def fixture_text():
    """Return a function reading a UTF-8 fixture as text (to re-encode as GBK etc.)."""

    def read(name: str) -> str:
        return (DATA / name).read_text(encoding="utf-8")

    return read
