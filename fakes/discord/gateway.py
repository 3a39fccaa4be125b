"""The gateway websocket: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, member chunks, dispatches.

Why: discord.py only fills its cache and fires events (on_ready, on_member_join, member updates after
role edits, interactions) from the gateway, so the fake speaks the protocol discord.py expects, with
plain-text JSON frames and per-session sequence numbers.

A large guild (more members than the IDENTIFY's `large_threshold`, 50 unless the client says otherwise, at most
250) comes in GUILD_CREATE without its offline members, as on Discord ("the gateway will only send offline members
if a guild has less than the large_threshold members"; without GUILD_PRESENCES every member counts as offline, so
only the bot itself is listed). The client asks for the rest with op 8 (fakes/discord/member_requests.py).

Sharding, as Discord's gateway documentation ("Sharding", https://discord.com/developers/docs/events/gateway#sharding)
describes it: an IDENTIFY may carry `shard: [shard_id, num_shards]`; that session then gets only the servers with
`(guild_id >> 22) % num_shards == shard_id`, in READY's `guilds` and as GUILD_CREATEs, and only their events
("Gateway events that do not contain a `guild_id` will only be sent to the first shard", i.e. DMs go to shard 0).
"Each shard can only support a maximum of 2500 guilds, and apps that are in 2500+ guilds *must* enable sharding":
a session that would hold more is closed with 4011 "Sharding required", and a shard id not below the count (or a
malformed `shard`) with 4010 "Invalid shard" (Discord's gateway close event codes,
https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway-gateway-close-event-codes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from .guild import FakeGuild
from .member_requests import MemberRequest, MemberRequestDesk
from .permissions import EVENT_INTENTS, INTENT_GUILD_MEMBERS

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250
#: A heartbeat's ACK comes a network round trip later, as from Discord (tens of ms). Sent at once on loopback, it
#: can be handled before discord.py's keep-alive thread records the heartbeat as sent (`_last_send` is set after
#: the send returns), and discord.py then logs "Can't keep up ... 41.3s behind" at every heartbeat.
HEARTBEAT_ACK_DELAY_SECONDS = 0.02
#: Discord's limit of servers one gateway session may hold (close 4011 past it).
MAX_GUILDS_PER_SESSION = 2500
HISTORY_LIMIT = 2000
DEFAULT_LARGE_THRESHOLD, MAX_LARGE_THRESHOLD = 50, 250

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE, OP_VOICE = 0, 1, 2, 3, 4
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11


class GatewaySession:
    """One identified bot session; it outlives a dropped socket so the bot can RESUME it."""

    def __init__(self, intents: int, shard: list[int] | None, large_threshold: int = DEFAULT_LARGE_THRESHOLD) -> None:
        self.session_id = secrets.token_hex(16)
        self.intents = intents
        self.shard = shard
        self.large_threshold = large_threshold
        self.sequence = 0
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY_LIMIT)
        self.connection: GatewayConnection | None = None
        self.ended = False

    def wants(self, event: str) -> bool:
        """Whether the session's intents cover this event."""
        needed = EVENT_INTENTS.get(event)
        return needed is None or bool(self.intents & needed)

    def owns(self, guild_id: int | str | None) -> bool:
        """Whether Discord routes this server's events to this session: every server unsharded; else its shard's
        (`(guild_id >> 22) % num_shards`), and an event of no server (a DM) to shard 0 only."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (int(guild_id) >> 22) % count == shard_id

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Number the event, keep it for RESUME, and send it if a socket is attached."""
        self.sequence += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": self.sequence, "d": data}
        self.history.append(frame)
        if self.connection is not None:
            self.connection.send(frame)


class GatewayConnection:
    """One websocket; frames go through a queue so synchronous code can dispatch in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.session: GatewaySession | None = None
        self.writer = asyncio.create_task(self._write())

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame (never blocks)."""
        self.queue.put_nowait(frame)

    async def _write(self) -> None:
        while (frame := await self.queue.get()) is not None:
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(json.dumps(frame))
            except ConnectionError:
                return

    async def stop(self) -> None:
        """Flush queued frames, then end the writer."""
        self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer, timeout=2)


