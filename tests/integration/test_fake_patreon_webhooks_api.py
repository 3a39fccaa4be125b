"""The fake's webhook API per creator token, and deliveries per campaign, each signed with its own webhook's secret
(docs/patreon-api.md, "Webhooks API" and "What the fake Patreon reproduces")."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.patreon.jsonapi import parse_member_document
from fakes.patreon import CREATOR_SCOPES, FakePatreon
from fakes.patreon.webhooks import V2_TRIGGERS

UA = {"User-Agent": "fake-patreon-tests/1.0"}
API = "/api/oauth2/v2"
B = "8000001"
FIELDS = {"fields[webhook]": "last_attempted_at,num_consecutive_times_failed,paused,secret,triggers,uri"}


class Receivers:
    """One loopback server, one path per name; each path checks the signature with its own secret only."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.status: dict[str, int] = {}
        self.received: dict[str, list[tuple[str, bytes]]] = {}
        self.refused: dict[str, int] = {}
        self.base = ""
        self._runner: web.AppRunner | None = None

    def url(self, name: str) -> str:
        self.received.setdefault(name, [])
        return f"{self.base}/hook/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        name, raw = request.match_info["name"], await request.read()
        expected = hmac.new(self.secrets.get(name, "").encode(), raw, hashlib.md5).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Patreon-Signature", "")):
            self.refused[name] = self.refused.get(name, 0) + 1
            return web.Response(status=401, text="bad signature")
        if self.status.get(name, 200) != 200:
            return web.Response(status=self.status[name], text="down")
        self.received.setdefault(name, []).append((request.headers["X-Patreon-Event"], raw))
        return web.Response(text="ok")

    async def __aenter__(self) -> Receivers:
        app = web.Application()
        app.router.add_post("/hook/{name}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon()
    await server.start()
    server.add_tier("1001", "Bronze", 500)
    server.add_user("ann", "Ann", discord_id=1234)
    server.set_membership("ann", tier_ids=["1001"])
    bea = server.add_creator("bea", "Bea Creator", B)
    bea.add_tier("2001", "Gold", 1500)
    bea.set_membership("ann", tier_ids=["2001"])
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=UA) as session:
        yield session


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    async with Receivers() as running:
        yield running


def bea_token(fake: FakePatreon, scopes: tuple[str, ...] = CREATOR_SCOPES) -> str:
    return fake.issue_tokens("bea", scopes).access_token


def create_body(campaign_id: str | None, uri: Any, triggers: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "webhook", "attributes": {"triggers": triggers, "uri": uri}}
    if campaign_id is not None:
        data["relationships"] = {"campaign": {"data": {"type": "campaign", "id": campaign_id}}}
    return {"data": data}


async def call(
    http: aiohttp.ClientSession, fake: FakePatreon, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    params = FIELDS if method == "GET" else None
    async with http.request(method, f"{fake.base_url}{API}{path}", json=body, headers=headers, params=params) as r:
        return r.status, (await r.json() if r.status != 204 else None)


# ---------------------------------------------------------------- the API per token


async def test_a_creator_creates_and_lists_only_their_campaigns_webhooks(fake, http) -> None:
    token = bea_token(fake)
    status, created = await call(
        http,
        fake,
        "POST",
        "/webhooks",
        token,
        create_body(B, "https://bot.example/patreon/webhook/8000001", ["members:create", "members:update"]),
    )
    assert status == 201
    attributes = created["data"]["attributes"]
    assert (attributes["paused"], attributes["num_consecutive_times_failed"]) == (False, 0)
    assert len(attributes["secret"]) >= 32
    own = fake.add_webhook("https://bot.example/patreon/webhook", ["members:update"])  # the owner's, by hand

    status, listed = await call(http, fake, "GET", "/webhooks", token)
    assert status == 200 and [h["id"] for h in listed["data"]] == [created["data"]["id"]]
    assert listed["data"][0]["attributes"]["secret"] == attributes["secret"]
    _, owner_list = await call(http, fake, "GET", "/webhooks", fake.creator_access_token)
    assert [h["id"] for h in owner_list["data"]] == [own.id]
    assert fake.webhooks.hooks[created["data"]["id"]].campaign_id == B


async def test_another_creators_webhooks_and_campaign_are_out_of_reach(fake, http) -> None:
    own = fake.add_webhook("https://owner.example/hook", ["members:update"])
    before = (own.uri, list(own.triggers), own.paused)
    token = bea_token(fake)
    patch = {"data": {"id": own.id, "type": "webhook", "attributes": {"uri": "https://evil.example/x"}}}
    assert (await call(http, fake, "PATCH", f"/webhooks/{own.id}", token, patch))[0] == 404
    paused = {"data": {"id": own.id, "type": "webhook", "attributes": {"paused": True}}}
    assert (await call(http, fake, "PATCH", f"/webhooks/{own.id}", token, paused))[0] == 404
    assert (await call(http, fake, "GET", f"/webhooks/{own.id}", token))[0] == 404
    assert (await call(http, fake, "DELETE", f"/webhooks/{own.id}", token))[0] == 404
    assert (own.uri, list(own.triggers), own.paused) == before and own.id in fake.webhooks.hooks

    body = create_body(fake.campaign.id, "https://evil.example/x", ["members:update"])
    status, error = await call(http, fake, "POST", "/webhooks", token, body)
    assert status == 403 and error["errors"][0]["status"] == "403"
    assert list(fake.webhooks.hooks) == [own.id]


async def test_a_token_without_the_webhook_scope_can_do_nothing(fake, http) -> None:
    hook = fake.add_webhook("https://bot.example/hook", ["members:update"], campaign_id=B)
    token = bea_token(fake, ("identity", "campaigns", "campaigns.members"))
    body = create_body(B, "https://bot.example/other", ["members:update"])
    patch = {"data": {"id": hook.id, "type": "webhook", "attributes": {"paused": True}}}
    for method, path, payload in (
        ("GET", "/webhooks", None),
        ("POST", "/webhooks", body),
        ("PATCH", f"/webhooks/{hook.id}", patch),
        ("DELETE", f"/webhooks/{hook.id}", None),
    ):
        status, error = await call(http, fake, method, path, token, payload)
        assert (status, error["errors"][0]["code_name"]) == (401, "Unauthorized"), method
    assert list(fake.webhooks.hooks) == [hook.id] and not hook.paused


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        (create_body(B, "https://bot.example/h", ["members:updated"]), "triggers"),
        (create_body(B, "https://bot.example/h", ["pledges:create"]), "triggers"),
        (create_body(B, "https://bot.example/h", []), "triggers"),
        (create_body(B, "/patreon/webhook", ["members:update"]), "uri"),
        (create_body(B, "ftp://bot.example/h", ["members:update"]), "uri"),
        (create_body(B, None, ["members:update"]), "uri"),
        (create_body(None, "https://bot.example/h", ["members:update"]), "campaign"),
    ],
)
async def test_bad_webhook_bodies_are_refused_and_create_nothing(fake, http, body, parameter) -> None:
    status, error = await call(http, fake, "POST", "/webhooks", bea_token(fake), body)
    assert (status, error["errors"][0]["source"]["parameter"]) == (400, parameter)
    assert fake.webhooks.hooks == {}


