"""The chat UI's daily-use features in a real browser against the local stack: code blocks, message actions,
usage per answer, export (issue 17)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Screenshots, User
from tests.browser.test_chat_ui import (
    ANSWER_TIMEOUT_MS,
    TEXTGEN_MODEL,
    assistant_texts,
    send,
    sign_in,
    wait_for_answer,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CODE = 'def add(a, b):\n    """Sum."""\n    return a + b  # plain\n'
CODE_ANSWER = f"Here you are:\n\n```python\n{CODE}```\n\nAnd a shell line:\n\n```\n$ echo hi\n```\n"
# When each compared answer was complete (epoch ms, as Playwright's request timings).
RECORD_ANSWERED = """() => {
  window.__answered = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.attributeName === 'aria-busy' && change.target.getAttribute('aria-busy') === 'false') {
        window.__answered.push(Date.now());
      }
    }
  }).observe(document.getElementById('chat'), {subtree: true, attributes: true, attributeFilter: ['aria-busy']});
}"""
USAGE = re.compile(r"^\d+ prompt \+ \d+ completion tokens · first token \d+\.\d\d s$")


def clipboard(page: Page) -> str:
    text: str = page.evaluate("() => navigator.clipboard.readText()")
    return text


def stored_session(user: User, name: str, messages: list[dict[str, Any]]) -> str:
    session_id = f"t-{uuid.uuid4().hex[:12]}"
    body = {"name": name, "messages": messages, "parameters": {"model": TEXTGEN_MODEL}}
    response = user.api("PUT", f"/sessions/{session_id}", json=body)
    assert response.status_code in (200, 201), response.text
    return session_id


def only_session(user: User) -> dict[str, Any]:
    sessions = user.api("GET", "/sessions").json()["sessions"]
    assert len(sessions) == 1, sessions
    stored: dict[str, Any] = user.api("GET", f"/sessions/{sessions[0]['sessionId']}").json()
    return stored


@pytest.fixture
def clipboard_context(context: BrowserContext) -> BrowserContext:
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    return context


def test_code_blocks_are_highlighted_and_copied(
    clipboard_context: BrowserContext, page: Page, lisa: Any, user: User, shots: Screenshots
) -> None:
    turns = [{"role": "user", "content": "Add two numbers"}, {"role": "assistant", "content": CODE_ANSWER}]
    stored_session(user, "Code", turns)
    sign_in(page, lisa, user)
    page.get_by_role("button", name="Code", exact=True).click()
    blocks = page.locator("#messages .message.assistant .code-block")
    expect(blocks).to_have_count(2)
    python = blocks.nth(0)
    expect(python.locator(".code-language")).to_have_text("python")
    expect(python.locator(".hljs-keyword").first).to_have_text("def")
    expect(python.locator(".hljs-string")).to_contain_text('"""Sum."""')
    expect(python.locator(".hljs-comment")).to_have_text("# plain")
    # each highlight colour is a class from the page's own stylesheet (no inline style: the CSP refuses those)
    assert python.locator("[style]").count() == 0
    colour = python.locator(".hljs-keyword").first.evaluate("(e) => getComputedStyle(e).color")
    plain = python.locator("code").evaluate("(e) => getComputedStyle(e).color")
    assert colour != plain
    shots(page, "code-blocks")

    python.get_by_role("button", name="Copy code block 1").click()
    expect(python.get_by_role("button", name="Copy code block 1")).to_have_text("Copied")
    assert clipboard(page) == CODE.rstrip("\n")  # the code, without the fence
    blocks.nth(1).get_by_role("button", name="Copy code block 2").click()
    expect(page.locator("#status")).to_have_text("Copied to the clipboard.")
    assert clipboard(page) == "$ echo hi"
    shots(page, "code-copied")


def test_copy_regenerate_edit_and_delete_messages(
    clipboard_context: BrowserContext, page: Page, lisa: Any, user: User, shots: Screenshots
) -> None:
    sign_in(page, lisa, user)
    send(page, "What is the capital of France?")
    wait_for_answer(page)
    first = only_session(user)
    answer = page.locator("#messages .message.assistant").last
    answer.get_by_role("button", name="Copy the answer").click()
    assert clipboard(page) == first["messages"][1]["content"]
    page.locator("#messages .message.user").first.get_by_role("button", name="Copy your prompt").click()
    assert clipboard(page) == "What is the capital of France?"
    shots(page, "actions")

    # Regenerate: the same history is asked again, the old answer is replaced (stored as well).
    with page.expect_request("**/v1/openai/chat/completions") as sent:
        answer.get_by_role("button", name="Regenerate the answer").click()
    body = json.loads(sent.value.post_data or "{}")
    assert [m["content"] for m in body["messages"]] == ["What is the capital of France?"]
    wait_for_answer(page)
    regenerated = only_session(user)
    assert [m["role"] for m in regenerated["messages"]] == ["user", "assistant"]
    assert regenerated["version"] > first["version"]
    expect(page.locator("#messages .message")).to_have_count(2)
    assert assistant_texts(page)[-1].strip() == regenerated["messages"][1]["content"].strip()

    # A second turn, then edit the first prompt: the branch after it is dropped, the edited one is asked and kept.
    send(page, "And of Italy?")
    wait_for_answer(page)
    expect(page.locator("#messages .message")).to_have_count(4)
    assert len(only_session(user)["messages"]) == 4
    page.locator("#messages .message.user").first.get_by_role("button", name="Edit your prompt and ask again").click()
    editor = page.get_by_label("Edited prompt")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("What is the capital of France?")
    editor.fill("What is the capital of Spain?")
    shots(page, "editing")
    with page.expect_request("**/v1/openai/chat/completions") as sent:
        page.get_by_role("button", name="Ask again with the edit").click()
    body = json.loads(sent.value.post_data or "{}")
    assert [m["content"] for m in body["messages"]] == ["What is the capital of Spain?"]
    wait_for_answer(page)
    edited = only_session(user)
    assert [m["role"] for m in edited["messages"]] == ["user", "assistant"]
    assert edited["messages"][0]["content"] == "What is the capital of Spain?"
    assert edited["messages"][0]["metadata"]["edited"] is True
    expect(page.locator("#messages .message.user .content")).to_have_text(["What is the capital of Spain?"])
    shots(page, "edited")

    # The branch survives a reload.
    page.reload()
    page.get_by_role("button", name="What is the capital of France?", exact=True).click()
    expect(page.locator("#messages .message.user .content")).to_have_text(["What is the capital of Spain?"])
    expect(page.locator("#messages .message")).to_have_count(2)

    # Delete the pair: the chat is empty, in the page and in the store.
    page.get_by_role("button", name="Delete your prompt and its answer").click()
    expect(page.locator("#status")).to_have_text("Deleted the message and its answer.")
    expect(page.locator("#messages .message")).to_have_count(0)
    assert only_session(user)["messages"] == []
    shots(page, "pair-deleted")


def test_usage_and_time_to_first_token_under_each_answer(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    sign_in(page, lisa, user)
    with page.expect_request("**/v1/openai/chat/completions") as sent:
        send(page, "Say hello.")
    assert json.loads(sent.value.post_data or "{}")["stream_options"] == {"include_usage": True}
    wait_for_answer(page)
    send(page, "Say goodbye.")
    wait_for_answer(page)
    lines = page.locator("#messages .message.assistant .usage")
    expect(lines).to_have_count(2)
    shown = lines.all_inner_texts()
    assert all(USAGE.match(line) for line in shown), shown

    stored = only_session(user)["messages"]
    answers = [m["metadata"] for m in stored if m["role"] == "assistant"]
    for meta, line in zip(answers, shown, strict=True):
        usage = meta["usage"]
        assert usage["prompt_tokens"] > 0
        assert usage["completion_tokens"] > 0
        assert 0 < meta["ttftMs"] < 120_000
        assert line.startswith(f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens")
    prompt = sum(m["usage"]["prompt_tokens"] for m in answers)
    completion = sum(m["usage"]["completion_tokens"] for m in answers)
    total = f"This chat: {prompt} prompt + {completion} completion tokens in 2 answers"
    expect(page.locator("#usage-total")).to_have_text(total)
    shots(page, "usage")

    page.reload()
    page.get_by_role("button", name="Say hello.", exact=True).click()
    expect(page.locator("#messages .message.assistant .usage")).to_have_text(shown)
    expect(page.locator("#usage-total")).to_have_text(total)


def test_export_as_markdown_and_json(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    messages = [
        {"role": "user", "content": "Add two numbers"},
        {
            "role": "assistant",
            "content": CODE_ANSWER,
            "metadata": {"model": TEXTGEN_MODEL, "usage": {"prompt_tokens": 9, "completion_tokens": 31}},
        },
    ]
    session_id = stored_session(user, "Adding: numbers & more", messages)
    sign_in(page, lisa, user)
    expect(page.get_by_role("group", name="Export this chat")).to_be_hidden()  # nothing to export yet
    page.get_by_role("button", name="Adding: numbers & more", exact=True).click()
    shots(page, "export")

    with page.expect_download() as markdown:
        page.get_by_role("button", name="Export as Markdown").click()
    assert markdown.value.suggested_filename == "Adding-numbers-more.md"
    text = Path(markdown.value.path()).read_text(encoding="utf-8")
    assert text.startswith("# Adding: numbers & more\n")
    assert "## You\n\nAdd two numbers\n" in text
    assert f"## LISA\n\n{CODE_ANSWER}" in text
    assert f"*model {TEXTGEN_MODEL} · 9 prompt + 31 completion tokens*" in text

    with page.expect_download() as exported:
        page.get_by_role("button", name="Export as JSON").click()
    assert exported.value.suggested_filename == "Adding-numbers-more.json"
    chat = json.loads(Path(exported.value.path()).read_text(encoding="utf-8"))
    assert (chat["sessionId"], chat["name"]) == (session_id, "Adding: numbers & more")
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [(m["role"], m["content"]) for m in messages]
    assert chat["messages"][1]["metadata"]["usage"] == {"prompt_tokens": 9, "completion_tokens": 31}
    assert chat["parameters"]["model"] == TEXTGEN_MODEL


def test_compare_two_settings_side_by_side_and_continue_with_one(
    page: Page, lisa: Any, user: User, shots: Screenshots
) -> None:
    sign_in(page, lisa, user)
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_label("Prompt to compare")).to_be_focused()
    page.get_by_label("Prompt to compare").fill("Name a fruit.")
    choices = page.locator("#compare-view fieldset")
    expect(choices).to_have_count(2)
    add = page.get_by_role("button", name="Add a choice")
    add.click()
    add.click()
    expect(choices).to_have_count(4)
    expect(add).to_be_disabled()
    page.get_by_role("button", name="Remove choice 4").click()
    page.get_by_role("button", name="Remove choice 3").click()
    expect(choices).to_have_count(2)
    expect(page.get_by_role("button", name="Remove choice 2")).to_be_hidden()  # two is the least
    for n, (temperature, max_tokens) in enumerate([("0", "12"), ("1.2", "40")], start=1):
        expect(page.get_by_label(f"Choice {n} model")).to_have_value(TEXTGEN_MODEL)
        page.get_by_label(f"Choice {n} temperature").fill(temperature)
        page.get_by_label(f"Choice {n} max tokens").fill(max_tokens)
    shots(page, "compare-choices")

    requests: list[Any] = []
    page.on("request", lambda r: requests.append(r) if r.url.endswith("/chat/completions") else None)
    page.evaluate(RECORD_ANSWERED)
    page.get_by_role("button", name="Send to all choices").click()
    expect(page.locator("#status")).to_have_text(
        "Comparison complete. Pick the answer to continue with.", timeout=ANSWER_TIMEOUT_MS
    )
    shots(page, "compare-answers")
    bodies = sorted((json.loads(r.post_data or "{}") for r in requests), key=lambda b: b["max_tokens"])
    assert [(b["temperature"], b["max_tokens"]) for b in bodies] == [(0, 12), (1.2, 40)]
    assert all(b["messages"] == [{"role": "user", "content": "Name a fruit."}] for b in bodies)
    # in parallel: both were sent before either answer was complete
    starts = [r.timing["startTime"] for r in requests]
    answered = page.evaluate("() => window.__answered")
    assert len(answered) == 2
    assert min(starts) > 0
    assert max(starts) < min(answered), (starts, answered)

    panes = page.locator("#compare-view article")
    expect(panes).to_have_count(2)
    for n in (1, 2):
        pane = page.get_by_role("article", name=f"Answer of choice {n}")
        expect(pane.locator("h3")).to_contain_text(f"Choice {n}: {TEXTGEN_MODEL}")
        assert pane.locator(".content").inner_text().strip()
        assert USAGE.match(pane.locator(".usage").inner_text()), pane.locator(".usage").inner_text()
    picked = page.get_by_role("article", name="Answer of choice 2").locator(".content").inner_text().strip()
    page.get_by_role("button", name="Continue with choice 2").click()
    expect(page.locator("#compare-view")).to_have_count(0)
    expect(page.locator("#messages .message.user .content")).to_have_text(["Name a fruit."])
    expect(page.locator("#messages .message.assistant .content")).to_have_count(1)  # rendered after the prompt
    assert assistant_texts(page)[-1].strip() == picked
    stored = only_session(user)["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["metadata"]["model"] == TEXTGEN_MODEL
    assert stored[1]["metadata"]["compared"] == {"temperature": 1.2, "maxTokens": 40}
    shots(page, "compare-continued")
    page.reload()  # what is shown after a reload comes from the stored answer: the one picked
    page.get_by_role("button", name="Name a fruit.", exact=True).click()
    expect(page.locator("#messages .message.assistant .content")).to_have_count(1)
    assert assistant_texts(page)[-1].strip() == picked
