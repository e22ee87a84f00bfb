"""The registry backend interface: who is connected, where, and in which groups.

A backend stores one :class:`ConnectionInfo` per open socket, namespaced by
handler name, plus group membership. It never touches sockets: delivery is
the job of :mod:`wsmanager.node._hub`, which asks the registry which process
("node") holds each target.

Contract every backend keeps (tests in ``tests/test_registry_*.py`` run the
same suite against each backend):

* ``add`` then ``get`` returns the entry; ``remove`` returns the entry as it
  was (with its groups) and drops it from every group, atomically with
  respect to other calls of the same backend.
* Group operations on an unknown socket raise :class:`SocketNotFound`;
  removing a socket from a group it is not in is a no-op.
* Groups with no members do not exist: ``groups()`` never lists them.
* Queries return snapshots: they are not updated afterwards.
* Ordering of ``ids()`` and ``group_members()`` is unspecified.
* All methods are coroutines and may raise :class:`RegistryUnavailable`
  when the store cannot be reached; the in-memory backend never does.

Presence: within a group, the sockets of one user are one *member* (keyed by
the user id), and a socket without a user is a member on its own (keyed
``"socket:<id>"``; see :func:`member_key` for the exact rule). Backends keep, per handler and
group, how many sockets each member has there, and update it in the same
atomic step as the membership itself, so that they can report *transitions*:

* ``add`` returns the groups its member joined; ``group_add`` returns the
  entry when its member joined the group, ``group_discard`` when it left;
* ``remove`` returns a :class:`Departure`: the entry plus the groups its
  member left with it;
* ``remove_node`` and the reaping of dead nodes queue their departures
  (those that left a group) for :meth:`RegistryBackend.take_departures`,
  which hands each one to exactly one caller, cluster-wide.

However many sockets of one member join or leave at once, and in however
many processes, each transition is reported exactly once. Announcing it
(:mod:`wsmanager._presence`) is the caller's job.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ._journal import InMemoryJournal, Journal

__all__ = ["PARKED", "Claim", "ConnectionInfo", "Departure", "RegistryBackend", "member_key"]

#: The route (``nodes_of``) of a parked socket: it dropped and may resume
#: within its recovery window (see :mod:`wsmanager._recovery`).
PARKED = "~parked"


def member_key(user_id: str | None, socket_id: str) -> str:
    """The presence key of a socket: its user id, or ``"socket:<id>"`` without a user.

    A user id that itself starts with ``socket:`` or ``user:`` (a string
    primary key) gets a ``user:`` prefix, so that no user's key ever equals
    another user's or an anonymous socket's. (The Redis scripts compute the
    same keys.)
    """
    if user_id is None:
        return f"socket:{socket_id}"
    if user_id.startswith(("socket:", "user:")):
        return f"user:{user_id}"
    return user_id


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one open socket.

    ``node`` names the server process that holds the socket (its delivery
    channel). ``meta`` holds small JSON-serialisable values the application
    attaches (e.g. a display name); ``path_kwargs`` are the URL route's
    captured arguments. ``connected_at`` is a Unix timestamp in seconds.
    ``address`` is the client's IP address (see :mod:`wsmanager.connection._addresses`),
    None when the server did not say. ``recovery`` is the socket's recovery
    window in seconds (0: it is forgotten when it drops) and ``resume_key``
    the SHA-256 of its resume secret (:mod:`wsmanager._recovery`); both are
    stored only for recoverable sockets, and the resume fields only once the
    session resumed.
    """

    id: str
    handler: str
    node: str
    user_id: str | None = None
    groups: frozenset[str] = frozenset()
    connected_at: float = 0.0
    path_kwargs: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    address: str | None = None
    recovery: float = 0.0
    resume_key: str = ""
    #: The journal offset the socket's session started at (recoverable sockets);
    #: each resume moves it to where that resume's read began to be needed.
    since: str = ""
    #: When the session last resumed (Unix time; 0.0: never), and how many
    #: resumes it had left then under its handler's ``resume_rate_per_session``.
    resumed_at: float = 0.0
    resume_credit: float = 0.0

    def with_changes(self, **changes: Any) -> ConnectionInfo:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    # The three rules every backend and the local mirror apply to an entry;
    # written here once.
    def with_group(self, group: str) -> ConnectionInfo:
        """This entry with ``group`` added to its groups (itself if already there)."""
        return self if group in self.groups else replace(self, groups=self.groups | {group})

    def without_group(self, group: str) -> ConnectionInfo:
        """This entry with ``group`` removed from its groups (itself if not there)."""
        return replace(self, groups=self.groups - {group}) if group in self.groups else self

    def with_meta(self, meta: Mapping[str, Any]) -> ConnectionInfo:
        """This entry with ``meta`` merged into its meta (new keys win)."""
        return replace(self, meta={**self.meta, **meta})

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (groups sorted) for APIs and the CLI."""
        obj = {
            "id": self.id,
            "handler": self.handler,
            "node": self.node,
            "user_id": self.user_id,
            "groups": sorted(self.groups),
            "connected_at": self.connected_at,
            "path_kwargs": dict(self.path_kwargs),
            "meta": dict(self.meta),
            "address": self.address,
        }
        if self.recovery > 0:
            obj["recovery"] = self.recovery
            obj["resume_key"] = self.resume_key
            obj["since"] = self.since
        if self.resumed_at:
            obj["resumed_at"] = self.resumed_at
            obj["resume_credit"] = self.resume_credit
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ConnectionInfo:
        """Inverse of :meth:`to_json`."""
        return cls(
            id=obj["id"],
            handler=obj["handler"],
            node=obj["node"],
            user_id=obj.get("user_id"),
            groups=frozenset(obj.get("groups", ())),
            connected_at=float(obj.get("connected_at", 0.0)),
            path_kwargs=dict(obj.get("path_kwargs", {})),
            meta=dict(obj.get("meta", {})),
            address=obj.get("address"),
            recovery=float(obj.get("recovery", 0.0)),
            resume_key=str(obj.get("resume_key", "")),
            since=str(obj.get("since", "")),
            resumed_at=float(obj.get("resumed_at", 0.0)),
            resume_credit=float(obj.get("resume_credit", 0.0)),
        )

    @property
    def member(self) -> str:
        """This socket's presence key (see :func:`member_key`)."""
        return member_key(self.user_id, self.id)


