"""Parsing real files (hand-built PDF, python-docx .docx, HTML, text) and chunking on paragraph/sentence bounds."""

from __future__ import annotations

import io
import itertools
import zlib

import pytest

from chalicelib.rag.chunking import chunk_sections, split_text
from chalicelib.rag.errors import UnusableDocument
from chalicelib.rag.parsing import Section, content_type_of, html_to_text, parse
from tests.support.rag_documents import make_docx, make_pdf


def test_pdf_pages_become_sections_with_page_numbers() -> None:
    pdf = make_pdf([["The first page talks about owls.", "Owls hunt at night (mostly)."], ["Page two: badgers."]])
    sections = parse(pdf, "animals.pdf")
    assert [s.page for s in sections] == [1, 2]
    assert "Owls hunt at night (mostly)." in sections[0].text
    assert sections[1].text == "Page two: badgers."


def test_docx_paragraphs_and_tables() -> None:
    docx = make_docx(["Alpha paragraph.", "Beta paragraph."], table=[["Name", "Value"], ["speed", "42"]])
    [section] = parse(docx, "report.docx")
    assert section.page is None
    assert section.text.split("\n\n") == [
        "Test document",
        "Alpha paragraph.",
        "Beta paragraph.",
        "Name | Value",
        "speed | 42",
    ]


def test_docx_keeps_body_order_of_paragraphs_and_tables() -> None:
    from docx import Document

    document = Document()
    document.add_paragraph("Before the table.")
    grid = document.add_table(rows=1, cols=2)
    grid.cell(0, 0).text, grid.cell(0, 1).text = "left", "right"
    document.add_paragraph("After the table.")
    out = io.BytesIO()
    document.save(out)
    [section] = parse(out.getvalue(), "ordered.docx")
    assert section.text.split("\n\n") == ["Before the table.", "left | right", "After the table."]


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("pypdf.PdfReader", ZeroDivisionError("float division by zero")),
        ("pypdf.PdfReader", zlib.error("Error -3 while decompressing data")),
        ("pypdf.PdfReader", AssertionError()),
        ("docx.Document", zlib.error("Error -3 while decompressing data")),
        ("docx.Document", RuntimeError("lxml: Document is empty")),
    ],
)
def test_any_parser_failure_is_an_unusable_document(
    monkeypatch: pytest.MonkeyPatch, target: str, error: Exception
) -> None:
    module, name = target.split(".")

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(f"{module}.{name}", broken)
    filename, kind = ("corrupt.pdf", "PDF") if module == "pypdf" else ("corrupt.docx", ".docx")
    with pytest.raises(UnusableDocument, match=f"not a readable {kind}.*{type(error).__name__}"):
        parse(b"%PDF-1.4 or PK bytes", filename)


def test_docx_text_extraction_failure_is_an_unusable_document(monkeypatch: pytest.MonkeyPatch) -> None:
    from docx.document import Document as DocxDocument

    def broken(self: object) -> object:
        raise AssertionError("unexpected element")

    monkeypatch.setattr(DocxDocument, "iter_inner_content", broken)
    with pytest.raises(UnusableDocument, match=r"not a readable \.docx file: AssertionError: unexpected element"):
        parse(make_docx(["text"]), "odd.docx")


def test_html_keeps_visible_text_as_paragraphs() -> None:
    html = (
        "<html><head><title>Guide</title><style>p{color:red}</style><script>var secret = 1;</script></head>"
        "<body><h1>Install</h1><p>Run <code>make</code> &amp; wait.</p><ul><li>one</li><li>two</li></ul></body></html>"
    )
    text = html_to_text(html)
    assert text.split("\n\n") == ["Guide", "Install", "Run make & wait.", "one", "two"]
    assert "secret" not in text
    assert "color" not in text


