"""The admin "Models" page (issue 16 item 6) in a real browser against the local stack: the real API, the real
lifecycle workflow on moto's interpreter and the local ECS agent running a real TGI-protocol engine.

An endpoint registered by URL is InService at once and stops/starts; the form refuses what the API refuses (the
same fields as pydantic names) and shows the API's own 4xx; a hosted model whose weights are not staged ends Failed
with the step and the reason; a hosted model scales, starts (its engine comes up) and stops through its buttons;
a non-admin sees no Models page and the API refuses them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from pydantic import ValidationError

from chalicelib import aws
from chalicelib.auth.tokens import TokenStore
from chalicelib.registry.models import CreateModelRequest
from testkit.workers import TGI_ENVIRONMENT
from tests.browser.conftest import Screenshots, User
from tests.browser.test_chat_ui import TEXTGEN_MODEL, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # staged by the stack (its chat model's weights)
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.4"
BUSY = {"Creating", "Starting", "Stopping", "Updating", "Deleting"}
UI_MS = 30_000  # a loaded 2-core machine
SETTLE_MS = 90_000  # an engine start on a loaded 2-core machine


@pytest.fixture
def admin(lisa: Any) -> User:
    username = f"ui-admin-{uuid.uuid4().hex[:8]}"
    token, record = TokenStore().create(username=username, groups=(), is_admin=True, description="models admin")
    return User(username=username, token=token, token_id=record.token_id, base=lisa.url)


@pytest.fixture
def quick_workflows(lisa: Any) -> Iterator[None]:
    """The workflows poll every second (not every 15 s): the stack's control plane runs in this process."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LISA_MODEL_POLL_SECONDS", "1")
        aws.reset()
        yield
    aws.reset()


def open_models(page: Page) -> Locator:
    button = page.get_by_role("button", name="Models", exact=True)
    expect(button).to_be_visible(timeout=UI_MS)  # once GET /tokens has said the caller is an administrator
    button.click()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    return page.locator("#models-view")


def row(view: Locator, name: str) -> Locator:
    return view.locator(f'tr[data-model-id="{name}"]')


def settled(admin: User, name: str, timeout: float = SETTLE_MS / 1000) -> dict[str, Any] | None:
    """The record once no workflow owns it (None once it is gone), read through the API."""
    deadline = time.monotonic() + timeout
    while True:
        response = admin.api("GET", f"/models/{name}")
        if response.status_code == 404:
            return None
        record: dict[str, Any] = response.json()
        if record["status"] not in BUSY or time.monotonic() > deadline:
            assert record["status"] not in BUSY, record
            return record
        time.sleep(0.2)


def stopped_tgi(name: str) -> dict[str, Any]:
    """POST /models of a hosted TGI model on the staged SmolLM2, created stopped (its infrastructure, no engine)."""
    return {
        "modelName": name,
        "hfModelId": SMOL,
        "inferenceContainer": "tgi",
        "containerConfig": {"image": TGI_IMAGE, "environment": TGI_ENVIRONMENT},
        "hosting": {"enabled": False},
    }


def refused_fields(body: dict[str, Any]) -> set[str]:
    """The wire paths pydantic (the API's validation) names for `body`."""
    try:
        CreateModelRequest.model_validate(body)
    except ValidationError as error:
        return {".".join(str(part) for part in e["loc"]) for e in error.errors()}
    return set()


def named_fields(alert: str) -> set[str]:
    return set(re.findall(r"(?:^|\. )([A-Za-z][A-Za-z0-9_.]*): ", alert))


def agree(form_fields: set[str], api_fields: set[str]) -> bool:
    """Every field the form names is one the API names (or inside it), and the other way round."""

    def inside(field: str, fields: set[str]) -> bool:
        return any(field == f or field.startswith(f"{f}.") or f.startswith(f"{field}.") for f in fields)

    return all(inside(f, api_fields) for f in form_fields) and all(inside(f, form_fields) for f in api_fields)


def test_a_non_admin_sees_no_models_page(page: Page, lisa: Any, user: User) -> None:
    sign_in(page, lisa, user)
    expect(page.get_by_role("button", name="Usage", exact=True)).to_be_visible()
    expect(page.locator("#toggle-models")).to_be_hidden()
    body = {"modelName": "mine", "hfModelId": "org/mine", "inferenceContainer": "vllm", "endpointUrl": "http://h:1"}
    refused = user.api("POST", "/models", json=body)
    assert refused.status_code == 403, refused.text


