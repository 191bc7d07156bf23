"""Prompt templates in the chat UI, in a real browser against the local stack with the templates API: create,
edit, list, use (a persona as the system prompt, a directive filled into the message box), delete (issue 17)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screenshots, User, make_user
from tests.browser.test_chat_ui import send, sign_in, wait_for_answer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PERSONA = "You are a pirate. Answer like one."
PERSONA_EDITED = "You are a pirate captain. Answer in one short sentence."
DIRECTIVE = "Translate {{text}} into {{language}}."


def create_template(page: Page, title: str, kind: str, body: str, **extra: str) -> None:
    page.get_by_role("button", name="New template").click()
    expect(page.get_by_label("Title", exact=True)).to_be_focused()
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Kind").select_option(kind)
    page.get_by_label("Template text").fill(body)
    if "description" in extra:
        page.get_by_label("Description (optional)").fill(extra["description"])
    if "visibility" in extra:
        page.get_by_label("Who can use it").select_option(extra["visibility"])
    if "groups" in extra:
        page.get_by_label("Group names").fill(extra["groups"])
    page.get_by_role("button", name="Create template").click()


def templates(user: User) -> dict[str, dict[str, Any]]:
    response = user.api("GET", "/prompt-templates")
    assert response.status_code == 200, response.text
    return {t["title"]: t for t in response.json()["templates"]}


def test_prompt_templates_from_creating_to_using_and_deleting(page: Page, lisa: Any, shots: Screenshots) -> None:
    user = make_user(lisa, groups=("team-a", "team-b"))
    sign_in(page, lisa, user)
    page.get_by_role("button", name="Templates", exact=True).click()
    expect(page.get_by_role("heading", name="Prompt templates")).to_be_visible()
    expect(page.get_by_text("No personas yet.")).to_be_visible()
    expect(page.get_by_role("button", name="New template")).to_be_focused()

    # Bad input is named before anything is sent.
    page.get_by_role("button", name="New template").click()
    page.get_by_role("button", name="Create template").click()
    expect(page.locator("#templates-view [role=alert]:visible")).to_have_text("Enter a title and the template text.")
    page.get_by_role("button", name="Cancel").click()

    create_template(page, "Pirate", "persona", PERSONA, description="Talks like a pirate")
    expect(page.locator("#status")).to_have_text("Created the template “Pirate”.")
    create_template(page, "Translate", "directive", DIRECTIVE, visibility="groups", groups="team-a, team-b")
    personas = page.get_by_role("region", name="Personas")
    directives = page.get_by_role("region", name="Directives")
    expect(personas.locator(".template-title")).to_have_text(["Pirate"])
    expect(directives.locator(".template-title")).to_have_text(["Translate"])
    expect(directives).to_contain_text("shared with groups: team-a, team-b")
    expect(directives).to_contain_text("fills {{text}} {{language}}")
    stored = templates(user)
    assert (stored["Pirate"]["kind"], stored["Pirate"]["body"], stored["Pirate"]["visibility"]) == (
        "persona",
        PERSONA,
        "private",
    )
    assert stored["Pirate"]["description"] == "Talks like a pirate"
    assert stored["Translate"]["placeholders"] == ["text", "language"]
    assert stored["Translate"]["groups"] == ["team-a", "team-b"]
    assert all(t["editable"] for t in stored.values())
    shots(page, "templates-list")

    # A global template is the administrators' to make, and a group one is for the user's own groups: the API's
    # refusals are shown in its words.
    create_template(page, "Everyone's", "persona", "Be brief.", visibility="global")
    alert = page.locator("#templates-view [role=alert]:visible")
    expect(alert).to_contain_text("The template could not be saved:")
    page.get_by_role("button", name="Cancel").click()
    create_template(page, "Theirs", "persona", "Be brief.", visibility="groups", groups="team-z")
    expect(alert).to_contain_text("team-z")
    page.get_by_role("button", name="Cancel").click()
    assert set(templates(user)) == {"Pirate", "Translate"}

    # Another member of team-a sees the shared directive (not the private persona) and may use, not edit, it.
    colleague = make_user(lisa, groups=("team-a",))
    shared = templates(colleague)
    assert list(shared) == ["Translate"]
    assert shared["Translate"]["editable"] is False

    # Edit: the form starts from the stored template; saving replaces it.
    page.get_by_role("button", name="Edit Pirate").click()
    expect(page.get_by_label("Template text")).to_have_value(PERSONA)
    page.get_by_label("Template text").fill(PERSONA_EDITED)
    shots(page, "template-edit")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#status")).to_have_text("Saved the template “Pirate”.")
    assert templates(user)["Pirate"]["body"] == PERSONA_EDITED

    # A directive: a field per placeholder, then the filled text is in the message box (not sent).
    page.get_by_role("button", name="Use Translate").click()
    page.get_by_role("button", name="Fill the prompt").click()
    expect(page.locator("#templates-view [role=alert]:visible")).to_have_text("Fill in: text, language.")
    page.get_by_label("text", exact=True).fill("good morning")
    page.get_by_label("language", exact=True).fill("French")
    shots(page, "template-fill")
    page.get_by_role("button", name="Fill the prompt").click()
    expect(page.locator("#templates-view")).to_have_count(0)
    expect(page.get_by_label("Message")).to_have_value("Translate good morning into French.")
    expect(page.get_by_label("Message")).to_be_focused()

    # A persona starts a chat with it as the system prompt, sent and saved with the chat.
    page.get_by_role("button", name="Templates", exact=True).click()
    page.get_by_role("button", name="Use Pirate").click()
    expect(page.locator("#status")).to_have_text("New chat with the persona “Pirate” as its system prompt.")
    with page.expect_request("**/v1/openai/chat/completions") as sent:
        send(page, "Hello")
    body = json.loads(sent.value.post_data or "{}")
    assert body["messages"][0] == {"role": "system", "content": PERSONA_EDITED}
    wait_for_answer(page)
    session = user.api("GET", "/sessions").json()["sessions"][0]
    assert session["parameters"]["systemPrompt"] == PERSONA_EDITED
    page.get_by_role("button", name="Parameters", exact=True).click()
    expect(page.get_by_label("System prompt")).to_have_value(PERSONA_EDITED)
    page.get_by_role("button", name="Parameters", exact=True).click()
    shots(page, "persona-chat")

    # Delete.
    page.get_by_role("button", name="Templates", exact=True).click()
    page.get_by_role("button", name="Delete Translate").click()
    expect(page.locator("#status")).to_have_text("Deleted the template “Translate”.")
    expect(page.get_by_text("No directives yet.")).to_be_visible()
    assert list(templates(user)) == ["Pirate"]
    page.keyboard.press("Escape")
    expect(page.locator("#templates-view")).to_have_count(0)
    expect(page.get_by_role("button", name="Templates", exact=True)).to_be_focused()
