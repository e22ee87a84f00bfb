"""A Channels channel layer on Redis Cluster's sharded pub/sub (Redis 7+).

:class:`RedisClusterChannelLayer` publishes every message with ``SPUBLISH``
to a shard channel named after the Channels channel (``<prefix>:<channel>``)
or group (``<prefix>:group:<group>``), and each process subscribes with
``SSUBSCRIBE`` to the shard channels of the channels and groups it reads.
The names carry no hash tag, so the channels spread over every shard of the
cluster. Configure it with a ``redis+cluster://[[user]:password@]host:port[,host:port...]``
URL (any node of the cluster is enough to find the others); docs/layers.md
has the settings.

How it works, per instance and event loop: one cluster client, one pub/sub
object of redis-py (one connection per shard primary that holds one of our
subscriptions) and one reader task. The reader puts each message into the
bounded local queue of its channel (for a group, of each member channel that
this loop holds); :meth:`~RedisClusterChannelLayer.receive` takes from that
queue. A channel is subscribed when :meth:`~RedisClusterChannelLayer.new_channel`
makes it (which returns once Redis confirmed the subscription), on the first
``receive`` of any other name, and on ``group_add``. Messages are msgpack
(``bytes`` stay ``bytes``; tuples come back as lists).

Guarantees:

* At most once: a message reaches each subscribed receiver once or not at
  all; nothing is retried or replayed.
* Order: messages of one sender (one instance in one event loop) to one
  channel or group arrive in the order they were sent, as Redis pub/sub
  keeps the order of one connection's publishes on one shard.
* Nothing is lost without a trace: a send that reaches no subscriber is
  counted ``dropped_no_receiver`` (:meth:`~RedisClusterChannelLayer.deliver`
  returns how many subscribers it reached), a message that finds its local
  queue full is counted ``dropped_channel_full``, a message that waited in
  its queue longer than ``expiry`` seconds, or was still queued when its
  channel was released (below), is counted ``dropped_no_receiver``, and a
  Redis error while sending is raised to the sender.
* A shard whose primary fails comes back without help: when its replica is
  promoted, redis-py's cluster pub/sub moves the subscriptions of that shard
  to the new primary (a failed read makes it refresh the slot map, at most
  every 5 s, and re-subscribe where the slots went). This layer adds the
  safety net: a subscription that could not be made (the shard was down
  when ``new_channel`` or ``group_add`` ran) or that redis-py no longer
  holds on any connection is made again by the reader, with a backoff of
  0.1 s doubling to 5 s and a warning logged; a failed read is retried with
  the same backoff.

Non-guarantees:

* No persistence: Redis keeps no message. A message for a channel nobody is
  subscribed to at that moment is gone; nothing waits for a receiver that
  subscribes later.
* During a failover, from the primary's death to the re-subscription on the
  promoted replica (a few seconds: the cluster's node timeout, the election,
  then redis-py's refresh), messages of that shard are lost: a send either
  raises the cluster client's error (the primary does not answer, the
  cluster is down) or reaches nobody on the new primary before the
  re-subscription (counted ``dropped_no_receiver``). Messages of the other
  shards are not affected. Messages that the dead primary had accepted but
  not yet written to its subscribers are lost without a count, and a send
  that raised may still have been delivered (its reply was lost).
* A channel read in several places (two processes, or two event loops of one
  process, calling ``receive`` on the same name) gives each of them a copy;
  receivers in one event loop share one queue and one of them takes each
  message.
* ``group_expiry`` is accepted and ignored: a membership lives as long as the
  subscription of the process that holds it (``group_discard``, ``flush``,
  ``close``, the release of an idle channel, or the process's end). A
  ``group_add`` concerns the channel in the calling process and event loop:
  adding a channel that another process reads does not make that process
  receive the group.
* Release of idle channels: Channels has no call that ends a channel, and a
  cancelled ``receive`` is not one (wsmanager's node reads again after
  one). So a channel that no ``receive`` has waited on for ``expiry``
  seconds is released: unsubscribed, removed from its groups, its queued
  messages counted ``dropped_no_receiver``. A later ``receive`` of it
  subscribes it again. This is what ends the channels of consumers that
  are gone.

Several event loops: each loop that uses the layer gets its own client,
subscriptions, queues and reader. When a loop ends (``asyncio.run`` and
``async_to_sync`` cancel its tasks) the reader closes that loop's
connections; a loop closed without cancelling its tasks is forgotten the next
time another loop uses the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]
from channels.layers import BaseChannelLayer
from redis.asyncio.cluster import ClusterNode, ClusterPubSub, RedisCluster
from redis.exceptions import RedisError

from ._aio import cancel_requested
from .exceptions import ConfigurationError
from .observe._counters import Count, bump
from .observe._logs import LogThrottle
from .registry.redis._common import parse_cluster_url, redact

__all__ = ["RedisClusterChannelLayer"]

logger = logging.getLogger(__name__)

#: The default of :attr:`RedisClusterChannelLayer.poll_seconds`.
POLL_SECONDS: Final = 0.05
#: How often the reader looks for idle channels and lost subscriptions (at
#: most; a quarter of ``expiry`` when that is shorter).
SWEEP_SECONDS: Final = 1.0
#: A publish that reached nobody refreshes the slot map at most this often (seconds).
REFRESH_SECONDS: Final = 1.0
#: The backoff of a failed read or subscription: the first delay, doubling up to the last.
BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 5.0
#: Seconds between two warnings of one kind (the lines in between are counted in the next one).
WARN_INTERVAL: Final = 10.0

#: Options of the layer that are not redis-py's, and redis-py's that the layer sets itself.
_OWN_OPTIONS: Final = frozenset(
    {
        "startup_nodes",
        "host",
        "port",
        "username",
        "password",
        "socket_timeout",
        "socket_connect_timeout",
        "decode_responses",
    }
)

Message = dict[str, Any]
#: A queued message and when it arrived (time.monotonic()); None wakes a receiver to start over.
_Entry = tuple[float, Message] | None


class _Channel:
    """One channel held by one event loop: its queue, its waiting receivers and its groups."""

    __slots__ = ("capacity", "dropped", "groups", "idle_since", "queue", "waiting", "warned_at")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # Unbounded: the capacity is checked on put, so that wake-ups always fit.
        self.queue: asyncio.Queue[_Entry] = asyncio.Queue()
        self.waiting = 0
        self.idle_since = time.monotonic()
        self.groups: set[str] = set()
        self.dropped = 0  # full-queue drops not reported in a warning yet
        self.warned_at: float | None = None


@dataclass(eq=False)
class _Bound:
    """What one event loop holds: the client, the pub/sub, the reader and the local channels."""

    loop: asyncio.AbstractEventLoop
    client: RedisCluster
    pubsub: ClusterPubSub
    reader: asyncio.Task[None] | None = None
    #: Serializes the decision to (un)subscribe with the command, so they reach Redis in order.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    channels: dict[str, _Channel] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    #: The shard channels this loop must be subscribed to.
    wanted: set[str] = field(default_factory=set)
    #: Subscriptions waiting for Redis's confirmation, by shard channel.
    confirms: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    #: Shard channels whose SSUBSCRIBE is under way (not lost while redis-py does not hold them yet).
    subscribing: set[str] = field(default_factory=set)
    #: What the last sweep found wanted but not held, and held but not wanted (acted on when
    #: the next sweep finds them again: a migration or an unsubscription may be under way).
    missing: set[str] = field(default_factory=set)
    extra: set[str] = field(default_factory=set)
    #: Wanted shard channels that Redis unsubscribed by itself (their slot moved: a manual
    #: failover, a resharding), to be forgotten by redis-py and subscribed again.
    kicked: set[str] = field(default_factory=set)
    #: Kicked shard channels we unsubscribed (their confirmation is not another kick).
    leaving: set[str] = field(default_factory=set)
    #: Wanted shard channels to subscribe again (their SSUBSCRIBE failed or was lost), and when.
    retry: set[str] = field(default_factory=set)
    retry_at: float = 0.0
    retry_delay: float = BACKOFF_FIRST
    #: The task mending subscriptions (kicked, or to make again), while it runs.
    repair: asyncio.Task[None] | None = None
    #: A slot-map refresh asked for after a failed subscription (or a publish that reached
    #: nobody), and when a publish last asked for one.
    refresh: asyncio.Task[None] | None = None
    refreshed_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    warnings: LogThrottle = field(default_factory=lambda: LogThrottle(WARN_INTERVAL))


class RedisClusterChannelLayer(BaseChannelLayer):  # type: ignore[misc]
    """A Channels layer on Redis Cluster sharded pub/sub; see the module docstring.

    ``url``: ``redis+cluster://[[user]:password@]host:port[,host:port...]``.
    ``prefix``: the start of every shard channel's name (no ``{}`` in it: a
    hash tag would put every channel on one shard). ``capacity`` and
    ``channel_capacity`` (glob patterns or compiled regexes to a capacity,
    first match wins) bound each channel's local queue. ``expiry``: seconds a
    message may wait in its queue, and that a channel may go without a
    waiting ``receive`` before it is released. ``group_expiry``: ignored.
    Other keyword arguments go to redis-py's ``RedisCluster`` (e.g. ``ssl``).
    """

    extensions = ["groups", "flush"]

    #: The longest one read of the reader waits for a message (redis-py splits it
    #: between the connections of the shards this loop is subscribed on). With one
    #: shard, a message is read as it arrives; with several, it may wait up to about
    #: this long. Shorter: less latency, more CPU spent polling while idle.
    poll_seconds: float = POLL_SECONDS

    def __init__(
        self,
        url: str,
        prefix: str = "asgi",
        capacity: int = 100,
        channel_capacity: dict[Any, int] | None = None,
        expiry: float = 60,
        group_expiry: float = 86400,
        socket_timeout: float = 15,
        socket_connect_timeout: float = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        try:
            address = parse_cluster_url(url)
        except ValueError as exc:
            raise ConfigurationError(f"channel layer URL {redact(url)!r}: {exc}") from exc
        if address is None:
            raise ConfigurationError(
                f"channel layer URL {redact(url)!r} is not a redis+cluster://host:port[,host:port...] URL"
            )
        if capacity < 1 or expiry <= 0:
            raise ConfigurationError("the channel layer's capacity must be at least 1 and its expiry above 0")
        own = sorted(_OWN_OPTIONS & kwargs.keys())
        if own:
            raise ConfigurationError(f"channel layer options {own} are set by the layer itself")
        try:
            inspect.signature(RedisCluster).bind_partial(**kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"channel layer options: {exc}") from exc
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"the channel layer's prefix {prefix!r} must be non-empty, without braces "
                "(a hash tag would send every channel through one shard)"
            )
        self.prefix = prefix
        self.channel_capacity = self.compile_capacities(channel_capacity or {})
        self.group_expiry = group_expiry  # not applied (see the module docstring)
        self.socket_timeout = socket_timeout
        self.socket_connect_timeout = socket_connect_timeout
        self.client_prefix = secrets.token_hex(6)
        self._address = address
        self._options = kwargs
        self._bounds: dict[asyncio.AbstractEventLoop, _Bound] = {}

    # -- names -------------------------------------------------------------------
    def _channel_shard(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    def _group_shard(self, group: str) -> str:
        return f"{self.prefix}:group:{group}"

    @staticmethod
    def _require_message(message: Any) -> None:
        if not isinstance(message, dict):
            raise TypeError(f"a channel layer message is a dict, not {type(message).__name__}")

    # -- the Channels layer API ------------------------------------------------------
    async def deliver(self, channel: str, message: Message) -> int:
        """Publish ``message`` on ``channel``; how many subscribers Redis handed it to
        (0: nobody receives it). Redis errors are raised."""
        self.require_valid_channel_name(channel)
        self._require_message(message)
        data = msgpack.packb(message, use_bin_type=True)
        bound = self._bound()
        reached = int(await bound.client.spublish(self._channel_shard(channel), data))
        if not reached and time.monotonic() >= bound.refreshed_at + REFRESH_SECONDS:
            # Nobody, as the node that took it counts: after a manual failover or a
            # resharding that node may be a replica now (no error tells a publisher so;
            # Redis still passes the message on within the shard, but counts only its
            # own subscribers). Read the slot map again, once a second at most.
            bound.refreshed_at = time.monotonic()
            if bound.refresh is None or bound.refresh.done():
                bound.refresh = bound.loop.create_task(self._refresh(bound))
        return reached

    async def send(self, channel: str, message: Message) -> None:
        """Publish ``message`` on ``channel``. Reaching nobody is not an error: it is
        counted ``dropped_no_receiver``. Redis errors are raised."""
        if await self.deliver(channel, message) == 0:
            bump(Count.DROPPED_NO_RECEIVER)
            logger.debug("message to channel %s dropped: no receiver is subscribed", channel)

    async def receive(self, channel: str) -> Message:
        """The next message of ``channel`` (subscribing to it first if this event loop
        does not hold it yet). A cancelled receive loses no message and keeps the
        channel subscribed."""
        self.require_valid_channel_name(channel)
        while True:
            bound = self._bound()
            record = bound.channels.get(channel)
            fresh = record is None
            if record is None:
                record = self._hold(bound, channel)
            record.waiting += 1
            try:
                if fresh:
                    await self._subscribe(bound, self._channel_shard(channel), confirm=False)
                entry = await record.queue.get()
            finally:
                record.waiting -= 1
                record.idle_since = time.monotonic()
            if entry is None:
                continue  # the loop's state was flushed or closed: subscribe again
            arrived, message = entry
            if time.monotonic() - arrived > self.expiry:
                bump(Count.DROPPED_NO_RECEIVER)
                logger.debug("message on channel %s dropped: older than %s s", channel, self.expiry)
                continue
            return message

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new channel name for this process, subscribed when this returns.

        If Redis cannot be reached the name is still returned, and the reader
        subscribes it as soon as the shard answers (a warning is logged).
        """
        channel = f"{prefix}.{self.client_prefix}!{secrets.token_hex(16)}"
        self.require_valid_channel_name(channel)
        bound = self._bound()
        self._hold(bound, channel)
        await self._subscribe(bound, self._channel_shard(channel), confirm=True)
        return channel

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` (held by this process and event loop; held from now on if
        it was not) to ``group``; subscribed to the group when this returns."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        bound = self._bound()
        record = bound.channels.get(channel)
        if record is None:
            record = self._hold(bound, channel)
            await self._subscribe(bound, self._channel_shard(channel), confirm=False)
        record.groups.add(group)
        bound.groups.setdefault(group, set()).add(channel)
        await self._subscribe(bound, self._group_shard(group), confirm=True)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; the last local member unsubscribes the group."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        bound = self._bound()
        record = bound.channels.get(channel)
        if record is not None:
            record.groups.discard(group)
        members = bound.groups.get(group)
        if members is None or channel not in members:
            return
        members.discard(channel)
        if not members:
            del bound.groups[group]
            await self._unsubscribe(bound, self._group_shard(group))

    async def group_send(self, group: str, message: Message) -> None:
        """Publish ``message`` to every member of ``group`` in every process. A group
        without members is not a loss (nothing is counted). Redis errors are raised."""
        self.require_valid_group_name(group)
        self._require_message(message)
        data = msgpack.packb(message, use_bin_type=True)
        bound = self._bound()
        await bound.client.spublish(self._group_shard(group), data)

    async def ping(self) -> None:
        """Ask every primary of the cluster for a PONG (the readiness probe's check);
        raises the cluster client's error when one does not answer."""
        await self._bound().client.ping(target_nodes=RedisCluster.PRIMARIES)

    async def flush(self) -> None:
        """Forget every channel, group and subscription (in every event loop), closing
        the connections; queued messages are discarded. The layer stays usable, and
        a ``receive`` waiting meanwhile subscribes again."""
        await self.close()

    async def close(self) -> None:
        """Unsubscribe everything and close the connections of every event loop.

        The current loop's are closed before this returns; another running loop's
        reader is cancelled from here and closes them in its own loop. Using the
        layer again opens new connections.
        """
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, bound in list(self._bounds.items()):
            if self._bounds.get(loop) is bound:
                del self._bounds[loop]
            bound.closing = True
            if bound.reader is None:
                continue
            if loop is current:
                bound.reader.cancel()
                await asyncio.wait({bound.reader})  # its own cancellation is not ours to raise
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    loop.call_soon_threadsafe(bound.reader.cancel)

    # -- per event loop ------------------------------------------------------------------
    def _bound(self) -> _Bound:
        """The running loop's state, made (with its reader) on first use."""
        loop = asyncio.get_running_loop()
        bound = self._bounds.get(loop)
        if bound is not None and not bound.closing and bound.reader is not None and not bound.reader.done():
            return bound
        for old in [old for old in list(self._bounds) if old.is_closed()]:
            self._bounds.pop(old, None)
        client = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self._address.nodes],
            username=self._address.username,
            password=self._address.password,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_connect_timeout,
            **self._options,
        )
        bound = _Bound(loop, client, client.pubsub())
        bound.reader = loop.create_task(self._run(bound), name=f"wsmanager.layers reader {self.prefix}")
        self._bounds[loop] = bound
        return bound

    def _hold(self, bound: _Bound, channel: str) -> _Channel:
        """Make ``channel`` local to ``bound`` (not subscribed yet)."""
        record = bound.channels[channel] = _Channel(self.get_capacity(channel))
        return record

    async def _subscribe(self, bound: _Bound, shard: str, *, confirm: bool) -> None:
        """Make sure ``bound`` is subscribed to ``shard``; with ``confirm``, wait (up to
        ``socket_timeout``) until Redis confirmed it. A Redis error is not raised: the
        reader subscribes again later."""
        pending = bound.confirms.get(shard)
        if shard not in bound.wanted:
            bound.wanted.add(shard)
            pending = bound.confirms[shard] = bound.loop.create_future()
            bound.wake.set()
            bound.subscribing.add(shard)
            try:
                async with bound.lock:
                    if shard not in bound.wanted:
                        return  # unsubscribed meanwhile
                    try:
                        await bound.pubsub.ssubscribe(shard)
                    except (RedisError, OSError) as exc:
                        self._retry_later(bound, shard, exc)
                        return
            finally:
                bound.subscribing.discard(shard)
        if confirm and pending is not None and not pending.done():
            try:
                async with asyncio.timeout(self.socket_timeout):
                    await asyncio.shield(pending)
            except TimeoutError:
                logger.warning("subscription to %s not confirmed within %s s", shard, self.socket_timeout)
            except asyncio.CancelledError:
                if pending.cancelled() and not cancel_requested():
                    return  # the subscription was given up (unsubscribed or closed), not this call
                raise

    async def _unsubscribe(self, bound: _Bound, shard: str) -> None:
        """Stop ``bound``'s subscription to ``shard`` (a Redis error is logged, not raised)."""
        if shard not in bound.wanted:
            return
        bound.wanted.discard(shard)
        bound.retry.discard(shard)
        pending = bound.confirms.pop(shard, None)
        if pending is not None and not pending.done():
            pending.cancel()
        async with bound.lock:
            if shard in bound.wanted:
                return  # subscribed again meanwhile: its SSUBSCRIBE comes after this lock
            try:
                await bound.pubsub.sunsubscribe(shard)
            except (RedisError, OSError) as exc:
                # The reader's sweep unsubscribes it again once the shard answers.
                logger.debug("unsubscribing %s failed: %r", shard, exc)

    def _retry_later(self, bound: _Bound, shard: str, exc: BaseException) -> None:
        bound.retry.add(shard)
        if not bound.retry_at:
            bound.retry_at = time.monotonic() + bound.retry_delay
        pending = bound.confirms.pop(shard, None)
        if pending is not None and not pending.done():
            pending.cancel()
        bound.wake.set()
        bound.warnings.log(
            logger,
            "subscribe",
            logging.WARNING,
            "cannot subscribe to %s (%r); the channel layer retries in the background",
            shard,
            exc,
        )

    # -- the reader ------------------------------------------------------------------------
    async def _run(self, bound: _Bound) -> None:
        """The reader of one event loop; when it ends (cancelled by close(), flush() or the
        loop's end) it closes that loop's connections."""
        try:
            await self._read(bound)
        finally:
            await self._teardown(bound)

    async def _read(self, bound: _Bound) -> None:
        delay = BACKOFF_FIRST
        sweep_every = min(SWEEP_SECONDS, self.expiry / 4)
        next_sweep = time.monotonic() + sweep_every
        while not cancel_requested():
            if not bound.wanted and not bound.pubsub.subscribed:
                bound.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(sweep_every):
                        await bound.wake.wait()
                continue
            try:
                due = bound.kicked or (bound.retry and time.monotonic() >= bound.retry_at)
                if due and (bound.repair is None or bound.repair.done()):
                    # In a task of its own: a subscription aimed at a dead node may wait
                    # for its connect timeout, and the other shards' messages must not.
                    bound.repair = bound.loop.create_task(self._repair(bound))
                message = await bound.pubsub.get_sharded_message(
                    ignore_subscribe_messages=False, timeout=self.poll_seconds
                )
            except Exception as exc:
                # Redis errors are expected (a shard is down); anything else is a bug, but
                # the reader must go on for the other channels: logged with its traceback.
                expected = isinstance(exc, (RedisError, OSError))
                bound.warnings.log(
                    logger,
                    "read" if expected else "bug",
                    logging.WARNING,
                    "channel layer cannot read from Redis Cluster (%r); retrying in %.1f s",
                    exc,
                    delay,
                    exc_info=None if expected else exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST
            try:
                if message is not None:
                    self._dispatch(bound, message)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every
                    await self._sweep(bound)
            except Exception as exc:  # a bug: logged, and the reader goes on
                bound.warnings.log(logger, "bug", logging.ERROR, "layer reader: %r", exc, exc_info=exc)

    def _dispatch(self, bound: _Bound, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw_name = message.get("channel")
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        if kind == "ssubscribe":
            pending = bound.confirms.pop(name, None)
            if pending is not None and not pending.done():
                pending.set_result(None)
            return
        if kind == "sunsubscribe":
            if name in bound.leaving:
                bound.leaving.discard(name)
            elif name in bound.wanted:
                # Not ours (we stop wanting a channel before unsubscribing it): Redis ends
                # the subscriptions of a slot that moves away from a node (a manual
                # failover, a resharding). redis-py still lists it as held.
                bound.kicked.add(name)
                bound.wake.set()
            return
        if kind != "smessage":
            return
        rest = name.removeprefix(f"{self.prefix}:")
        if rest.startswith("group:"):
            # No local member left (discarded while the message was on its way): a
            # group without members is not a loss.
            members = sorted(bound.groups.get(rest.removeprefix("group:"), ()))
        elif rest in bound.channels:
            members = [rest]
        else:
            # Released or unsubscribed while the message was on its way: Redis counted
            # a receiver, but no receive() will return it.
            bump(Count.DROPPED_NO_RECEIVER)
            logger.debug("message on %s dropped: no local channel holds it", name)
            return
        data = message.get("data")
        for channel in members:
            try:
                decoded = msgpack.unpackb(data, raw=False)
                if not isinstance(decoded, dict):
                    raise TypeError(f"a {type(decoded).__name__}, not a dict")
            except Exception as exc:
                bump(Count.DROPPED_LAYER_ERROR)
                bound.warnings.log(logger, "payload", logging.WARNING, "bad message on %s: %r", name, exc)
                return
            self._put(bound, channel, decoded)

    def _put(self, bound: _Bound, channel: str, message: Message) -> None:
        record = bound.channels.get(channel)
        if record is None:
            return
        if record.queue.qsize() >= record.capacity:
            bump(Count.DROPPED_CHANNEL_FULL)
            record.dropped += 1
            now = time.monotonic()
            if record.warned_at is None or now - record.warned_at >= WARN_INTERVAL:
                logger.warning(
                    "channel %s is full (%d messages); %d message(s) dropped",
                    channel,
                    record.capacity,
                    record.dropped,
                )
                record.warned_at = now
                record.dropped = 0
            return
        record.queue.put_nowait((time.monotonic(), message))

    async def _repair(self, bound: _Bound) -> None:
        """Mend the subscriptions Redis ended (slots that moved) and those to make again."""
        try:
            if bound.kicked:
                await self._forget_kicked(bound)
            if bound.retry and time.monotonic() >= bound.retry_at:
                await self._resubscribe(bound)
        except Exception as exc:  # a bug: logged; the reader starts another repair later
            bound.warnings.log(logger, "bug", logging.ERROR, "layer repair: %r", exc, exc_info=exc)

    async def _forget_kicked(self, bound: _Bound) -> None:
        """Shard channels Redis unsubscribed by itself: unsubscribe them on our side too
        (so that redis-py no longer lists them on the node that lost their slot), then
        subscribe them again at once, with a fresh slot map."""
        kicked, bound.kicked = bound.kicked & bound.wanted, set()
        if not kicked:
            return
        bound.warnings.log(
            logger,
            "kicked",
            logging.WARNING,
            "Redis ended %d subscription(s) (their slots moved); subscribing again",
            len(kicked),
        )
        async with bound.lock:
            for shard in sorted(kicked):
                bound.leaving.add(shard)
                try:
                    await bound.pubsub.sunsubscribe(shard)
                except (RedisError, OSError):
                    bound.leaving.discard(shard)
        await self._refresh(bound)
        bound.retry |= kicked
        bound.retry_at = time.monotonic()

    async def _resubscribe(self, bound: _Bound) -> None:
        """Subscribe again the shard channels in ``bound.retry`` (backoff on failure)."""
        shards, bound.retry = bound.retry & bound.wanted, set()
        failed: list[str] = []
        error: BaseException | None = None
        async with bound.lock:
            for shard in sorted(shards):
                if shard not in bound.wanted:
                    continue
                if error is not None:
                    failed.append(shard)  # after one failure, the rest wait for the next round
                    continue
                try:
                    await bound.pubsub.ssubscribe(shard)
                except (RedisError, OSError) as exc:
                    failed.append(shard)
                    error = exc
        if not failed:
            bound.retry_at = 0.0
            bound.retry_delay = BACKOFF_FIRST
            if shards:
                logger.info("channel layer subscribed again to %d shard channel(s)", len(shards))
            return
        bound.retry.update(failed)
        bound.retry_at = time.monotonic() + bound.retry_delay
        bound.warnings.log(
            logger,
            "subscribe",
            logging.WARNING,
            "channel layer cannot subscribe to %d shard channel(s) (%r); retrying in %.1f s",
            len(failed),
            error,
            bound.retry_delay,
        )
        bound.retry_delay = min(bound.retry_delay * 2, BACKOFF_MAX)
        if bound.refresh is None or bound.refresh.done():
            bound.refresh = bound.loop.create_task(self._refresh(bound))

    @staticmethod
    async def _refresh(bound: _Bound) -> None:
        """Read the slot map again: it may still name a dead primary, and nothing else
        refreshes it for a process that only subscribes. The refresh also makes
        redis-py move the subscriptions it holds to the slots' new primaries."""
        try:
            await bound.client.nodes_manager.initialize()
        except Exception as exc:
            logger.debug("channel layer could not refresh the cluster's slot map: %r", exc)

    async def _sweep(self, bound: _Bound) -> None:
        """Release the channels idle for ``expiry`` seconds; compare the subscriptions
        redis-py holds on its connections with those wanted, and mend the difference."""
        now = time.monotonic()
        for channel, record in list(bound.channels.items()):
            if record.waiting or now - record.idle_since <= self.expiry:
                continue
            await self._release(bound, channel, record)
        held: set[str] = set()
        for node_pubsub in list(bound.pubsub.node_pubsub_mapping.values()):
            held.update(k.decode() if isinstance(k, bytes) else str(k) for k in node_pubsub.shard_channels)
        missing = bound.wanted - held - bound.retry - bound.subscribing
        lost, bound.missing = missing & bound.missing, missing
        if lost:
            bound.warnings.log(
                logger,
                "lost",
                logging.WARNING,
                "channel layer lost %d subscription(s) (no connection holds them); subscribing again",
                len(lost),
            )
            bound.retry |= lost
            bound.retry_at = min(bound.retry_at or now, now)
        extra = held - bound.wanted
        stale, bound.extra = extra & bound.extra, extra
        for shard in sorted(stale):  # an unsubscription that did not reach Redis
            with contextlib.suppress(RedisError, OSError):
                async with bound.lock:
                    if shard not in bound.wanted:
                        await bound.pubsub.sunsubscribe(shard)

    async def _release(self, bound: _Bound, channel: str, record: _Channel) -> None:
        """Forget an idle channel: unsubscribe it, leave its groups, count what it held."""
        if bound.channels.get(channel) is not record:
            return
        del bound.channels[channel]
        queued = record.queue.qsize()  # messages only: wake-ups are queued by _teardown alone
        if queued:
            bump(Count.DROPPED_NO_RECEIVER, queued)
        logger.debug(
            "channel %s released: no receive for %s s (%d queued message(s) dropped)",
            channel,
            self.expiry,
            queued,
        )
        await self._unsubscribe(bound, self._channel_shard(channel))
        for group in sorted(record.groups):
            members = bound.groups.get(group)
            if members is None:
                continue
            members.discard(channel)
            if not members:
                del bound.groups[group]
                await self._unsubscribe(bound, self._group_shard(group))

    async def _teardown(self, bound: _Bound) -> None:
        """End ``bound``: wake its receivers (they start over on a new state), close its connections."""
        bound.closing = True
        if self._bounds.get(bound.loop) is bound:
            del self._bounds[bound.loop]
        discarded = 0
        for record in bound.channels.values():
            while not record.queue.empty():
                discarded += record.queue.get_nowait() is not None
            for _ in range(record.waiting):
                record.queue.put_nowait(None)
        for pending in bound.confirms.values():
            if not pending.done():
                pending.cancel()
        for task in (bound.refresh, bound.repair):
            if task is not None and not task.done():
                task.cancel()
        if discarded:
            bump(Count.DROPPED_NO_RECEIVER, discarded)
            logger.debug("channel layer closed with %d message(s) not received", discarded)
        bound.channels.clear()
        bound.groups.clear()
        bound.wanted.clear()
        bound.confirms.clear()
        bound.retry.clear()
        bound.kicked.clear()
        bound.leaving.clear()
        try:
            await bound.pubsub.aclose()
        except Exception as exc:
            logger.debug("closing the channel layer's pub/sub failed: %r", exc)
        try:
            await bound.client.aclose()
        except Exception as exc:
            logger.debug("closing the channel layer's cluster client failed: %r", exc)
