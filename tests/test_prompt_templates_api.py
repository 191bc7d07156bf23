"""The prompt-templates API over real HTTP: app.py behind the local front door on loopback, moto server for
DynamoDB, real API tokens through the real authorizer. CRUD, who sees and changes what (two users in a shared
group, an outsider, an admin), and bad input answered with a 400/403 naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chalicelib.auth.authorizer import get_authorizer
from chalicelib.auth.tokens import TokenStore
from tests.support.control_plane import Client, control_plane_url


@pytest.fixture(scope="module")
def api_url(moto_server: str) -> Iterator[str]:
    """The control plane (app.py) served on a loopback port by the runner's front door."""
    with control_plane_url(workers=4) as url:
        yield url


class People:
    """Alice and Bob share team-a; Carol is in team-c only; the admin is in team-a too."""

    def __init__(self, api_url: str) -> None:
        store = TokenStore()
        self.alice = Client(api_url, store.create(username="alice", groups=["team-a"])[0])
        self.bob = Client(api_url, store.create(username="bob", groups=["team-a", "team-b"])[0])
        self.carol = Client(api_url, store.create(username="carol", groups=["team-c"])[0])
        self.admin = Client(api_url, store.create(username="root", groups=["team-a"], is_admin=True)[0])


@pytest.fixture
def people(aws_env: str, api_url: str) -> People:
    get_authorizer().clear_cache()
    return People(api_url)


def _template(**overrides: Any) -> dict[str, Any]:
    return {"title": "Summarise", "kind": "directive", "body": "Summarise {{text}} in {{words}} words", **overrides}


def _error(response: requests.Response) -> str:
    return str(response.json().get("Message"))


def _create(client: Client, **overrides: Any) -> dict[str, Any]:
    created = client.call("POST", "/prompt-templates", _template(**overrides))
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _listed(client: Client, query: str = "") -> list[str]:
    answer = client.call("GET", f"/prompt-templates{query}")
    assert answer.status_code == 200, answer.text
    return [t["title"] for t in answer.json()["templates"]]


def test_create_get_list_replace_delete(people: People) -> None:
    created = _create(people.alice, body="Use {{tone}}: {{text}}; again {{tone}}", description="for notes")
    template_id = created["templateId"]
    assert len(template_id) == 32
    assert created["placeholders"] == ["tone", "text"]  # order of first appearance, once each
    assert {k: created[k] for k in ("title", "kind", "description", "visibility", "groups", "owner", "editable")} == {
        "title": "Summarise",
        "kind": "directive",
        "description": "for notes",
        "visibility": "private",
        "groups": [],
        "owner": "alice",
        "editable": True,
    }
    assert created["createdAt"] == created["updatedAt"]
    got = people.alice.call("GET", f"/prompt-templates/{template_id}")
    assert got.status_code == 200
    assert got.json() == created
    listed = people.alice.call("GET", "/prompt-templates").json()["templates"]
    assert listed == [created]

    replaced = people.alice.call(
        "PUT", f"/prompt-templates/{template_id}", {"title": "Pirate", "kind": "persona", "body": "You are a {{x}}"}
    )
    assert replaced.status_code == 200, replaced.text
    after = replaced.json()
    assert (after["templateId"], after["title"], after["kind"], after["description"]) == (
        template_id,
        "Pirate",
        "persona",
        "",  # a full replace: what the body leaves out is reset
    )
    assert after["placeholders"] == []  # a persona is a system prompt: no placeholders
    assert after["createdAt"] == created["createdAt"]
    assert after["updatedAt"] >= created["updatedAt"]

    deleted = people.alice.call("DELETE", f"/prompt-templates/{template_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": template_id}
    assert people.alice.call("GET", f"/prompt-templates/{template_id}").status_code == 404
    assert people.alice.call("DELETE", f"/prompt-templates/{template_id}").status_code == 404
    assert people.alice.call("PUT", f"/prompt-templates/{template_id}", _template()).status_code == 404
    assert _listed(people.alice) == []


def test_the_list_is_own_group_shared_and_global_by_title_and_filters_by_kind(people: People) -> None:
    _create(people.alice, title="b private")
    _create(people.alice, title="A shared", visibility="groups", groups=["team-a"], kind="persona")
    _create(people.bob, title="c bob's team-b", visibility="groups", groups=["team-b"])
    _create(people.admin, title="D global", visibility="global")
    _create(people.carol, title="e carol's", visibility="groups", groups=["team-c"])

    assert _listed(people.alice) == ["A shared", "b private", "D global"]
    assert _listed(people.bob) == ["A shared", "c bob's team-b", "D global"]
    assert _listed(people.carol) == ["D global", "e carol's"]
    assert _listed(people.admin) == ["A shared", "D global"]  # admins are not special for visibility
    assert _listed(people.alice, "?kind=persona") == ["A shared"]
    assert _listed(people.alice, "?kind=directive") == ["b private", "D global"]
    editable = {t["title"]: t["editable"] for t in people.bob.call("GET", "/prompt-templates").json()["templates"]}
    assert editable == {"A shared": False, "c bob's team-b": True, "D global": False}
    as_admin = {t["title"]: t["editable"] for t in people.admin.call("GET", "/prompt-templates").json()["templates"]}
    assert as_admin == {"A shared": True, "D global": True}


