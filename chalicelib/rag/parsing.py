"""Text out of documents: txt, md, html (stdlib parser), pdf (pypdf), docx (python-docx).

`parse(data, filename, content_type)` returns the document's sections (one per PDF page, else one) or raises
`UnusableDocument` with a reason a user can act on (unsupported type, corrupt file, encrypted, no text).
pypdf and python-docx are imported only when a file of their kind arrives (they ship in the ingestion layer).
"""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from chalicelib.rag.errors import BackendUnavailable, UnusableDocument
from chalicelib.rag.models import SUPPORTED_EXTENSIONS

_TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown", "text/html", "application/xhtml+xml"}


@dataclass(frozen=True)
class Section:
    """A stretch of document text; `page` is 1-based for paged formats (PDF), else None."""

    text: str
    page: int | None = None


def content_type_of(filename: str, declared: str | None = None) -> str:
    """The type a document is parsed as: by its extension, else by the declared Content-Type."""
    extension = posixpath.splitext(filename)[1].lower()
    if extension in SUPPORTED_EXTENSIONS:
        return SUPPORTED_EXTENSIONS[extension]
    return (declared or "application/octet-stream").split(";")[0].strip().lower()


def parse(data: bytes, filename: str, content_type: str | None = None) -> list[Section]:
    """The text of a document, as sections with text in them (never empty: that is an `UnusableDocument`)."""
    kind = content_type_of(filename, content_type)
    if not data:
        raise UnusableDocument("the file is empty")
    if kind == "application/pdf":
        sections = _pdf(data)
    elif kind == SUPPORTED_EXTENSIONS[".docx"]:
        sections = [Section(_docx(data))]
    elif kind in ("text/html", "application/xhtml+xml"):
        sections = [Section(html_to_text(_decode(data)))]
    elif kind in _TEXT_TYPES or kind.startswith("text/"):
        sections = [Section(_decode(data))]
    else:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise UnusableDocument(f"unsupported file type {kind!r} ({filename}); supported: {supported}")
    sections = [Section(normalise(s.text), s.page) for s in sections]
    sections = [s for s in sections if s.text]
    if not sections:
        raise UnusableDocument("no text found in the document (a scanned PDF needs OCR first)")
    return sections


def normalise(text: str) -> str:
    """Unify line ends, drop control characters, trim trailing spaces and runs of blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "".join(c for c in text if c in "\n\t" or c.isprintable())
    text = re.sub(r"[ \t\u00a0]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise UnusableDocument("the file is binary, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for encoding in ("utf-16",):
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    raise UnusableDocument("the text is not valid UTF-8")


def _pdf(data: bytes) -> list[Section]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnusableDocument("the PDF is encrypted with a password")
        return [Section(page.extract_text() or "", number) for number, page in enumerate(reader.pages, start=1)]
    except _PROPAGATE:
        raise
    except Exception as error:  # any parser failure on these bytes is permanent: retrying cannot help
        raise UnusableDocument(f"not a readable PDF: {_why(error)}") from None


def _docx(data: bytes) -> str:
    from docx import Document
    from docx.table import Table

    try:
        document = Document(io.BytesIO(data))
        blocks: list[str] = []
        for block in document.iter_inner_content():  # body order: paragraphs and tables interleaved
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    blocks.append(" | ".join(c for c in cells if c))
            else:
                blocks.append(block.text)
    except _PROPAGATE:
        raise
    except Exception as error:  # any parser failure on these bytes is permanent: retrying cannot help
        raise UnusableDocument(f"not a readable .docx file: {_why(error)}") from None
    return "\n\n".join(b for b in blocks if b.strip())


# Failures that say nothing about the document (our own verdicts, a missing parser layer, the process running
# out of memory): these propagate unchanged, everything else a parser raises makes the document unusable.
_PROPAGATE = (UnusableDocument, BackendUnavailable, ImportError, MemoryError)


def _why(error: BaseException) -> str:
    name = type(error).__name__
    message = str(error).strip()
    return (f"{name}: {message}" if message and name not in message else message or name)[:300]


# -- HTML --------------------------------------------------------------------------------------------------------
_SKIP = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "nav",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "br",
    "hr",
    "dt",
    "dd",
    "figcaption",
    "title",
}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            self._skip_depth += 1
        if tag in _BLOCK:
            self.parts.append("\n\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP and self._skip_depth:
            self._skip_depth -= 1
        if tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth and not self._in_title:
            return
        self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """Visible text of an HTML document, block elements as paragraphs (scripts, styles and the head dropped,
    except the title)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)