def test_an_endpoint_registers_in_service_stops_starts_and_is_deleted(
    page: Page, lisa: Any, admin: User, shots: Screenshots
) -> None:
    sign_in(page, lisa, admin)
    view = open_models(page)
    expect(row(view, TEXTGEN_MODEL)).to_contain_text("In service")  # config.yaml's, managed there
    expect(row(view, TEXTGEN_MODEL)).to_contain_text("Change it in config.yaml")

    view.get_by_role("button", name="Add a model").click()
    form = view.locator("form.models-form")
    form.get_by_label("An existing endpoint (by URL)").check()
    expect(form.get_by_label("Endpoint URL")).to_be_visible()
    expect(form.get_by_label("Container image")).to_be_hidden()

    # what the form refuses is what the API refuses: the same fields, before anything is sent
    cases = [
        {"modelName": "-bad", "hfModelId": "no-slash", "endpointUrl": "ftp://somewhere"},
        {"modelName": "x" * 64, "hfModelId": "org/ok", "endpointUrl": "http://h:1/v1?x=1"},
    ]
    alert = form.locator("[role=alert]")
    for case in cases:
        form.get_by_label("Name", exact=True).fill(case["modelName"])
        form.get_by_label("Hugging Face model id").fill(case["hfModelId"])
        form.get_by_label("Endpoint URL").fill(case["endpointUrl"])
        form.get_by_role("button", name="Create model").click()
        expect(alert).to_be_visible()
        api = refused_fields({**case, "inferenceContainer": "vllm"})
        assert api, case
        assert agree(named_fields(alert.inner_text()), api), (alert.inner_text(), api)
    expect(form.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "")
    shots(page, "form-refuses")

    # the server's refusal, in its words: the name is taken
    url = lisa.endpoints[TEXTGEN_MODEL]
    form.get_by_label("Name", exact=True).fill(TEXTGEN_MODEL)
    form.get_by_label("Hugging Face model id").fill(SMOL)
    form.get_by_label("Endpoint URL").fill(url)
    form.get_by_role("button", name="Create model").click()
    expect(alert).to_contain_text("LISA refused:")
    expect(alert).to_contain_text(TEXTGEN_MODEL)

    name = f"byo-{uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_role("button", name="Create model").click()
    expect(form).to_have_count(0)
    mine = row(view, name)
    expect(mine).to_contain_text("In service")
    expect(mine).to_contain_text(url)
    expect(mine).to_contain_text("Registered by URL")
    assert admin.api("GET", f"/models/{name}").json()["status"] == "InService"
    shots(page, "endpoint-in-service")

    mine.get_by_role("button", name=f"Stop {name}").click()
    expect(mine.locator(".models-state")).to_have_text("Stopped")
    expect(mine).to_contain_text("stopped by an administrator")
    expect(mine.get_by_role("button", name=f"Start {name}")).to_be_focused()
    mine.get_by_role("button", name=f"Start {name}").click()
    expect(mine.locator(".models-state")).to_have_text("In service")

    mine.get_by_role("button", name=f"Delete {name}").click()  # the page fixture accepts the confirmation
    expect(mine).to_have_count(0)
    assert admin.api("GET", f"/models/{name}").status_code == 404


def test_a_hosted_model_without_staged_weights_fails_with_the_step_and_reason(
    page: Page, lisa: Any, admin: User, shots: Screenshots, quick_workflows: None
) -> None:
    sign_in(page, lisa, admin)
    view = open_models(page)
    view.get_by_role("button", name="Add a model").click()
    form = view.locator("form.models-form")
    expect(form.get_by_label("Name", exact=True)).to_be_focused()
    name = f"ghost-{uuid.uuid4().hex[:6]}"
    form.get_by_label("Name", exact=True).fill(name)
    form.get_by_label("Hugging Face model id").fill("nobody/missing")
    form.get_by_label("Engine", exact=True).select_option("tgi")
    expect(form.get_by_label("Container image")).to_have_value(TGI_IMAGE)
    # a scaling the API refuses (min above max) is named before sending
    form.get_by_label("Minimum").fill("3")
    form.get_by_role("button", name="Create model").click()
    alert = form.locator("[role=alert]")
    expect(alert).to_contain_text("hosting.scaling.minCapacity: must not exceed maxCapacity")
    body = {
        "modelName": name,
        "hfModelId": "nobody/missing",
        "inferenceContainer": "tgi",
        "containerConfig": {"image": TGI_IMAGE},
        "hosting": {"scaling": {"minCapacity": 3, "maxCapacity": 1}},
    }
    assert agree(named_fields(alert.inner_text()), refused_fields(body))
    form.get_by_label("Minimum").fill("1")
    form.get_by_role("button", name="Create model").click()

    mine = row(view, name)
    expect(mine.locator(".models-state")).to_have_text("Failed", timeout=SETTLE_MS)
    failure = mine.locator(".models-failure")
    expect(failure).to_contain_text("Failed in step StageWeights (staging the weights).")
    expect(failure).to_contain_text("StageWeights failed: staging nobody/missing")
    record = settled(admin, name)
    assert record is not None
    assert (record["status"], record["statusStep"]) == ("Failed", "StageWeights"), record
    expect(mine.locator(".models-reason")).to_have_text(record["statusReason"])
    mine.locator("summary", has_text="History").click()
    expect(mine.locator(".models-history li").first).to_contain_text("Failed, StageWeights")
    shots(page, "hosted-failed")

    mine.get_by_role("button", name=f"Delete {name}").click()
    expect(mine).to_have_count(0, timeout=SETTLE_MS)
    assert settled(admin, name) is None