def test_others_private_templates_are_404_and_visible_but_foreign_ones_403(people: People) -> None:
    private = _create(people.alice)["templateId"]
    shared = _create(people.alice, visibility="groups", groups=["team-a"])["templateId"]
    for client in (people.bob, people.carol, people.admin):
        for method, body in (("GET", None), ("PUT", _template()), ("DELETE", None)):
            answer = client.call(method, f"/prompt-templates/{private}", body)
            assert answer.status_code == 404, (method, answer.text)
            assert "alice" not in answer.text
    assert people.carol.call("GET", f"/prompt-templates/{shared}").status_code == 404  # not in team-a
    seen = people.bob.call("GET", f"/prompt-templates/{shared}")
    assert seen.status_code == 200
    assert seen.json()["editable"] is False
    assert seen.json()["owner"] == "alice"
    for method, body in (("PUT", _template(title="mine now")), ("DELETE", None)):
        refused = people.bob.call(method, f"/prompt-templates/{shared}", body)
        assert refused.status_code == 403, refused.text
        assert "only they or an admin" in _error(refused)
    assert people.alice.call("GET", f"/prompt-templates/{shared}").json()["title"] == "Summarise"

    moderated = people.admin.call(
        "PUT", f"/prompt-templates/{shared}", _template(title="Moderated", visibility="global")
    )
    assert moderated.status_code == 200, moderated.text
    assert (moderated.json()["owner"], moderated.json()["visibility"]) == ("alice", "global")  # the owner stays
    assert _listed(people.carol) == ["Moderated"]  # global now
    assert people.admin.call("DELETE", f"/prompt-templates/{shared}").status_code == 200
    assert _listed(people.alice) == ["Summarise"]


def test_only_admins_go_global_and_users_share_only_with_their_groups(people: People) -> None:
    refused = people.alice.call("POST", "/prompt-templates", _template(visibility="global"))
    assert refused.status_code == 403, refused.text
    assert _error(refused).startswith("visibility:")
    foreign = people.alice.call("POST", "/prompt-templates", _template(visibility="groups", groups=["team-a", "x"]))
    assert foreign.status_code == 403, foreign.text
    assert _error(foreign) == "groups: you are not a member of 'x'"
    own = _create(people.alice)["templateId"]
    keep_global = people.alice.call("PUT", f"/prompt-templates/{own}", _template(visibility="global"))
    assert keep_global.status_code == 403
    assert _error(keep_global).startswith("visibility:")
    assert _create(people.admin, visibility="groups", groups=["anything"])["groups"] == ["anything"]
    published = _create(people.admin, title="House style", visibility="global")["templateId"]
    demoted = people.admin.call("PUT", f"/prompt-templates/{published}", _template(visibility="private"))
    assert demoted.status_code == 200
    assert people.alice.call("GET", f"/prompt-templates/{published}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "persona", "body": "x"}, "title"),
        (_template(title=""), "title"),
        (_template(title="   "), "title"),
        (_template(title="t" * 201), "title"),
        (_template(kind="macro"), "kind"),
        (_template(body=""), "body"),
        (_template(body="b" * 20_001), "body"),
        (_template(description="d" * 1001), "description"),
        (_template(visibility="public"), "visibility"),
        (_template(visibility="groups"), "groups"),
        (_template(visibility="groups", groups=[]), "groups"),
        (_template(visibility="private", groups=["team-a"]), "groups"),
        (_template(visibility="groups", groups=[""]), "groups.0"),
        (_template(owner="bob"), "owner"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(people: People, body: dict[str, Any], field: str) -> None:
    for method, path in (
        ("POST", "/prompt-templates"),
        ("PUT", f"/prompt-templates/{_create(people.alice)['templateId']}"),
    ):
        answer = people.alice.call(method, path, body)
        assert answer.status_code == 400, (method, answer.text)
        assert _error(answer).startswith(f"{field}:"), _error(answer)


def test_bad_ids_queries_and_json_are_400(people: People) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = people.alice.call(method, "/prompt-templates/not-an-id", _template() if method == "PUT" else None)
        assert answer.status_code == 400, answer.text
        assert _error(answer).startswith("templateId:")
    assert _error(people.alice.call("GET", "/prompt-templates?kind=macro")).startswith("kind:")
    assert people.alice.call("POST", "/prompt-templates", raw=b"{").status_code == 400
    assert people.alice.call("POST", "/prompt-templates", raw=b"[]").status_code == 400
    unauthenticated = requests.get(people.alice.base + "/prompt-templates", timeout=30)
    assert unauthenticated.status_code == 401
