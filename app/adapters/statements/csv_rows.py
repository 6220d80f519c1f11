"""CSV records with the physical line each starts on, for line-exact refusals."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from .text import reject, split_lines


class CsvText:
    """A decoded CSV file: its physical lines and its records, numbered as in the file."""

    def __init__(self, text: str):
        self.lines = split_lines(text)
        # Rebuild from the split lines so CR/LF differences cannot shift csv's line count.
        self._text = "\n".join(self.lines)

    def records(self, limit: int | None = None) -> Iterator[tuple[int, int, list[str]]]:
        """Yield ``(first_line, last_line, cells)`` for each record, as numbered in the file."""
        # strict=True: a stray quote or an unterminated quoted cell (a truncated file) is
        # refused instead of being silently glued to the next cells.
        reader = csv.reader(io.StringIO(self._text, newline=""), strict=True)
        start = 1
        count = 0
        try:
            for cells in reader:
                end = reader.line_num
                yield start, end, cells
                start = end + 1
                count += 1
                if limit is not None and count >= limit:
                    return
        except csv.Error as exc:
            raise reject(f"malformed CSV ({exc})", start, self.line(start)) from None

    def raw(self, first: int, last: int) -> str:
        """Return the physical lines ``first..last`` (1-based, inclusive)."""
        if first == last:
            return self.lines[first - 1]
        return "\n".join(self.lines[first - 1 : last])

    def line(self, number: int) -> str:
        """Return one physical line, or ``""`` past the end."""
        if 1 <= number <= len(self.lines):
            return self.lines[number - 1]
        return ""
