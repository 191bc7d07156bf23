"""Browser tests: Debian's Chromium driven by Playwright against the whole local LISA stack.

The stack is `runner.stack.LocalLisa` (what `make run` starts), in this process: moto server for AWS, the real
CPU model worker, the router and the Chalice control plane behind one front door, and the built UI. A local OIDC
issuer is configured as AUTHORITY so the single sign-on login is tested for real too.
Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from chalicelib import aws
from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from runner.moto_fixes import serialize_moto_dynamodb
from testkit.oidc_issuer import OidcIssuer
from tests.support.stacks import own_aws
from workers.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_CLIENT_ID = "lisa-webui"


@pytest.fixture(scope="package")
def oidc_idp() -> Iterator[OidcIssuer]:
    with OidcIssuer(client_id=UI_CLIENT_ID, groups_claim="groups") as idp:
        yield idp


@pytest.fixture(scope="package")
def lisa(oidc_idp: OidcIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local stack with the built UI; `.url` is its one front door."""
    from runner.stack import LocalLisa, StackOptions

    webui = ROOT / "webui" / "dist"
    if not (webui / "index.html").is_file():
        pytest.fail("the web UI is not built: run `make webui`")
    with own_aws() as env:
        env.setenv("LISA_AUTHORITY", oidc_idp.issuer)
        env.setenv("LISA_CLIENT_ID", oidc_idp.client_id)
        serialize_moto_dynamodb()
        aws.reset()
        stack = LocalLisa(StackOptions(port=free_port(), state_dir=tmp_path_factory.mktemp("lisa"), webui_dir=webui))
        try:
            _off_the_event_loop(stack.start)
            yield stack
        finally:
            _off_the_event_loop(stack.stop)
    aws.reset()


def _off_the_event_loop(call: Callable[[], object]) -> None:
    """Run `call` in a helper thread: Playwright's sync API keeps an event loop running in this one."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, name="lisa-stack-control")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: run `make browser-deps` (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


# Every page reports what its Content-Security-Policy blocked: a violation breaks the UI silently otherwise.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = event.sourceFile ? ` at ${event.sourceFile}:${event.lineNumber}` : "";
  console.error(`CSP violation: ${event.effectiveDirective} blocked ${event.blockedURI || "inline"}${where}` +
    (event.sample ? ` (${event.sample})` : ""));
});
"""


class CspViolations(list[str]):
    """The CSP violations the pages of one browser context reported (Chromium's own messages and the events)."""

    def __init__(self, context: BrowserContext) -> None:
        super().__init__()
        context.add_init_script(_REPORT_CSP_VIOLATIONS)
        context.on("console", self._seen)

    def _seen(self, message: Any) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("CSP violation"):
            self.append(f"{message.page.url if message.page else '?'}: {message.text}")


@pytest.fixture
def csp_violations() -> list[CspViolations]:
    """Every watched context's violations; the test fails if any page saw one (`watched_context` registers)."""
    return []


def watched_context(browser: Browser, violations: list[CspViolations], **options: Any) -> BrowserContext:
    """A new browser context whose CSP violations fail the test."""
    context = browser.new_context(**options)
    violations.append(CspViolations(context))
    return context


@pytest.fixture(autouse=True)
def _no_csp_violations(csp_violations: list[CspViolations]) -> Iterator[None]:
    yield
    seen = [message for watched in csp_violations for message in watched]
    assert not seen, f"the UI violated its Content-Security-Policy: {seen}"


@pytest.fixture
def context(browser: Browser, csp_violations: list[CspViolations]) -> Iterator[BrowserContext]:
    context = watched_context(browser, csp_violations, viewport={"width": 1280, "height": 800})
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete this chat?" confirmations
    return page


class Screenshots:
    """Numbered screenshots of one test: test-artifacts/screenshots/<test>-<nn>-<step>.png."""

    def __init__(self, test_name: str) -> None:
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, step: str) -> Path:
        self.count += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.count:02d}-{step}.png"
        page.screenshot(path=str(path))
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(request.node.name)


@dataclass
class User:
    """A LISA user with an API token; `api` calls the stack's HTTP API as this user."""

    username: str
    token: str
    token_id: str
    base: str

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def expire_token(self) -> None:
        """Make this user's token expired now, as if its time ran out (and drop cached decisions)."""
        TokenStore().update(self.token_id, expiration=int(time.time()) - 1)
        get_authorizer().clear_cache()


def make_user(lisa: Any, expiration: int | None = None, groups: tuple[str, ...] = ()) -> User:
    username = f"ui-{uuid.uuid4().hex[:8]}"
    token, record = TokenStore().create(
        username=username, groups=groups, expiration=expiration, description="browser test"
    )
    return User(username=username, token=token, token_id=record.token_id, base=lisa.url)


@pytest.fixture
def user(lisa: Any) -> User:
    return make_user(lisa)
