"""The API reference page (/reference) in a real browser: Swagger UI, bundled into the built UI, renders the
document the stack serves at /openapi.json, under the UI's strict Content-Security-Policy (the autouse fixture fails
the test on any violation)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_reference_renders_the_document_operations(page: Page, lisa: Any) -> None:
    page.goto(lisa.url)
    page.get_by_role("link", name="API reference").first.click()
    expect(page).to_have_url(f"{lisa.url}/reference")
    expect(page.get_by_role("heading", name="LISA API")).to_be_visible(timeout=30_000)  # Swagger UI on a busy box
    for path in ("/v1/openai/chat/completions", "/sessions/{sessionId}", "/tokens"):
        expect(page.locator(".opblock-summary-path", has_text=path).first).to_be_visible()
    chat = page.locator(".opblock-summary-path", has_text="/v1/openai/chat/completions").first
    chat.click()  # expands the operation
    expect(page.locator(".opblock-body").get_by_text("Request body").first).to_be_visible()
