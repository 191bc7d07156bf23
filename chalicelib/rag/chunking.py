"""Split document text into chunks of at most `size` characters on paragraph and sentence boundaries.

Text is cut into units: paragraphs (blank-line separated), then lines and sentences inside them; a sentence longer
than `size` is cut between words into pieces of at most `size - overlap` (so the overlap still fits), and a word
longer than that is cut hard. Units are packed greedily into chunks, except that a
paragraph which would fit in a chunk of its own is not split: it starts a new chunk instead.
Each new chunk starts with up to `overlap` characters carried over from the end of the previous one (whole
sentences when they fit, otherwise the previous chunk's tail from a word boundary), so a fact that straddles a
boundary is still found whole in one chunk. Chunks never cross a section (a PDF page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chalicelib.rag.parsing import Section

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?;:\u3002\uff01\uff1f])\s+")
_PARAGRAPH_SEP = "\n\n"
_SENTENCE_SEP = " "
_LINE_SEP = "\n"


@dataclass(frozen=True)
class Chunk:
    """A chunk of a document: its position in the document, its text and the page it is on (if paged)."""

    index: int
    text: str
    page: int | None = None


@dataclass(frozen=True)
class _Unit:
    text: str
    sep: str  # what joins it to the unit before it
    paragraph: int = 0  # for a paragraph's first unit: the whole paragraph's length


def chunk_sections(sections: Iterable[Section], size: int, overlap: int) -> list[Chunk]:
    """Every section's chunks, numbered in document order."""
    chunks: list[Chunk] = []
    for section in sections:
        for text in split_text(section.text, size, overlap):
            chunks.append(Chunk(len(chunks), text, section.page))
    return chunks


def split_text(text: str, size: int, overlap: int = 0) -> list[str]:
    """`text` as chunks of at most `size` characters with about `overlap` characters of overlap."""
    if size < 1:
        raise ValueError("size must be positive")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    chunks: list[str] = []
    current: list[_Unit] = []
    for unit in _units(text, size, max(1, size - overlap)):
        # A paragraph that fits a chunk is kept whole: it needs room for all of itself, not just this unit.
        needed = unit.paragraph if unit.sep == _PARAGRAPH_SEP and unit.paragraph <= size else len(unit.text)
        if current and _length(current) + len(unit.sep) + needed > size:
            chunks.append(_join(current))
            current = _carry(current, overlap)
            while current and _length(current) + len(unit.sep) + needed > size:
                current.pop(0)
        current.append(unit if current else _Unit(unit.text, "", unit.paragraph))
    if current:
        chunks.append(_join(current))
    return chunks


def _units(text: str, size: int, piece: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in _PARAGRAPH.split(text):
        sep = _PARAGRAPH_SEP
        first = len(units)
        for line in paragraph.split("\n"):
            for sentence in _SENTENCE.split(line):
                sentence = " ".join(sentence.split())
                if not sentence:
                    continue
                pieces = [(sentence, None)] if len(sentence) <= size else _fit(sentence, piece)
                for text_piece, joiner in pieces:
                    units.append(_Unit(text_piece, sep if joiner is None else joiner))
                    sep = _SENTENCE_SEP
            if sep != _PARAGRAPH_SEP:
                sep = _LINE_SEP
        if len(units) > first:
            units[first] = _Unit(units[first].text, units[first].sep, _length(units[first:]))
    return units


def _fit(sentence: str, size: int) -> list[tuple[str, str | None]]:
    """A sentence as pieces of at most `size` characters, cut between words when possible; each with the
    separator that joins it to the piece before (None: the caller's; "" inside a word cut hard)."""
    if len(sentence) <= size:
        return [(sentence, None)]
    pieces: list[tuple[str, str | None]] = []
    current, joiner = "", None

    for word in sentence.split(" "):
        if current and len(current) + 1 + len(word) <= size:
            current = f"{current} {word}"
            continue
        if current:
            pieces.append((current, joiner))
        joiner = None if not pieces else _SENTENCE_SEP
        while len(word) > size:
            pieces.append((word[:size], joiner))
            word, joiner = word[size:], ""
        current = word
    if current:
        pieces.append((current, joiner))
    return pieces


def _carry(units: Sequence[_Unit], overlap: int) -> list[_Unit]:
    """The end of a finished chunk that the next one starts with."""
    if overlap <= 0:
        return []
    carried: list[_Unit] = []
    for unit in reversed(units):
        if _length([unit, *carried]) > overlap:
            break
        carried.insert(0, unit)
    if carried:
        return [_Unit(carried[0].text, ""), *carried[1:]]
    tail = units[-1].text[-overlap:]  # the last unit alone is longer than `overlap`: start at a word boundary
    space = tail.find(" ")
    if space != -1:
        tail = tail[space + 1 :]
    return [_Unit(tail, "")] if tail.strip() else []


def _length(units: Sequence[_Unit]) -> int:
    return sum(len(u.text) for u in units) + sum(len(u.sep) for u in units[1:])


def _join(units: Sequence[_Unit]) -> str:
    return "".join((u.sep if i else "") + u.text for i, u in enumerate(units))
