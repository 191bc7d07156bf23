"""axe-core over the chat UI's main views (sign-in, chat, templates, compare, API tokens, usage), light and dark:
no serious or critical violation (issues 15, 17). axe is injected with Playwright's bypass_csp in this test's own
context only: the page's policy is not weakened for anyone else, and every other test runs under it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ROOT, CspViolations, Screenshots, User, watched_context
from tests.browser.test_chat_daily import CODE_ANSWER, stored_session
from tests.browser.test_chat_ui import TEXTGEN_MODEL, sign_in
from tests.browser.test_usage_page import wait_for_usage

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = ROOT / "webui" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


def axe_violations(page: Page, view: str) -> list[str]:
    """The serious and critical violations axe finds in the page as it is now, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
        " 'best-practice']}})"
    )
    return [
        f"{view}: {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_main_views_have_no_serious_accessibility_violations(
    browser: Browser,
    lisa: Any,
    user: User,
    shots: Screenshots,
    csp_violations: list[CspViolations],
    scheme: str,
) -> None:
    assert AXE.is_file(), "axe-core is missing: run `npm ci` in webui/"
    context = watched_context(
        browser, csp_violations, bypass_csp=True, color_scheme=scheme, viewport={"width": 1280, "height": 800}
    )
    page = context.new_page()
    found: list[str] = []
    try:
        page.goto(lisa.url)
        expect(page.get_by_role("heading", name="Sign in to LISA")).to_be_visible()
        found += axe_violations(page, "sign-in")

        turns = [
            {"role": "user", "content": "Add two numbers"},
            {
                "role": "assistant",
                "content": CODE_ANSWER,
                "metadata": {
                    "model": TEXTGEN_MODEL,
                    "usage": {"prompt_tokens": 9, "completion_tokens": 31},
                    "ttftMs": 420,
                },
            },
        ]
        stored_session(user, "Code", turns)
        chat = {"model": TEXTGEN_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        answered = user.api("POST", "/v1/openai/chat/completions", json=chat)  # for the usage page's chart
        assert answered.status_code == 200, answered.text
        sign_in(page, lisa, user)
        page.get_by_role("button", name="Code", exact=True).click()
        expect(page.locator("#messages .code-block")).to_have_count(2)
        page.get_by_role("button", name="Parameters", exact=True).click()
        found += axe_violations(page, "chat")
        shots(page, f"axe-chat-{scheme}")
        page.get_by_role("button", name="Parameters", exact=True).click()

        page.get_by_role("button", name="Templates", exact=True).click()
        expect(page.get_by_role("heading", name="Prompt templates")).to_be_visible()
        expect(page.get_by_text("No personas yet.")).to_be_visible()
        found += axe_violations(page, "templates")
        page.get_by_role("button", name="New template").click()
        found += axe_violations(page, "template form")
        shots(page, f"axe-template-form-{scheme}")
        page.get_by_role("button", name="Close templates").click()

        page.get_by_role("button", name="Compare", exact=True).click()
        expect(page.get_by_label("Prompt to compare")).to_be_visible()
        found += axe_violations(page, "compare")
        shots(page, f"axe-compare-{scheme}")
        page.get_by_role("button", name="Close compare").click()

        page.get_by_role("button", name="API tokens", exact=True).click()
        expect(page.get_by_role("table", name="Your API tokens")).to_be_visible()
        found += axe_violations(page, "API tokens")
        page.get_by_role("button", name="New token").click()
        page.get_by_label("Name", exact=True).fill(f"axe {scheme}")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        found += axe_violations(page, "new token dialog")
        shots(page, f"axe-token-dialog-{scheme}")
        page.get_by_role("button", name="Done, I have copied it").click()
        page.get_by_role("button", name="Close API tokens").click()

        wait_for_usage(user)
        page.get_by_role("button", name="Usage", exact=True).click()
        expect(page.get_by_role("table", name="Usage per day and model")).to_be_visible()
        expect(page.get_by_role("img", name=re.compile("^Tokens per day per model"))).to_be_visible()
        found += axe_violations(page, "usage")
        shots(page, f"axe-usage-{scheme}")
    finally:
        context.close()
    assert not found, "\n".join(found)