@dataclass(frozen=True)
class Departure(ConnectionInfo):
    """The last entry of a socket the registry forgot, and what its member left.

    ``left`` names the groups in which this socket was its member's last
    socket: the member left them with it. A ``Departure`` is a
    :class:`ConnectionInfo` (code reading the removed entry keeps working);
    like any dataclass it compares equal only to another ``Departure``.
    """

    left: frozenset[str] = frozenset()

    @classmethod
    def of(cls, info: ConnectionInfo, left: Iterable[str] = ()) -> Departure:
        """The departure of ``info`` whose member left the groups ``left``."""
        base = {f.name: getattr(info, f.name) for f in fields(ConnectionInfo)}
        return cls(**base, left=frozenset(left))


@dataclass(frozen=True)
class Claim:
    """What :meth:`RegistryBackend.claim` did.

    ``outcome``: ``"ok"`` (the entry is now the new one), ``"unknown"`` (no
    such socket), ``"changed"`` (the entry is not the one expected: read it
    again), ``"expired"`` (parked, and its window is over). ``previous`` is
    the route it had: a node, :data:`PARKED`, or "".
    """

    outcome: Literal["ok", "unknown", "changed", "expired"]
    previous: str = ""
    #: When it was parked: the end of its window (Unix time); 0.0 if it was not.
    parked_until: float = 0.0


