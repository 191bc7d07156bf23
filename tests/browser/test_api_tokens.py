"""The "API tokens" page in a real browser against the local stack (issue 15): a user creates a token, copies it from
the dialog that shows it once, calls the API with it, and revokes it (then it is refused); the API's refusals (the
lifetime over the maximum, the per-user limit's 409) are shown in its words; an administrator sees and revokes
everyone's tokens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, expect

from chalicelib.auth.tokens import TokenStore
from tests.browser.conftest import Screenshots, User, make_user
from tests.browser.test_chat_ui import TEXTGEN_MODEL, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DAY = 24 * 3600
MAX_PER_USER = 10  # config.yaml authConfig.apiTokens.maxPerUser, which the local stack runs with


def models_with(lisa: Any, token: str) -> requests.Response:
    return requests.get(f"{lisa.url}/v1/openai/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def own_tokens(user: User) -> dict[str, dict[str, Any]]:
    response = user.api("GET", "/me/tokens")
    assert response.status_code == 200, response.text
    return {t["description"]: t for t in response.json()["tokens"]}


def open_tokens_page(page: Page) -> None:
    page.get_by_role("button", name="API tokens", exact=True).click()
    expect(page.get_by_role("heading", name="API tokens", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="New token")).to_be_focused()


def create_in_ui(page: Page, name: str, days: str = "") -> None:
    page.get_by_role("button", name="New token").click()
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Lifetime in days (optional)").fill(days)
    page.get_by_role("button", name="Create token").click()


def test_an_own_token_is_shown_once_works_and_is_refused_after_revoking(
    context: BrowserContext, page: Page, lisa: Any, user: User, shots: Screenshots
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, lisa, user)
    open_tokens_page(page)
    mine = page.get_by_role("table", name="Your API tokens")
    expect(mine.locator("tbody tr")).to_have_count(1)  # the token this user signed in with
    expect(mine.locator("tbody tr").first).to_contain_text("browser test")
    expect(mine.locator("tbody tr").first).to_contain_text("never")
    expect(page.get_by_role("heading", name="All tokens (administrator)")).to_have_count(0)  # not an admin

    create_in_ui(page, "ci script", "7")
    dialog = page.get_by_role("dialog", name="Your new token “ci script”")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("this is the only time LISA shows it")
    secret = dialog.get_by_role("textbox", name="Token").input_value()
    assert len(secret) > 20
    expect(dialog.get_by_role("textbox", name="Token")).to_be_focused()
    dialog.get_by_role("button", name="Copy the token").click()
    expect(dialog.get_by_role("button", name="Copy the token")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    shots(page, "token-shown-once")

    # The token works against the data plane, with the lifetime asked for.
    listed = models_with(lisa, secret)
    assert listed.status_code == 200, listed.text
    assert TEXTGEN_MODEL in {m["id"] for m in listed.json()["data"]}
    stored = own_tokens(user)["ci script"]
    assert abs(stored["tokenExpiration"] - stored["createdAt"] - 7 * DAY) <= 2, stored

    # Closed, it is gone from the page for good; the list shows the new token without it.
    dialog.get_by_role("button", name="Done, I have copied it").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert secret not in page.content()
    expect(page.get_by_role("button", name="New token")).to_be_focused()
    expect(mine.locator("tbody tr")).to_have_count(2)
    expect(mine.locator("tbody tr").first).to_contain_text("ci script")
    expect(mine.locator("tbody tr").first.locator("time")).to_have_count(2)  # created, expires
    shots(page, "token-listed")

    page.get_by_role("button", name="Revoke ci script").click()  # the page fixture accepts the confirmation
    expect(page.locator("#status")).to_have_text("Revoked the token “ci script”.")
    expect(mine.locator("tbody tr")).to_have_count(1)
    assert "ci script" not in own_tokens(user)
    refused = models_with(lisa, secret)
    assert refused.status_code == 401, refused.text


def test_the_apis_refusals_are_shown_in_words(page: Page, lisa: Any, shots: Screenshots) -> None:
    user = make_user(lisa)
    for i in range(MAX_PER_USER - 1):  # with the token it signs in with: the most a user may hold
        made = user.api("POST", "/me/tokens", json={"description": f"filler {i}"})
        assert made.status_code == 201, made.text
    sign_in(page, lisa, user)
    open_tokens_page(page)
    expect(page.get_by_role("table", name="Your API tokens").locator("tbody tr")).to_have_count(MAX_PER_USER)
    form_alert = page.locator("#tokens-view form [role=alert]")

    # Checked in the page before anything is sent.
    page.get_by_role("button", name="New token").click()
    page.get_by_label("Lifetime in days (optional)").fill("1.5")
    page.get_by_role("button", name="Create token").click()
    expect(form_alert).to_have_text("Enter a name. The lifetime must be a whole number of days from 1 to 3650.")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name="New token")).to_be_focused()

    # Longer than the configured maximum (365 days): the API's 400, naming the field and the bound.
    create_in_ui(page, "too long", "400")
    expect(form_alert).to_contain_text("The token could not be created: expiresIn: at most")
    expect(form_alert).to_contain_text("the maximum lifetime of a user's own token (365 days)")

    # At the per-user limit: the 409 says so and what to do.
    page.get_by_label("Lifetime in days (optional)").fill("")
    page.get_by_role("button", name="Create token").click()
    expect(form_alert).to_have_text(
        f"The token could not be created: user '{user.username}' already holds {MAX_PER_USER} unexpired API tokens,"
        " the limit (authConfig.apiTokens.maxPerUser); revoke one first"
    )
    expect(page.get_by_role("dialog")).to_have_count(0)
    shots(page, "token-limit")
    assert len(own_tokens(user)) == MAX_PER_USER


def test_an_administrator_sees_and_revokes_every_users_tokens(page: Page, lisa: Any, shots: Screenshots) -> None:
    username = f"ui-admin-{uuid.uuid4().hex[:8]}"
    token, record = TokenStore().create(username=username, groups=(), is_admin=True, description="admin key")
    admin = User(username=username, token=token, token_id=record.token_id, base=lisa.url)
    other = make_user(lisa)
    assert models_with(lisa, other.token).status_code == 200

    sign_in(page, lisa, admin)
    open_tokens_page(page)
    everyone = page.get_by_role("table", name="Every user's API tokens")
    theirs = everyone.locator(f"tr[data-token-id='{other.token_id}']")
    expect(theirs).to_contain_text(other.username)
    expect(everyone.locator(f"tr[data-token-id='{admin.token_id}']")).to_contain_text(f"{username} (admin)")
    shots(page, "tokens-admin")

    theirs.get_by_role("button", name="Revoke browser test").click()
    expect(page.locator("#status")).to_have_text("Revoked the token “browser test”.")
    expect(theirs).to_have_count(0)
    assert models_with(lisa, other.token).status_code == 401