def test_text_and_markdown_decode_utf8_with_bom_and_normalise_line_ends() -> None:
    [section] = parse("\ufeff# Titel\r\n\r\n\r\n\r\nGrüße aus Köln.\r\n".encode(), "notes.md")
    assert section.text == "# Titel\n\nGrüße aus Köln."


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"", "empty.txt", "empty"),
        (b"   \n\n\t ", "blank.md", "no text"),
        (b"%PDF-1.4\n1 0 obj garbage", "broken.pdf", "not a readable PDF"),
        (b"PK\x03\x04 not really a zip", "broken.docx", "not a readable .docx"),
        (b"\x80\x81\x82 latin-1 bytes", "latin.txt", "not valid UTF-8"),
        (b"hello\x00world", "binary.txt", "binary"),
        (b"GIF89a....", "image.gif", "unsupported file type"),
    ],
)
def test_unusable_files_say_why(data: bytes, filename: str, reason: str) -> None:
    with pytest.raises(UnusableDocument, match=reason):
        parse(data, filename)


def test_content_type_prefers_extension_then_declared_type() -> None:
    assert content_type_of("a/b/Report.PDF") == "application/pdf"
    assert content_type_of("readme", "text/plain; charset=utf-8") == "text/plain"
    assert content_type_of("blob") == "application/octet-stream"


# -- chunking ----------------------------------------------------------------------------------------------------
PROSE = (
    "Solar panels convert light into electricity. They work best when facing the sun. "
    "Cleaning them twice a year keeps output high.\n\n"
    "Wind turbines need steady wind. Offshore sites have the strongest winds. Maintenance is harder at sea.\n\n"
    "Batteries store surplus energy. Lithium iron phosphate cells last for thousands of cycles."
)


def test_chunks_respect_size_and_cut_on_sentence_boundaries() -> None:
    chunks = split_text(PROSE, size=120, overlap=0)
    assert all(len(c) <= 120 for c in chunks)
    sentences = [s.strip() for s in PROSE.replace("\n\n", " ").split(". ")]
    for chunk in chunks:  # no sentence is cut in the middle: every chunk starts a sentence and ends one
        assert chunk[0].isupper()
        assert chunk.endswith((".", "!", "?"))
    joined = " ".join(chunks).replace("\n\n", " ")
    for sentence in sentences:
        assert sentence.rstrip(".") in joined


def test_paragraphs_are_not_merged_across_when_they_fill_a_chunk() -> None:
    chunks = split_text(PROSE, size=200, overlap=0)
    assert chunks[0].startswith("Solar panels")
    assert "Wind" not in chunks[0]
    assert any(c.startswith("Wind turbines") for c in chunks)


def test_overlap_repeats_the_end_of_the_previous_chunk_inside_a_paragraph() -> None:
    paragraph = PROSE.replace("\n\n", " ")
    chunks = split_text(paragraph, size=120, overlap=60)
    assert len(chunks) > 3
    for previous, current in itertools.pairwise(chunks):
        assert len(current) <= 120
        first_sentence = current.split(". ")[0]
        assert previous.endswith(first_sentence if first_sentence.endswith(".") else first_sentence + "."), (
            previous,
            current,
        )


def test_a_paragraph_that_fits_a_chunk_is_never_split() -> None:
    chunks = split_text(PROSE, size=120, overlap=60)
    for paragraph in PROSE.split("\n\n"):
        if len(paragraph) <= 120:
            assert paragraph in chunks


def test_long_sentences_and_words_are_cut_to_fit() -> None:
    text = "word " * 200 + "x" * 500
    chunks = split_text(text, size=100, overlap=20)
    assert all(len(c) <= 100 for c in chunks)
    assert "".join(c.replace(" ", "") for c in chunks).count("x") >= 500
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)


def test_chunk_sections_numbers_chunks_and_keeps_pages() -> None:
    chunks = chunk_sections([Section("Page one text. " * 10, 1), Section("Page two.", 2)], size=60, overlap=10)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].page == 2
    assert chunks[-1].text == "Page two."
    assert {c.page for c in chunks[:-1]} == {1}


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_chunking_parameters_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"size|overlap"):
        split_text("text", size, overlap)
