"""The chat UI in a real browser against the local stack: login, models, streaming, sessions, parameters, errors,
RAG with sources, the UI under an API Gateway stage path."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from testkit.oidc_issuer import OidcIssuer
from tests.browser.conftest import CspViolations, Screenshots, User, make_user, watched_context
from tests.support.servers import AppThread, stage_path_proxy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXTGEN_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
ANSWER_TIMEOUT_MS = 120_000
MASCOT = b"The LISA project mascot is a purple octopus named Ollie."

# Records what the streaming answer looked like each time the conversation changed.
RECORD_STREAM = """() => {
  window.__stream = [];
  const log = document.getElementById('messages');
  new MutationObserver(() => {
    const item = log.querySelector('.message.streaming');
    if (!item) return;
    const text = item.querySelector('.content').textContent;
    window.__stream.push({busy: item.getAttribute('aria-busy'), text});
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


def sign_in(page: Page, lisa: Any, user: User) -> None:
    page.goto(lisa.url)
    page.get_by_label("API key").fill(user.token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_label("Model")).to_be_enabled()


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def wait_for_answer(page: Page) -> None:
    expect(page.locator("#status")).to_have_text("Answer complete.", timeout=ANSWER_TIMEOUT_MS)


def assistant_texts(page: Page) -> list[str]:
    return page.locator("#messages .message.assistant .content").all_inner_texts()


def test_chat_from_login_to_deleting_the_session(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    page.goto(lisa.url)
    expect(page.get_by_role("heading", name="Sign in to LISA")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in with single sign-on")).to_be_visible()
    shots(page, "login")
    page.get_by_label("API key").fill(user.token)
    page.get_by_label("API key").press("Enter")

    # Model picker: the registry's text-generation models only.
    picker = page.get_by_label("Model")
    expect(picker).to_be_enabled()
    options = picker.locator("option").all_inner_texts()
    assert TEXTGEN_MODEL in options
    assert EMBEDDING_MODEL not in " ".join(options)
    picker.select_option(TEXTGEN_MODEL)

    # RAG controls are shown exactly when the user has repositories.
    repositories = user.api("GET", "/repositories")
    has_repositories = repositories.ok and bool(
        repositories.json().get("repositories") if isinstance(repositories.json(), dict) else repositories.json()
    )
    page.get_by_role("button", name="Parameters", exact=True).click()
    rag = page.get_by_role("group", name="Retrieval (RAG)")
    (expect(rag).to_be_visible if has_repositories else expect(rag).to_be_hidden)()
    page.get_by_role("button", name="Parameters", exact=True).click()
    shots(page, "signed-in")

    # Streaming: text is on screen while the answer is still being generated.
    page.evaluate(RECORD_STREAM)
    send(page, "What is the capital of France?")
    page.wait_for_function(
        "() => { const m = document.querySelector('.message.streaming[aria-busy=\"true\"] .content');"
        " return m && m.textContent.trim().length > 0; }",
        timeout=ANSWER_TIMEOUT_MS,
    )
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    shots(page, "streaming")
    wait_for_answer(page)
    shots(page, "answered")
    frames = page.evaluate("window.__stream")
    partial = {f["text"] for f in frames if f["busy"] == "true" and f["text"].strip()}
    assert len(partial) >= 2, f"expected the answer to grow while streaming, saw {frames!r}"
    answer = assistant_texts(page)[-1]
    assert answer.strip()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()

    # Saved: one session, both messages, the model recorded.
    sessions = user.api("GET", "/sessions").json()["sessions"]
    assert [s["name"] for s in sessions] == ["What is the capital of France?"]
    session_id = sessions[0]["sessionId"]
    stored = user.api("GET", f"/sessions/{session_id}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["metadata"]["model"] == TEXTGEN_MODEL

    # Reload: still signed in, the session is listed and opens with its messages.
    page.reload()
    chat = page.get_by_role("button", name="What is the capital of France?", exact=True)
    expect(chat).to_be_visible()
    chat.click()
    expect(page.locator("#messages .message.user .content")).to_have_text(["What is the capital of France?"])
    assert [t.strip() for t in assistant_texts(page)] == [answer.strip()]
    shots(page, "reloaded")

    # Parameters: changed with the keyboard and the form, saved with the session, used by the next request.
    page.get_by_role("button", name="Parameters", exact=True).click()
    page.get_by_label("System prompt").fill("Answer in one short sentence.")
    temperature = page.get_by_label("Temperature")
    temperature.focus()
    temperature.press("Home")
    for _ in range(6):
        temperature.press("ArrowRight")
    page.get_by_label("Top k").fill("20")
    page.get_by_label("Max tokens").fill("24")
    expect(page.locator("#status")).to_have_text("Parameters saved.")
    parameters = user.api("GET", f"/sessions/{session_id}").json()["parameters"]
    assert parameters["systemPrompt"] == "Answer in one short sentence."
    assert parameters["temperature"] == pytest.approx(0.3)
    assert (parameters["topK"], parameters["maxTokens"], parameters["model"]) == (20, 24, TEXTGEN_MODEL)
    shots(page, "parameters")

    with page.expect_request("**/v1/openai/chat/completions") as sent:
        send(page, "And of Italy?")
    body = json.loads(sent.value.post_data or "{}")
    assert body["messages"][0] == {"role": "system", "content": "Answer in one short sentence."}
    assert [m["content"].strip() for m in body["messages"][1:]] == [
        "What is the capital of France?",
        answer.strip(),
        "And of Italy?",
    ]
    assert (body["max_tokens"], body["top_k"], body["stream"]) == (24, 20, True)
    assert body["temperature"] == pytest.approx(0.3)
    wait_for_answer(page)

    page.reload()
    page.get_by_role("button", name="What is the capital of France?", exact=True).click()
    expect(page.locator("#messages .message")).to_have_count(4)
    page.get_by_role("button", name="Parameters", exact=True).click()
    expect(page.get_by_label("System prompt")).to_have_value("Answer in one short sentence.")
    expect(page.get_by_label("Max tokens")).to_have_value("24")
    expect(page.get_by_label("Top k")).to_have_value("20")

    # Rename, then delete.
    page.get_by_role("button", name="Rename chat What is the capital of France?").click()
    page.get_by_label("New name for chat What is the capital of France?").fill("Capitals")
    page.get_by_label("New name for chat What is the capital of France?").press("Enter")
    expect(page.get_by_role("button", name="Capitals", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Capitals")).to_be_visible()
    assert user.api("GET", f"/sessions/{session_id}").json()["name"] == "Capitals"
    shots(page, "renamed")
    page.get_by_role("button", name="Delete chat Capitals").click()
    expect(page.get_by_text("No saved chats yet.")).to_be_visible()
    assert user.api("GET", f"/sessions/{session_id}").status_code == 404
    assert user.api("GET", "/sessions").json() == {"sessions": []}
    shots(page, "deleted")


def test_stop_aborts_the_answer_and_keeps_what_arrived(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    sign_in(page, lisa, user)
    page.get_by_role("button", name="Parameters", exact=True).click()
    page.get_by_label("Max tokens").fill("400")
    page.get_by_role("button", name="Parameters", exact=True).click()
    send(page, "Write a long story about a dragon who learns to bake bread.")
    page.wait_for_function(
        "() => { const m = document.querySelector('.message.streaming .content');"
        " return m && m.textContent.trim().split(/\\s+/).length >= 3; }",
        timeout=ANSWER_TIMEOUT_MS,
    )
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#status")).to_have_text("Stopped. The partial answer is kept.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator("#messages .message.assistant .meta")).to_contain_text("stopped")
    shots(page, "stopped")
    shown = assistant_texts(page)[-1].strip()
    assert shown
    session_id = user.api("GET", "/sessions").json()["sessions"][0]["sessionId"]
    saved = user.api("GET", f"/sessions/{session_id}").json()["messages"][-1]
    assert saved["metadata"]["stopped"] is True
    assert "finishReason" not in saved["metadata"]  # it never finished
    assert saved["content"].split()[:3] == shown.split()[:3]


def test_an_expired_api_key_is_explained_and_leads_back_to_login(
    page: Page, lisa: Any, user: User, shots: Screenshots
) -> None:
    expired = make_user(lisa, expiration=1)
    page.goto(lisa.url)
    page.get_by_label("API key").fill(expired.token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    alert = page.locator("#login-error")
    expect(alert).to_contain_text("Your API key was refused")
    expect(alert).to_contain_text("expired")
    expect(page.get_by_label("API key")).to_be_focused()
    shots(page, "expired-at-login")

    # A key that expires while the user is chatting: the next request brings the login back, with the reason.
    sign_in(page, lisa, user)
    # Let the sign-in's own listings finish first: one refused mid-flight would show the login before the
    # message is typed, and the Enter meant for the message would submit the empty login form.
    page.wait_for_load_state("networkidle")
    user.expire_token()
    send(page, "Hello?")
    expect(page.get_by_role("heading", name="Sign in to LISA")).to_be_visible()
    expect(alert).to_contain_text("expired")
    expect(alert).to_contain_text("sign in again")
    shots(page, "expired-while-chatting")


def test_bad_request_errors_are_shown_in_words(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    sign_in(page, lisa, user)
    page.get_by_role("button", name="Parameters", exact=True).click()
    page.get_by_label("Max tokens").fill("100000")
    page.get_by_role("button", name="Parameters", exact=True).click()
    send(page, "Hi")
    alert = page.locator("#alert")
    expect(alert).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(alert).to_contain_text("LISA could not answer:")
    assert "HTTP" not in alert.inner_text() or "token" in alert.inner_text().lower()
    expect(page.locator("#messages .message.assistant")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    shots(page, "bad-request")


def test_keyboard_use_and_labels(page: Page, lisa: Any, user: User) -> None:
    page.goto(lisa.url)
    # Focus starts on single sign-on; the order then follows the reading order.
    expect(page.get_by_role("button", name="Sign in with single sign-on")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(user.token)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Model")).to_be_enabled()

    # Every control of the chat view has an accessible name.
    for label in ("Model", "Message"):
        expect(page.get_by_label(label)).to_be_visible()
    page.get_by_role("button", name="Parameters", exact=True).click()
    for label in ("System prompt", "Temperature", "Top p", "Top k", "Max tokens"):
        expect(page.get_by_label(label)).to_be_visible()
    expect(page.get_by_label("System prompt")).to_be_focused()  # opening the panel moves focus into it
    page.get_by_role("button", name="Parameters", exact=True).click()
    log = page.get_by_role("log", name="Conversation")
    assert log.get_attribute("aria-live") == "polite"

    # Shift+Enter makes a new line; Enter sends; the message keeps its lines.
    box = page.get_by_label("Message")
    box.focus()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    assert user.api("GET", "/sessions").json()["sessions"] == []
    page.keyboard.press("Enter")
    expect(page.locator("#messages .message.user .content")).to_have_text(["first line\nsecond line"])
    expect(box).to_have_value("")
    expect(page.get_by_role("button", name="Stop")).to_be_focused()  # the way out of a long answer is at hand
    wait_for_answer(page)
    expect(box).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()


def test_phone_width(
    browser: Browser, lisa: Any, user: User, shots: Screenshots, csp_violations: list[CspViolations]
) -> None:
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "has_touch": True}
    context = watched_context(browser, csp_violations, **phone)
    page = context.new_page()
    try:
        sign_in(page, lisa, user)
        send(page, "Say hello in French.")
        wait_for_answer(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
        for name in ("Send", "Chats", "Parameters"):
            box = page.get_by_role("button", name=name, exact=True).bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 390
        shots(page, "phone-chat")
        page.get_by_role("button", name="Chats", exact=True).click()
        sessions_panel = page.get_by_role("navigation", name="Chat sessions")
        expect(sessions_panel).to_be_visible()
        expect(page.get_by_role("button", name="Say hello in French.", exact=True)).to_be_in_viewport(ratio=1)
        # a function, not an expression string: Playwright evals those in the page, which the UI's CSP refuses
        page.wait_for_function("() => getComputedStyle(document.getElementById('sessions-panel')).transform === 'none'")
        shots(page, "phone-sessions")
        page.keyboard.press("Escape")
        expect(sessions_panel).to_be_hidden()
        expect(page.get_by_role("button", name="Chats", exact=True)).to_be_focused()
        page.get_by_role("button", name="Chats", exact=True).click()
        page.get_by_role("button", name="Close chats").click()  # reachable while the drawer covers the top bar
        expect(sessions_panel).to_be_hidden()
        page.get_by_role("button", name="Parameters", exact=True).click()
        expect(page.get_by_label("Max tokens")).to_be_in_viewport()
        shots(page, "phone-parameters")
        page.get_by_role("button", name="Close parameters").click()
        expect(page.get_by_label("Max tokens")).to_be_hidden()
    finally:
        context.close()


def test_single_sign_on_with_pkce(page: Page, lisa: Any, oidc_idp: OidcIssuer, shots: Screenshots) -> None:
    oidc_idp.login_as("oidc-alice", groups=["lisa-users"], email="alice@example.com")
    page.goto(lisa.url)
    page.get_by_role("button", name="Sign in with single sign-on").click()
    expect(page.get_by_label("Model")).to_be_enabled()
    expect(page).not_to_have_url(re.compile(r"[?&](code|state)="))  # consumed, and gone from the address bar
    expect(page.get_by_text("Signed in: oidc-alice")).to_be_visible()
    send(page, "Hello from single sign-on")
    wait_for_answer(page)
    shots(page, "sso-chat")
    # The session belongs to the OIDC user (read back with a JWT from the same issuer).
    jwt = oidc_idp.mint(username="oidc-alice", groups=["lisa-users"])
    mine = User("oidc-alice", jwt, "", lisa.url).api("GET", "/sessions").json()["sessions"]
    assert [s["name"] for s in mine] == ["Hello from single sign-on"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{lisa.url}/**")
    expect(page.get_by_role("heading", name="Sign in to LISA")).to_be_visible()


def test_model_output_is_rendered_as_sanitized_markdown(page: Page, lisa: Any, user: User, shots: Screenshots) -> None:
    hostile = (
        "**bold** and `code`\n\n```python\nprint('hi')\n```\n\n"
        '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
        "[click](javascript:window.__xss=3) [docs](https://example.com) ![a pixel](https://images.example.invalid/p.png)"
    )
    created = user.api(
        "PUT",
        "/sessions/markdown-check",
        json={
            "name": "Markdown",
            "messages": [{"role": "user", "content": "<b>not bold</b>"}, {"role": "assistant", "content": hostile}],
        },
    )
    assert created.status_code == 201, created.text
    sign_in(page, lisa, user)
    page.get_by_role("button", name="Markdown", exact=True).click()
    answer = page.locator("#messages .message.assistant .content")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("pre code")).to_have_text("print('hi')")
    expect(answer.locator("img, script")).to_have_count(0)
    expect(answer).to_contain_text("click")
    expect(answer.locator("[href^='javascript'], [onerror], [onclick]")).to_have_count(0)
    assert answer.get_by_role("link", name="docs").get_attribute("rel") == "noopener noreferrer"
    # raw HTML is shown as text, an image as a link: the page fetches nothing a model names
    expect(answer).to_contain_text('<img src=x onerror="window.__xss=1">')
    pixel = answer.get_by_role("link", name="a pixel")
    assert pixel.get_attribute("href") == "https://images.example.invalid/p.png"
    assert page.evaluate("window.__xss") is None
    expect(page.locator("#messages .message.user .content")).to_have_text("<b>not bold</b>")
    shots(page, "markdown")


def test_documents_uploaded_in_the_ui_ground_a_rag_answer_that_lists_them(
    page: Page, lisa: Any, user: User, shots: Screenshots
) -> None:
    sign_in(page, lisa, user)
    page.get_by_label("Model").select_option(TEXTGEN_MODEL)
    page.get_by_role("button", name="Parameters", exact=True).click()
    page.get_by_label("Use documents from a repository").check()
    repository = page.get_by_label("Repository", exact=True)
    expect(repository).to_be_enabled()
    repository.select_option("default")

    # Upload through the UI: the API's presigned URL, a cross-origin PUT to the bucket, then ingestion.
    files = page.get_by_label("Add documents")
    files.set_input_files(
        [
            {"name": "ui-mascot.txt", "mimeType": "text/plain", "buffer": MASCOT},
            {"name": "broken.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.7 this is not a pdf"},
        ]
    )
    expect(page.locator("#document-status")).to_have_text("Done, with failures (see the list).", timeout=120_000)
    documents = page.get_by_role("list", name="Documents in this repository")
    expect(documents.locator("li", has_text="ui-mascot.txt")).to_contain_text("ready, 1 passage")
    expect(documents.locator("li", has_text="broken.pdf")).to_contain_text("failed: ")
    documents.scroll_into_view_if_needed()
    shots(page, "documents-uploaded")

    temperature = page.get_by_label("Temperature")
    temperature.focus()
    temperature.press("Home")  # greedy: a stable answer from the small model
    page.get_by_role("button", name="Close parameters").click()
    with page.expect_request("**/v1/openai/chat/completions") as sent:
        send(page, "What is the LISA project mascot?")
    wait_for_answer(page)
    assert json.loads(sent.value.post_data or "{}")["lisa_rag"]["repositoryId"] == "default"
    assert "octopus" in assistant_texts(page)[-1].lower()
    sources = page.locator("#messages .message.assistant details.sources").last
    expect(sources.locator("summary")).to_contain_text("Sources (")
    sources.locator("summary").click()
    # labelled as the answer cites it ("[1] filename[, page p]"), not by its s3:// URI
    expect(sources.locator("li").first).to_have_text(re.compile(r"^\[1\] ui-mascot\.txt \(score \d\.\d\d\)$"))
    shots(page, "rag-answer-with-sources")


def test_the_ui_works_under_an_api_gateway_stage_path(page: Page, lisa: Any, user: User) -> None:
    """Deployed, the UI lives at https://<api>/prod/: its bundles, API calls and token stream must keep the prefix."""
    proxy = AppThread(lambda: stage_path_proxy(lisa.url, "prod"))
    base = proxy.start()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(f"{base}/prod/")
        page.get_by_label("API key").fill(user.token)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_label("Model")).to_be_enabled()
        page.get_by_label("Model").select_option(TEXTGEN_MODEL)
        send(page, "Say hello.")
        wait_for_answer(page)
        assert assistant_texts(page)[-1].strip()
        page.reload()
        expect(page.locator("#session-list li")).to_have_count(1)
    finally:
        proxy.stop()
    ours = [url for url in requested if url.startswith(base)]
    assert {url[len(base) :].split("?")[0] for url in ours} >= {"/prod/", "/prod/ui/config", "/prod/sessions"}
    assert any(url.startswith(f"{base}/prod/v1/openai/chat/completions") for url in ours)
    assert all(url.startswith(f"{base}/prod/") for url in ours), [u for u in ours if not u.startswith(f"{base}/prod/")]


def test_the_ui_is_served_under_a_strict_csp_and_a_violation_would_fail_the_tests(
    page: Page, lisa: Any, user: User, csp_violations: list[CspViolations]
) -> None:
    """Every browser test fails on a CSP violation (the `_no_csp_violations` check); this one proves the check sees
    one: the UI works under its policy, then an inline script and a foreign image are refused and reported."""
    response = page.goto(lisa.url)
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["server"] == "LISA"
    sign_in(page, lisa, user)
    assert not csp_violations[0]
    page.evaluate("""() => {
      const script = document.createElement("script");
      script.textContent = "window.injected = true";
      document.body.append(script);
      const image = document.createElement("img");
      image.src = "https://images.example.invalid/pixel.png";
      document.body.append(image);
    }""")
    for _ in range(100):  # the reports arrive asynchronously
        seen = " ".join(csp_violations[0])
        if "script-src" in seen and "img-src" in seen:
            break
        page.wait_for_timeout(50)
    assert "script-src" in seen, seen
    assert "img-src" in seen, seen
    assert page.evaluate("window.injected") is None
    csp_violations[0].clear()  # seen as intended: this test must not fail the check
