"""A small element tree with line numbers and byte spans, read through defusedxml.

ElementTree keeps neither the line an element starts on nor its source text, and both
are needed for refusals and ``StatementLine.raw``; defusedxml's SAX reader gives both
while refusing DTDs, entity declarations and external references (billion laughs, XXE).
"""
from __future__ import annotations

import codecs
import re
from xml.sax import SAXException
from xml.sax.handler import ContentHandler, feature_namespaces

from defusedxml import DefusedXmlException
from defusedxml.expatreader import create_parser

from .text import reject

_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
MAX_DEPTH = 64
# A real CAMT.053 spends 50 bytes or more per element: a 32 MiB file has well under a
# million. The cap bounds memory for a file of millions of tiny elements.
MAX_ELEMENTS = 1_000_000


class Node:
    """An XML element: local name, attributes, text, children, line and byte span."""

    __slots__ = ("name", "ns", "attrs", "children", "parts", "line", "start", "end")

    def __init__(self, name: str, ns: str, attrs: dict[str, str], line: int, start: int):
        self.name = name
        self.ns = ns
        self.attrs = attrs
        self.children: list[Node] = []
        self.parts: list[str] = []
        self.line = line
        self.start = start
        self.end = start

    @property
    def text(self) -> str:
        """Return the element's own text, stripped."""
        return "".join(self.parts).strip()

    def child(self, *path: str) -> Node | None:
        """Return the first descendant along ``path`` of local names, or None."""
        node: Node | None = self
        for name in path:
            node = next((c for c in node.children if c.name == name), None)
            if node is None:
                return None
        return node

    def all(self, *path: str) -> list[Node]:
        """Return every descendant along ``path`` of local names."""
        nodes = [self]
        for name in path:
            nodes = [c for n in nodes for c in n.children if c.name == name]
        return nodes

    def text_at(self, *path: str) -> str:
        """Return the text at ``path``, or ``""``."""
        node = self.child(*path)
        return node.text if node is not None else ""


class _Builder(ContentHandler):
    def __init__(self, reader, data: bytes):
        super().__init__()
        self.reader = reader
        self.data = data
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.count = 0

    def _expat(self):
        # xml.sax.expatreader keeps the pyexpat parser here; its positions are exact.
        return self.reader._parser

    def startElementNS(self, name, qname, attrs):
        ns, local = name
        expat = self._expat()
        node = Node(
            local,
            ns or "",
            {key[1]: value for key, value in attrs.items()},
            expat.CurrentLineNumber,
            expat.CurrentByteIndex,
        )
        if self.stack:
            self.stack[-1].children.append(node)
        elif self.root is None:
            self.root = node
        self.stack.append(node)
        self.count += 1
        if len(self.stack) > MAX_DEPTH:
            raise SAXException(f"elements nested deeper than {MAX_DEPTH}")
        if self.count > MAX_ELEMENTS:
            raise SAXException(f"more than {MAX_ELEMENTS} elements")

    def endElementNS(self, name, qname):
        node = self.stack.pop()
        # At an end tag the index points at its "</" (at a self-closed element, at its
        # "<"): the element ends at the next ">".
        node.end = _end_of_tag(self.data, self._expat().CurrentByteIndex)

    def characters(self, content):
        if self.stack:
            self.stack[-1].parts.append(content)


def _end_of_tag(data: bytes, index: int) -> int:
    close = data.find(b">", index)
    return len(data) if close == -1 else close + 1


def parse(data: bytes) -> tuple[Node, str]:
    """Parse XML bytes safely; return the root and the document's declared encoding."""
    reader = create_parser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    builder = _Builder(reader, data)
    reader.setFeature(feature_namespaces, True)
    reader.setContentHandler(builder)
    try:
        reader.feed(data)
        reader.close()
    except DefusedXmlException as exc:
        raise reject(
            f"XML with a DTD, entity or external reference is refused ({type(exc).__name__})",
            _line(reader),
        ) from None
    except SAXException as exc:
        line = exc.getLineNumber() if hasattr(exc, "getLineNumber") else _line(reader)
        raise reject(f"malformed XML ({exc.getMessage()})", line) from None
    except (ValueError, LookupError):
        # pyexpat reads UTF-8, UTF-16 and single-byte encodings only; it refuses a declared
        # multi-byte one (GBK, GB18030, Shift_JIS) with a ValueError, and a name Python
        # knows no codec of with a LookupError.
        match = _DECLARED_ENCODING.match(data)
        declared = match.group(1).decode("ascii") if match else "?"
        raise reject("XML encoding not supported (CAMT.053 is UTF-8)", 1, declared) from None
    if builder.root is None:
        raise reject("XML without a root element", 1)
    match = _DECLARED_ENCODING.match(data)
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"  # only used to show raw text; expat has read the document
    return builder.root, encoding


def _line(reader) -> int | None:
    parser = getattr(reader, "_parser", None)
    for attribute in ("CurrentLineNumber", "ErrorLineNumber"):
        line = getattr(parser, attribute, None)
        if isinstance(line, int) and line > 0:
            return line
    return None