class RegistryBackend(abc.ABC):
    """Where connection entries live. Subclass it to add a store.

    Backends are built from ``WSMANAGER["REGISTRY"]`` as
    ``Backend(**OPTIONS)``, one instance per process, shared by every
    handler (the ``handler`` argument namespaces the data).
    """

    #: True when several processes share the store: each process then checks
    #: on every heartbeat that the store still holds its sockets, and re-adds
    #: the ones it lost (store restarted, process wrongly taken for dead).
    shared: bool = False

    # -- sockets -----------------------------------------------------------
    @abc.abstractmethod
    async def add(self, info: ConnectionInfo) -> frozenset[str]:
        """Record an open socket (with the groups in ``info.groups``).

        Returns the groups of ``info.groups`` that its member joined (it had
        no other socket there). An entry with the same id is replaced; the
        groups its member left by that replacement are not reported.
        """

    @abc.abstractmethod
    async def remove(
        self, handler: str, socket_id: str, node: str | None = None, key: str | None = None
    ) -> Departure | None:
        """Forget a socket and its group memberships; its departure, or None if unknown.

        With ``node``, only if the socket is routed to that node; with
        ``key``, only if its entry's ``resume_key`` is ``key`` (a session that
        resumed, even on the same node, is no longer the old connection's to
        forget). The caller announces the departure (nothing is queued).
        """

    @abc.abstractmethod
    async def get(self, handler: str, socket_id: str) -> ConnectionInfo | None:
        """The entry for one socket, or None."""

    @abc.abstractmethod
    async def get_many(self, handler: str, socket_ids: Iterable[str]) -> list[ConnectionInfo]:
        """Entries for the ids that exist, in the order given; unknown ids are skipped."""

    @abc.abstractmethod
    async def ids(self, handler: str) -> list[str]:
        """Ids of every open socket of the handler."""

    @abc.abstractmethod
    async def count(self, handler: str) -> int:
        """How many sockets of the handler are open."""

    @abc.abstractmethod
    async def update_meta(self, handler: str, socket_id: str, meta: Mapping[str, Any]) -> None:
        """Merge ``meta`` into the socket's metadata; SocketNotFound if unknown."""

    # -- groups ------------------------------------------------------------
    @abc.abstractmethod
    async def group_add(self, handler: str, group: str, socket_id: str) -> ConnectionInfo | None:
        """Add a socket to a group; SocketNotFound if the socket is unknown.

        Returns the socket's entry (as written) when its member joined the
        group with it, None when the socket already was in the group or
        another socket of its member is.
        """

    @abc.abstractmethod
    async def group_discard(self, handler: str, group: str, socket_id: str) -> ConnectionInfo | None:
        """Remove a socket from a group; no-op if it was not a member.

        Returns the socket's entry (as written) when its member left the
        group with it, None otherwise (another socket of its member is still
        there, or the socket was not in the group or is unknown).
        """

    @abc.abstractmethod
    async def group_members(self, handler: str, group: str, limit: int | None = None) -> list[str]:
        """Ids of the sockets in a group (empty for an unknown group).

        With ``limit``, at most that many, at a cost bounded by ``limit``: which
        ones, when the group has more, is unspecified (the in-memory backend
        gives the earliest to join, Redis a random choice).
        """

    async def group_size(self, handler: str, group: str) -> int:
        """How many sockets are in a group (0 for an unknown group).

        The default counts :meth:`group_members`; backends answer in one step.
        """
        return len(await self.group_members(handler, group))

    async def member_count(self, handler: str, group: str) -> int:
        """How many presence members a group has: users, and sockets without one.

        The default folds the group's entries; backends read their presence
        counters in one step.
        """
        infos = await self.get_many(handler, await self.group_members(handler, group))
        return len({info.member for info in infos})

    @abc.abstractmethod
    async def groups(self, handler: str) -> list[str]:
        """Names of the groups that have at least one member."""

    # -- users ---------------------------------------------------------------
    @abc.abstractmethod
    async def user_sockets(self, handler: str, user_id: str) -> list[str]:
        """Ids of the open sockets whose ``user_id`` matches."""

    # -- routing -------------------------------------------------------------
    async def nodes_of(self, handler: str, socket_ids: Iterable[str]) -> dict[str, list[str]]:
        """Group socket ids by the node holding them; unknown ids are left out.

        The default asks :meth:`get_many`; backends may answer more cheaply.
        """
        routes: dict[str, list[str]] = {}
        for info in await self.get_many(handler, socket_ids):
            routes.setdefault(info.node, []).append(info.id)
        return routes

    async def group_nodes(self, handler: str, group: str, exclude: Iterable[str] = ()) -> dict[str, int]:
        """How many of the group's sockets each route holds: ``{node: count}``, parked
        sockets under :data:`PARKED`; the sockets of ``exclude`` are not counted, and
        routes left with none are left out (empty for an unknown group).

        A broadcast reads this instead of the member list: one message per node,
        each node delivering to its own members (:mod:`wsmanager.node._hub`). The
        default counts :meth:`group_members` by :meth:`nodes_of` (its cost grows
        with the group); shared backends keep the counts and answer at a cost
        bounded by the number of nodes (plus ``exclude``).
        """
        skip = set(exclude)
        ids = [sid for sid in await self.group_members(handler, group) if sid not in skip]
        return {node: len(held) for node, held in (await self.nodes_of(handler, ids)).items() if held}

    # -- processes -----------------------------------------------------------
    async def node_alive(self, node: str) -> None:  # noqa: B027 - optional hook
        """Called periodically by each live process; backends with TTLs refresh them."""

    async def remove_node(self, node: str) -> list[Departure]:
        """Forget every socket held by ``node`` (a process shutting down).

        Returns their departures, and also queues the ones that left a group
        for :meth:`take_departures`: announce those, not the returned list.
        """
        return []

    async def take_departures(self, limit: int = 1000) -> list[Departure]:
        """Take up to ``limit`` queued departures that nobody has announced yet.

        They come from :meth:`remove_node` and from reaping dead nodes, in
        any process sharing the store; each is taken by exactly one call,
        cluster-wide. Each node's heartbeat takes and announces them. Taking
        is at-most-once: a departure taken by a process that then fails to
        announce it is lost.
        """
        return []

    # -- connection recovery (see wsmanager._recovery) ------------------------
    # The defaults support none: nothing is parked, every resume is refused.
    async def park(self, handler: str, socket_id: str, node: str, until: float, key: str = "") -> bool:
        """Keep the entry of a socket that dropped, routed to :data:`PARKED`, until
        ``until`` (Unix time): its groups, user and presence stay as they are.

        Only if it is still routed to ``node`` and (with ``key``) its entry's
        ``resume_key`` is ``key``; False otherwise (it resumed meanwhile, or
        is unknown). :meth:`remove_node` and the
        reaping of dead nodes park every entry with ``recovery`` set, for
        that many seconds, instead of forgetting it.
        """
        return False

    async def claim(self, expected: ConnectionInfo, new: ConnectionInfo) -> Claim:
        """Route a socket to ``new.node`` with the entry ``new``, if its entry is
        ``expected`` and it is not parked past its window. Atomic: of two
        claims of one entry, one gets ``"ok"`` and the other ``"changed"``.
        ``new`` keeps the groups and user of ``expected``."""
        return Claim("unknown")

    async def expire_parked(self, limit: int = 1000) -> int:
        """Forget up to ``limit`` parked sockets whose window is over; how many.

        Their departures (those that left a group) are queued for
        :meth:`take_departures`, so each is announced once, cluster-wide.
        """
        return 0

    async def spoil(self, handler: str, socket_ids: list[str]) -> None:  # noqa: B027 - optional
        """Of ``socket_ids``, the parked ones missed something that was not kept:
        end their windows now, so that they cannot resume (all or nothing)."""

    def make_journal(self, max_entries: int) -> Journal:
        """The journal that goes with this registry (shared where the registry is)."""
        return InMemoryJournal(max_entries)

    async def put_node_stats(self, node: str, stats: Mapping[str, int]) -> None:  # noqa: B027
        """Publish ``node``'s counters (each heartbeat does), replacing what it published before.

        Optional: the default keeps nothing. Shared backends keep them until
        the node is removed or stops beating, so that :meth:`node_stats` of
        any process shows the live nodes.
        """

    async def node_stats(self) -> dict[str, dict[str, int]]:
        """The counters each live node last published, by node (empty when not kept)."""
        return {}

    # -- last activity (published by each node's heartbeat) -------------------
    async def put_node_activity(self, node: str, activity: Mapping[str, float]) -> None:  # noqa: B027
        """Publish when each socket of ``node`` last had a frame in or out (Unix time, seconds).

        Each heartbeat of the node calls it with every local socket that had
        a frame, replacing what it published before (a socket left out has no
        last activity any more). Optional: the default keeps nothing. Shared
        backends keep the figures until the node stops beating.
        """

    async def last_activity(self, sockets: Iterable[ConnectionInfo]) -> dict[str, float]:
        """Socket id -> the last activity its node published, for the ``sockets`` that have one.

        Precise to one heartbeat: a frame since the node's last beat is not
        seen yet. Empty when not kept (the default).
        """
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called when the process shuts down or in tests."""

    async def clear(self) -> None:
        """Forget everything (tests only)."""
        raise NotImplementedError(f"{type(self).__name__} does not support clear()")
