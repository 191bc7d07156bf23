"""Documents in context in a real browser against the local stack: files attached to a prompt go up by presigned
S3 PUT (moto), their text comes back from the control plane's parsers, the prompt carries it within the model's
budget and says what was cut, and the session records the names (issue 17)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import docx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshots, User
from tests.browser.test_chat_ui import send, sign_in, wait_for_answer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LONG_CHARS = 20_000
HEAD = "The LISA project mascot is a purple octopus named Ollie. "


def long_text(path: Path) -> Path:
    text = (HEAD + "Filler sentence about nothing in particular. " * 1000)[:LONG_CHARS]
    path.write_text(text, encoding="utf-8")
    return path


def short_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_paragraph("Ollie likes sardines.")
    document.save(str(path))
    return path


def test_attached_documents_go_into_the_prompt_within_the_budget(
    page: Page, lisa: Any, user: User, shots: Screenshots, tmp_path: Path
) -> None:
    sign_in(page, lisa, user)
    attach = page.get_by_label("Attach documents (txt, md, pdf, docx)")
    status = page.locator("#attachment-status")

    # A type the parsers cannot read is refused at once, in words.
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    attach.set_input_files(str(tmp_path / "photo.png"))
    expect(status).to_have_text("photo.png: attach a txt, md, pdf or docx file.")

    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "PUT" and "_attachments" in r.url else None)
    attach.set_input_files([str(long_text(tmp_path / "long.txt")), str(short_docx(tmp_path / "notes.docx"))])
    tray = page.get_by_role("list", name="Documents to attach")
    expect(tray.locator("li")).to_have_count(2)
    expect(status).to_contain_text("is attached to your next message.")
    shots(page, "attached")

    texts: list[str] = []
    page.on("request", lambda r: texts.append(r.url) if "/text?maxChars=" in r.url else None)
    with page.expect_request("**/v1/openai/chat/completions") as sent:
        send(page, "What is the mascot's name?")
    wait_for_answer(page)
    assert len(uploads) == 2  # straight to S3 (moto), not through the API
    # An equal share each first; then the room the short document left goes to the one that was cut.
    limits = [int(parse_qs(urlsplit(url).query)["maxChars"][0]) for url in texts]
    assert len(limits) == 3, texts
    share, limit = limits[0], limits[2]
    assert limits[1] == share
    assert share < limit < LONG_CHARS

    prompt = json.loads(sent.value.post_data or "{}")["messages"][-1]["content"]
    assert prompt.startswith("What is the mascot's name?\n\n--- Attached document: ")
    cut = LONG_CHARS - limit
    note = f"(cut {cut:,} of {LONG_CHARS:,} characters to fit the model's context)"
    assert f"--- Attached document: long.txt {note} ---\n{HEAD}" in prompt
    assert "--- Attached document: notes.docx ---\nOllie likes sardines." in prompt
    body = re.search(r"long\.txt \(cut[^\n]*---\n(.*?)\n--- End of long\.txt ---", prompt, re.S)
    short = re.search(r"notes\.docx ---\n(.*?)\n--- End of notes\.docx ---", prompt, re.S)
    assert body is not None
    assert short is not None
    assert len(body.group(1)) == limit
    assert limit + len(short.group(1)) in (2 * share, 2 * share + 1)  # the documents' whole budget, used
    expect(tray.locator("li")).to_have_count(0)  # the tray is empty for the next message

    # On the message: what was typed, and the names with what was cut; kept after a reload.
    shown = f"Attached: long.txt {note}; notes.docx"
    user_message = page.locator("#messages .message.user").first
    expect(user_message.locator(".content")).to_have_text("What is the mascot's name?")
    expect(user_message.locator(".attachments")).to_have_text(shown)
    shots(page, "answered-with-documents")
    session = user.api("GET", "/sessions").json()["sessions"][0]
    stored = user.api("GET", f"/sessions/{session['sessionId']}").json()["messages"][0]
    assert [a["fileName"] for a in stored["metadata"]["attachments"]] == ["long.txt", "notes.docx"]
    assert stored["metadata"]["attachments"][0]["cutChars"] == cut
    assert stored["content"] == prompt
    page.reload()
    page.get_by_role("button", name="What is the mascot's name?", exact=True).click()
    expect(page.locator("#messages .message.user .attachments")).to_have_text(shown)

    # Editing the prompt keeps its documents.
    page.get_by_role("button", name="Edit your prompt and ask again").click()
    expect(page.get_by_label("Edited prompt")).to_have_value("What is the mascot's name?")
    page.get_by_label("Edited prompt").fill("What does Ollie like?")
    with page.expect_request("**/v1/openai/chat/completions") as resent:
        page.get_by_role("button", name="Ask again with the edit").click()
    wait_for_answer(page)
    again = json.loads(resent.value.post_data or "{}")["messages"][-1]["content"]
    assert again == prompt.replace("What is the mascot's name?", "What does Ollie like?", 1)
    expect(page.locator("#messages .message.user .attachments")).to_have_text(shown)
