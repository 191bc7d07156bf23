"""The chat UI streams from vLLM: the local stack's default chat model (config.yaml) runs on vLLM's CPU build."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Screenshots, User
from tests.browser.test_chat_ui import RECORD_STREAM, TEXTGEN_MODEL, assistant_texts, send, sign_in, wait_for_answer

pytestmark = [pytest.mark.browser, pytest.mark.vllm, pytest.mark.slow]


def test_the_chat_ui_streams_the_default_model_from_vllm(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    models = {m["id"]: m["provider"] for m in user.api("GET", "/v1/openai/models").json()["data"]}
    assert models[TEXTGEN_MODEL] == "ecs.textgen.vllm"
    sign_in(page, lisa, user)
    page.get_by_label("Model").select_option(TEXTGEN_MODEL)
    page.evaluate(RECORD_STREAM)
    send(page, "Count from one to ten.")
    wait_for_answer(page)
    answer = assistant_texts(page)[-1].strip()
    assert answer
    partial = [s["text"] for s in page.evaluate("window.__stream") if s["busy"] == "true" and s["text"].strip()]
    assert len(set(partial)) >= 3, partial  # the answer grew on screen chunk by chunk, not all at once
    shots(page, "vllm-streamed")
