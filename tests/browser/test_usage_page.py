"""The "Usage" page in a real browser against the local stack with metering (issue 15): after a real chat answer,
the page charts the caller's requests and tokens per day and model and tables the same figures as GET /usage;
bad ranges are named; an administrator reads everyone's usage (`*`)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from chalicelib.auth.tokens import TokenStore
from tests.browser.conftest import CspViolations, Screenshots, User, make_user, watched_context
from tests.browser.test_chat_ui import TEXTGEN_MODEL, send, sign_in, wait_for_answer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FLUSH_WAIT_S = 60  # the router flushes usage every 5 s (router/metering.py); room for a loaded machine
# Pixels of the first series' colour (usage.ts PALETTE[0], #0072b2) on a chart's canvas: the line was drawn.
DRAWN_PIXELS = """(id) => {
  const canvas = document.querySelector(`#${id} canvas`);
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b, a] = pixels.slice(i, i + 4);
    if (a > 200 && r < 40 && Math.abs(g - 114) < 40 && Math.abs(b - 178) < 40) drawn++;
  }
  return drawn;
}"""


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def wait_for_usage(user: User, requests: int = 1) -> dict[str, Any]:
    """The caller's usage report once the router has flushed at least `requests` requests (a real background
    write: polled, with a deadline)."""
    deadline = time.monotonic() + FLUSH_WAIT_S
    while True:
        response = user.api("GET", "/usage")
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        if report["totals"]["requests"] >= requests or time.monotonic() > deadline:
            assert report["totals"]["requests"] >= requests, report
            return report
        time.sleep(0.25)


def admin_user(lisa: Any) -> User:
    username = f"ui-admin-{uuid.uuid4().hex[:8]}"
    token, record = TokenStore().create(username=username, groups=(), is_admin=True, description="admin key")
    return User(username=username, token=token, token_id=record.token_id, base=lisa.url)


def test_the_usage_page_charts_and_tables_a_real_chat_request(
    browser: Browser, csp_violations: list[CspViolations], page: Page, lisa: Any, shots: Screenshots
) -> None:
    user = make_user(lisa)
    sign_in(page, lisa, user)
    send(page, "Say hello in three words.")
    wait_for_answer(page)
    report = wait_for_usage(user)
    [day] = report["days"]
    assert (day["date"], day["principal"], day["model"], day["requests"]) == (
        today(),
        f"token:{user.username}",
        TEXTGEN_MODEL,
        1,
    )
    assert day["promptTokens"] > 0, day
    assert day["completionTokens"] > 0, day

    page.get_by_role("button", name="Usage", exact=True).click()
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    view = page.locator("#usage-view")
    expect(view.get_by_label("From", exact=True)).to_be_focused()
    start = (datetime.now(UTC).date() - timedelta(days=29)).isoformat()
    expect(view.get_by_label("From", exact=True)).to_have_value(start)
    expect(view.get_by_label("To", exact=True)).to_have_value(today())
    expect(view.get_by_label("Principal", exact=True)).to_be_hidden()  # not an administrator
    table = page.get_by_role("table", name="Usage per day and model")
    expect(table.locator("tbody tr")).to_have_count(1)
    tokens = day["promptTokens"] + day["completionTokens"]
    expect(table.locator("tbody td")).to_have_text(
        [today(), TEXTGEN_MODEL, "1", "0", f"{day['promptTokens']:,}", f"{day['completionTokens']:,}"]
    )
    expect(table.locator("tfoot")).to_have_text(f"Total10{day['promptTokens']:,}{day['completionTokens']:,}")
    expect(view.locator(".usage-summary")).to_have_text(
        f"token:{user.username}, {start} to {today()}: 1 request (0 failed), {tokens:,} tokens"
        f" ({day['promptTokens']:,} prompt, {day['completionTokens']:,} completion)."
    )
    for chart, title in (("usage-chart-tokens", "Tokens per day"), ("usage-chart-requests", "Requests per day")):
        image = page.get_by_role("img", name=f"{title} per model, {start} to {today()}")
        expect(image).to_be_visible()
        expect(page.locator(f"#{chart} figcaption")).to_have_text(title)
        expect(page.locator(f"#{chart} .u-legend")).to_contain_text(TEXTGEN_MODEL)
        assert page.evaluate(DRAWN_PIXELS, chart) > 20, f"{title}: no line of the model's colour was drawn"
    shots(page, "usage-chart")

    # A range without use, then ranges the page or the API refuses, in words.
    view.get_by_label("From", exact=True).fill("2024-01-01")
    view.get_by_label("To", exact=True).fill("2024-01-31")
    page.get_by_role("button", name="Show usage").click()
    expect(view.locator(".usage-summary")).to_contain_text("2024-01-01 to 2024-01-31: 0 requests")
    expect(page.get_by_text("No use in this range.")).to_be_visible()
    view.get_by_label("From", exact=True).fill("2024-02-01")
    page.get_by_role("button", name="Show usage").click()
    expect(view.locator("[role=alert]")).to_have_text("From must not be after To.")
    view.get_by_label("To", exact=True).fill(today())
    page.get_by_role("button", name="Show usage").click()
    expect(view.locator("[role=alert]")).to_contain_text(
        "The usage could not be loaded: from: the range may span at most 366 days"
    )
    view.get_by_label("From", exact=True).fill(today())
    view.get_by_label("Model", exact=True).select_option(TEXTGEN_MODEL)
    page.get_by_role("button", name="Show usage").click()
    expect(view.locator("[role=alert]")).to_be_hidden()
    expect(table.locator("tbody tr")).to_have_count(1)

    # An administrator reads everyone's usage: the principal column names whose it is.
    admin_context = watched_context(browser, csp_violations, viewport={"width": 1280, "height": 800})
    try:
        admin_page = admin_context.new_page()
        sign_in(admin_page, lisa, admin_user(lisa))
        admin_page.get_by_role("button", name="Usage", exact=True).click()
        admin_view = admin_page.locator("#usage-view")
        admin_view.get_by_label("Principal", exact=True).fill("*")
        admin_page.get_by_role("button", name="Show usage").click()
        everyone = admin_page.get_by_role("table", name="Usage per day and model")
        expect(everyone.locator("thead th")).to_have_text(
            ["Date", "Principal", "Model", "Requests", "Failed", "Prompt tokens", "Completion tokens"]
        )
        expect(everyone.locator("tbody tr", has_text=f"token:{user.username}")).to_have_count(1)
        expect(admin_view.locator(".usage-summary")).to_contain_text("everyone, ")
        admin_view.get_by_label("Principal", exact=True).fill(f"token:{user.username}")
        admin_page.get_by_role("button", name="Show usage").click()
        expect(admin_view.locator(".usage-summary")).to_contain_text(f"token:{user.username}, ")
        expect(everyone.locator("tbody tr")).to_have_count(1)
        shots(admin_page, "usage-admin")
    finally:
        admin_context.close()