async def test_a_bad_patch_changes_nothing(fake, http) -> None:
    hook = fake.add_webhook("https://bot.example/hook", ["members:update"], campaign_id=B)
    patch = {"data": {"id": hook.id, "type": "webhook", "attributes": {"triggers": ["members:create"], "uri": "nope"}}}
    assert (await call(http, fake, "PATCH", f"/webhooks/{hook.id}", bea_token(fake), patch))[0] == 400
    assert (hook.uri, hook.triggers) == ("https://bot.example/hook", ["members:update"])
    assert "members:pledge:create" in V2_TRIGGERS


# ---------------------------------------------------------------- deliveries per campaign, per secret


async def test_each_campaigns_events_go_to_its_own_webhooks_with_their_own_secrets(fake, receivers) -> None:
    a1 = fake.add_webhook(receivers.url("a1"), ["members:update"])
    a2 = fake.add_webhook(receivers.url("a2"), ["members:update", "members:create"])
    b1 = fake.add_webhook(receivers.url("b1"), ["members:update"], campaign_id=B)
    receivers.secrets = {"a1": a1.secret, "a2": a2.secret, "b1": b1.secret}
    assert len({a1.secret, a2.secret, b1.secret}) == 3

    results = await fake.deliver_event("members:update", "ann")
    assert [(r.webhook_id, r.status) for r in results] == [(a1.id, 200), (a2.id, 200)]
    assert receivers.received["b1"] == [] and receivers.refused == {}
    (_, raw_a1), (_, raw_a2) = receivers.received["a1"][0], receivers.received["a2"][0]
    assert raw_a1 == raw_a2 and parse_member_document(json.loads(raw_a1)).campaign_id == fake.campaign.id

    results = await fake.deliver_event("members:update", "ann", campaign_id=B)
    assert [(r.webhook_id, r.status) for r in results] == [(b1.id, 200)]
    ((_, raw_b),) = receivers.received["b1"]
    assert parse_member_document(json.loads(raw_b)).entitled_tier_ids == ("2001",)

    # A forgery: A's receiver given a body signed with B's secret refuses it; the fake never signs with it itself.
    status, _ = await fake.send_webhook("members:update", "ann", uri=receivers.url("a1"), secret=b1.secret)
    assert status == 401 and receivers.refused == {"a1": 1}
    assert len(receivers.received["a1"]) == 1


async def test_failures_count_pause_queue_and_an_unpause_over_the_api_resends(fake, http, receivers) -> None:
    hook = fake.add_webhook(receivers.url("b"), ["members:update"], campaign_id=B)
    receivers.secrets, receivers.status = {"b": hook.secret}, {"b": 500}
    for _ in range(3):
        (result,) = await fake.deliver_event("members:update", "ann", campaign_id=B)
        assert result.status == 500
    (held,) = await fake.deliver_event("members:update", "ann", campaign_id=B)
    assert held.queued and len(hook.queue) == 4

    token = bea_token(fake)
    _, listed = await call(http, fake, "GET", "/webhooks", token)
    attributes = listed["data"][0]["attributes"]
    assert (attributes["paused"], attributes["num_consecutive_times_failed"]) == (True, 3)
    assert attributes["last_attempted_at"] is not None

    receivers.status = {}
    patch = {"data": {"id": hook.id, "type": "webhook", "attributes": {"paused": False}}}
    status, patched = await call(http, fake, "PATCH", f"/webhooks/{hook.id}", token, patch)
    assert status == 200 and patched["data"]["attributes"]["paused"] is False
    await fake.drain()
    assert len(receivers.received["b"]) == 4
    assert (hook.queue, hook.num_consecutive_times_failed, hook.paused) == ([], 0, False)