class GatewayHub:
    """All sessions; guild changes and interactions fan out from here."""

    def __init__(
        self,
        *,
        bot_token: str,
        application_id: int,
        bot_user: Callable[[], dict[str, Any]],
        guilds: Callable[[], list[FakeGuild]],
        resume_url: Callable[[], str],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bot_token = bot_token
        self._application_id = application_id
        self._bot_user = bot_user
        self._guilds = guilds
        self._resume_url = resume_url
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        self.identify_count = 0
        #: Each answered IDENTIFY's `shard` ([id, count], None unsharded), in order.
        self.identified_shards: list[tuple[int, int] | None] = []
        self.resume_count = 0
        self._ready_changed = asyncio.Event()
        #: Members whose GUILD_MEMBER_UPDATE events are being held back, and the held events in order.
        self._held_members: set[tuple[str, str]] = set()
        self._held_updates: list[dict[str, Any]] = []
        #: op 8 answers; `monotonic` times the one-per-30-s window of whole-list requests.
        self._member_desk = MemberRequestDesk(monotonic)
        #: Set while the gateway is up; cleared by `begin_outage`, when new sockets get no HELLO.
        self._serving = asyncio.Event()
        self._serving.set()

    @property
    def member_requests(self) -> list[MemberRequest]:
        """Every op 8 REQUEST_GUILD_MEMBERS received, in order."""
        return list(self._member_desk.requests)

    # ---- fan-out -------------------------------------------------------------------------------

    def live_sessions(self) -> list[GatewaySession]:
        """Sessions still able to receive events (attached, or detached but resumable)."""
        return [s for s in self.sessions.values() if not s.ended]

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to every live session whose intents ask for it (a held member's updates wait)."""
        if event == "GUILD_MEMBER_UPDATE" and _member_key(data) in self._held_members:
            self._held_updates.append(data)
            return
        self._fan_out(event, data)

    def hold_member_updates(self, guild_id: int, user_id: int) -> None:
        """Hold back this member's GUILD_MEMBER_UPDATE events until `release_member_updates`.

        Why: the REST answer to a role PUT/DELETE comes before the gateway event that tells the bot's cache,
        and on real Discord that event can lag by seconds or minutes (Rapptz/discord.py#8269: "many minute long
        delays" before `Member.roles` shows a role the bot gave). discord.py's `add_roles`/`remove_roles`
        (atomic) change nothing in the cache themselves, so meanwhile the bot's cache shows the old roles.
        Each held event keeps the member's state at the time of the change, as Discord's would.
        """
        self._held_members.add((str(guild_id), str(user_id)))

    def release_member_updates(self) -> int:
        """Stop holding and send every held event in the order the changes happened; returns how many."""
        held, self._held_updates = self._held_updates, []
        self._held_members.clear()
        for data in held:
            self._fan_out("GUILD_MEMBER_UPDATE", data)
        return len(held)

    @property
    def held_member_updates(self) -> int:
        """How many GUILD_MEMBER_UPDATE events are waiting (a test's signal that a change happened)."""
        return len(self._held_updates)

    def _fan_out(self, event: str, data: dict[str, Any]) -> None:
        guild_id = data.get("guild_id")
        for session in self.live_sessions():
            if session.wants(event) and session.owns(guild_id):
                session.dispatch(event, data)

    def announce_guild(self, guild: FakeGuild) -> None:
        """GUILD_CREATE for a guild the bot joined while connected (to the sessions of its shard)."""
        for session in self.live_sessions():
            if session.owns(guild.id):
                session.dispatch("GUILD_CREATE", self._guild_create(session, guild))

    def dispatch_interaction(self, data: dict[str, Any]) -> None:
        """Interactions go to one session only: the most recently identified connected one of the server's shard."""
        attached = [s for s in self.live_sessions() if s.connection is not None and s.owns(data.get("guild_id"))]
        if not attached:
            raise RuntimeError("no bot is connected to the fake gateway for that server; cannot deliver it")
        attached[-1].dispatch("INTERACTION_CREATE", data)

    @property
    def connected(self) -> bool:
        """True when at least one bot has identified and holds an open socket."""
        return any(s.connection is not None for s in self.live_sessions())

    async def wait_for_ready(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` sessions are connected (IDENTIFY answered with READY + GUILD_CREATEs)."""
        async with asyncio.timeout(timeout):
            while sum(1 for s in self.live_sessions() if s.connection is not None) < count:
                self._ready_changed.clear()
                await self._ready_changed.wait()

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: discord.py closes at once and RESUMEs with no back-off delay."""
        for session in self.live_sessions():
            if session.connection is not None:
                session.connection.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    async def begin_outage(self) -> None:
        """A gateway outage: every socket is closed (4000, resumable) and new ones are accepted but get no HELLO
        until `end_outage`, as when Discord's gateway is degraded (https://discordstatus.com lists "Gateway"
        incidents with connections that hang). discord.py then waits for HELLO (60 s) with its session marked
        disconnected; REST is untouched."""
        self._serving.clear()
        await self.drop_connections()

    def end_outage(self) -> None:
        """Waiting sockets get their HELLO and the bots RESUME."""
        self._serving.set()

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every socket without ending sessions, so discord.py reconnects and RESUMEs."""
        for connection in list(self.connections):
            await connection.ws.close(code=code, message=b"fake gateway drop")

    async def close(self) -> None:
        """End all sessions and sockets (server shutdown)."""
        for session in self.sessions.values():
            session.ended = True
        for connection in list(self.connections):
            await connection.stop()
            await connection.ws.close(code=1001, message=b"fake discord shutting down")

    # ---- protocol ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The /gateway endpoint: any query string (v, encoding, compress) is accepted."""
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        connection = GatewayConnection(ws)
        self.connections.add(connection)
        try:
            await self._serving.wait()
            connection.send({"op": OP_HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                await self._on_frame(connection, json.loads(message.data))
        finally:
            self.connections.discard(connection)
            await connection.stop()
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
                if ws.close_code in (1000, 1001):
                    session.ended = True
            self._ready_changed.set()
        return ws

    async def _on_frame(self, connection: GatewayConnection, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == OP_HEARTBEAT:
            ack = {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None}
            asyncio.get_running_loop().call_later(HEARTBEAT_ACK_DELAY_SECONDS, connection.send, ack)
        elif op == OP_IDENTIFY:
            await self._identify(connection, data or {})
        elif op == OP_RESUME:
            await self._resume(connection, data or {})
        elif op == OP_REQUEST_MEMBERS:
            self._request_members(connection, data or {})
        elif op in (OP_PRESENCE, OP_VOICE):
            return
        else:
            log.debug("fake gateway ignoring op %s", op)

    async def _identify(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        if connection.session is not None:
            await connection.stop()
            await connection.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self._bot_token:
            await connection.stop()
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard")
        if shard is not None and not _valid_shard(shard):
            await connection.stop()
            await connection.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = GatewaySession(int(data.get("intents", 0)), shard, _large_threshold(data))
        guilds = [guild for guild in self._guilds() if session.owns(guild.id)]
        if len(guilds) > MAX_GUILDS_PER_SESSION:
            await connection.stop()
            await connection.ws.close(code=4011, message=b"Sharding required.")
            return
        self.identify_count += 1
        self.identified_shards.append(None if shard is None else (int(shard[0]), int(shard[1])))
        self.sessions[session.session_id] = session
        connection.session = session
        session.connection = connection
        ready: dict[str, Any] = {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self._resume_url(),
            "application": {"id": str(self._application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "_trace": ["fake-discord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        session.dispatch("READY", ready)
        for guild in guilds:
            session.dispatch("GUILD_CREATE", self._guild_create(session, guild))
        self._ready_changed.set()

    def _guild_create(self, session: GatewaySession, guild: FakeGuild) -> dict[str, Any]:
        """Without the members intent Discord only sends the bot's own member; a large guild, only the bot too."""
        member_count = len(guild.members)
        if member_count <= session.large_threshold:
            payload = guild.to_payload(with_state=True)
            if not session.intents & INTENT_GUILD_MEMBERS:
                payload["members"] = [guild.bot_member.to_payload()]
            return payload
        payload = guild.to_payload(with_state=False)  # never renders the member list of a big guild
        payload.update(
            {
                "joined_at": guild.created_at,
                "large": True,
                "unavailable": False,
                "member_count": member_count,
                "members": [guild.bot_member.to_payload()],
                "channels": [channel.to_payload() for channel in guild.channels.values()],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "lazy": True,
            }
        )
        return payload

    async def _resume(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != self._bot_token or session is None or session.ended:
            connection.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        if session.connection is not None and session.connection is not connection:
            old = session.connection
            await old.ws.close(code=4000, message=b"session resumed elsewhere")
        session.connection = connection
        connection.session = session
        self.resume_count += 1
        last_seen = int(data.get("seq") or 0)
        for frame in session.history:
            if frame["s"] > last_seen:
                connection.send(frame)
        session.dispatch("RESUMED", {"_trace": ["fake-discord"]})
        self._ready_changed.set()

    def _request_members(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        session = connection.session
        if session is None or not session.owns(str(data.get("guild_id") or "0")):
            return  # another shard's server: this session knows nothing of it
        guild = next((g for g in self._guilds() if str(g.id) == str(data.get("guild_id"))), None)
        answers = self._member_desk.answer(guild, data, has_members_intent=bool(session.intents & INTENT_GUILD_MEMBERS))
        for event, payload in answers:
            session.dispatch(event, payload)


def _valid_shard(shard: object) -> bool:
    """`[shard_id, num_shards]` with 0 <= shard_id < num_shards."""
    if not isinstance(shard, list) or len(shard) != 2 or not all(type(part) is int for part in shard):
        return False
    shard_id, count = shard
    return count >= 1 and 0 <= shard_id < count


def _large_threshold(data: dict[str, Any]) -> int:
    threshold = int(data.get("large_threshold") or DEFAULT_LARGE_THRESHOLD)
    return min(max(threshold, DEFAULT_LARGE_THRESHOLD), MAX_LARGE_THRESHOLD)


def _member_key(data: dict[str, Any]) -> tuple[str, str]:
    """(guild id, user id) of a member payload, as the strings Discord sends."""
    return str(data.get("guild_id")), str((data.get("user") or {}).get("id"))