def test_a_hosted_model_scales_starts_and_stops(
    page: Page, lisa: Any, admin: User, shots: Screenshots, quick_workflows: None
) -> None:
    name = f"smol-{uuid.uuid4().hex[:6]}"
    created = admin.api("POST", "/models", json=stopped_tgi(name))
    assert created.status_code == 202, created.text
    try:
        record = settled(admin, name)
        assert record is not None
        assert record["status"] == "Stopped", record
        sign_in(page, lisa, admin)
        view = open_models(page)
        mine = row(view, name)
        expect(mine.locator(".models-state")).to_have_text("Stopped")
        expect(mine).to_contain_text("Stopped: would run 1 task (min 1, max 1)")

        mine.get_by_role("button", name=f"Scale {name}").click()
        form = view.locator("form.models-form")
        form.get_by_label("Maximum tasks").fill("0")
        form.get_by_role("button", name="Scale", exact=True).click()
        expect(form.locator("[role=alert]")).to_contain_text("maxCapacity: must be a whole number from 1 to 100")
        form.get_by_label("Maximum tasks").fill("2")
        form.get_by_role("button", name="Scale", exact=True).click()
        expect(form).to_have_count(0)
        expect(mine).to_contain_text("(min 1, max 2)", timeout=SETTLE_MS)
        expect(mine.locator(".models-state")).to_have_text("Stopped", timeout=SETTLE_MS)

        mine.get_by_role("button", name=f"Start {name}").click()
        expect(mine.locator(".models-state")).to_have_text("Starting")
        expect(mine.locator(".models-step")).to_be_visible()
        shots(page, "hosted-starting")
        expect(mine.locator(".models-state")).to_have_text("In service", timeout=SETTLE_MS)
        expect(mine).to_contain_text("Runs 1 task (min 1, max 2)")
        record = settled(admin, name)
        assert record is not None
        assert (record["status"], bool(record["endpointUrl"])) == ("InService", True), record
        shots(page, "hosted-in-service")

        mine.get_by_role("button", name=f"Stop {name}").click()
        expect(mine.locator(".models-state")).to_have_text("Stopped", timeout=SETTLE_MS)
        record = settled(admin, name)
        assert record is not None
        assert (record["status"], record["hosting"]["enabled"]) == ("Stopped", False), record
    finally:
        record = settled(admin, name)
        if record is not None:
            admin.api("DELETE", f"/models/{name}")
            assert settled(admin, name) is None


def test_a_hosted_model_gets_a_schedule_with_its_next_start_and_stop(
    page: Page, lisa: Any, admin: User, shots: Screenshots, quick_workflows: None
) -> None:
    name = f"night-{uuid.uuid4().hex[:6]}"
    assert admin.api("POST", "/models", json=stopped_tgi(name)).status_code == 202
    try:
        assert settled(admin, name) is not None
        sign_in(page, lisa, admin)
        view = open_models(page)
        mine = row(view, name)
        mine.get_by_role("button", name=f"Schedule {name}").click()
        form = view.locator("form.models-form")
        form.get_by_label("Time zone (IANA)").fill("Mars/Olympus")
        form.get_by_role("button", name="Save schedule").click()
        expect(form.locator("[role=alert]")).to_contain_text("schedule.timezone: unknown IANA time zone")
        form.get_by_label("Time zone (IANA)").fill("Europe/Berlin")
        form.get_by_label("In weekly windows").check()
        form.get_by_role("button", name="Add a window").click()
        window = form.locator("fieldset[data-window='1']")
        window.get_by_label("MON").check()
        window.get_by_label("Start").fill("09:00")
        window.get_by_label("Stop").fill("10:00")
        form.get_by_role("button", name="Save schedule").click()
        expect(form.locator("[role=alert]")).to_contain_text("overlaps or touches weekly.0 on MON")
        form.get_by_role("button", name="Remove window 2").click()
        form.get_by_role("button", name="Save schedule").click()
        expect(form).to_have_count(0)
        expect(mine.locator(".models-schedule")).to_contain_text(
            "Schedule (Europe/Berlin): MON,TUE,WED,THU,FRI 08:00\u201320:00."
        )
        expect(mine.locator(".models-schedule")).to_contain_text("Next start")
        record = admin.api("GET", f"/models/{name}").json()
        assert record["schedule"]["weekly"][0]["days"] == ["MON", "TUE", "WED", "THU", "FRI"], record
        assert record["scheduleStatus"]["nextStart"], record
        assert record["scheduleStatus"]["nextStop"], record
        shots(page, "hosted-schedule")
    finally:
        if settled(admin, name) is not None:
            admin.api("DELETE", f"/models/{name}")
            assert settled(admin, name) is None
