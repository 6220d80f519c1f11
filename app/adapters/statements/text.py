"""Bytes to text for statement files, and the refusal helper every parser uses."""
from __future__ import annotations

import codecs

from app.domain.errors import StatementRejected

# A statement is at most a few hundred thousand lines: 100,000 canonical CSV lines are
# about 10 MB. Anything far bigger is a mistake or an attack, and ElementTree-like
# structures of it would take gigabytes.
MAX_FILE_BYTES = 32 * 1024 * 1024
# The longest real line seen (ICBC, space-padded cells) is about 500 characters.
MAX_LINE_CHARS = 16 * 1024

_EXCEL_MAGIC = (b"\xd0\xcf\x11\xe0", b"PK\x03\x04")


def shown(value: object, limit: int = 80) -> str:
    """Quote a value for an error detail, shortened so a huge cell cannot flood a log."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)


def reject(message: str, line: int | None, value: object = None) -> StatementRejected:
    """Build the refusal of a whole file, naming the line and the offending value."""
    if value is not None:
        message = f"{message}: {shown(value)}"
    return StatementRejected(message, line=line)


def line_of_offset(data: bytes | str, offset: int) -> int:
    """Return the 1-based line at a byte (or character) offset."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1


def check_bytes(data: bytes) -> None:
    """Refuse a file that is empty, too big or binary, before any parser sees it."""
    if len(data) > MAX_FILE_BYTES:
        raise reject(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", 1)
    body = data[3:] if data.startswith(codecs.BOM_UTF8) else data
    if not body.strip():
        raise reject("the file is empty", 1)
    if data.startswith(_EXCEL_MAGIC):
        raise reject(
            "this is an Excel workbook (or another ZIP/OLE file), not a text statement;"
            " export it as CSV",
            1,
        )
    if data.startswith(b"%PDF"):
        raise reject("this is a PDF document, not a statement file; export it as CSV", 1)
    nul = data.find(b"\x00")
    if nul != -1:
        raise reject("binary content (a NUL byte) in a text statement", line_of_offset(data, nul))


def decode(data: bytes) -> str:
    """Decode a text statement: UTF-8 (BOM optional) strictly first, then GB18030.

    GB18030 is a superset of GBK and GB2312, which Chinese bank exports use. Strict UTF-8
    first matters: most GBK text is not valid UTF-8, but GB18030 would accept much UTF-8.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    # A UTF-8 file with a damaged byte must not be read as GB18030: that would turn all
    # its Chinese text into other, wrong characters without an error. GBK text read as
    # UTF-8 is mostly errors; damaged UTF-8 is mostly good characters.
    lenient = data.decode("utf-8", errors="replace")
    damaged = lenient.count("\ufffd")
    non_ascii = len(lenient) - len(lenient.encode("ascii", errors="ignore"))
    if non_ascii - damaged > damaged:
        raise reject(
            "invalid UTF-8 (a damaged or truncated file?)",
            line_of_offset(data, first_bad),
            data[first_bad : first_bad + 4].hex(" "),
        )
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 4]
        raise reject(
            "undecodable bytes (neither UTF-8 nor GBK/GB18030)",
            line_of_offset(data, exc.start),
            bad.hex(" "),
        ) from None


def split_lines(text: str) -> list[str]:
    """Split text into physical lines on CR, LF or CRLF only, refusing over-long lines.

    ``str.splitlines`` is not used because it also splits on characters such as U+2028
    or form feed, which would put line numbers out of step with what a person sees.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines and max(map(len, lines)) > MAX_LINE_CHARS:
        for number, line in enumerate(lines, 1):
            if len(line) > MAX_LINE_CHARS:
                raise reject(f"line longer than {MAX_LINE_CHARS} characters", number, line)
    return lines
