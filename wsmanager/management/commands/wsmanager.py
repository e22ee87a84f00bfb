"""``python manage.py wsmanager``: look at and act on the live sockets.

Works from any process against the configured registry, so with the Redis
backend it sees and reaches the whole cluster::

    manage.py wsmanager list [--group G] [--json]
    manage.py wsmanager count
    manage.py wsmanager groups
    manage.py wsmanager send (--to ID | --group G | --all) (--text T | --json J)
    manage.py wsmanager notify (--to ID | --group G | --all) METHOD [--params JSON]
    manage.py wsmanager disconnect ID [--code 1000] [--reason R]
    manage.py wsmanager stats [--json]
    manage.py wsmanager schema [HANDLER] [--output FILE] [--api-version V]
    manage.py wsmanager typescript [HANDLER] [--output FILE] [--client-module M]

``--handler NAME`` picks the handler (its ``handler_name``); it may be left out when
the project's ASGI application routes exactly one handler. ``schema`` and
``typescript`` write the handler's contract (docs/contract.md) and touch no
registry; their HANDLER is a name or a dotted path to the class.

With a registry that is not shared (the in-memory default) the command can
only see its own process, which holds no sockets: it says so on stderr and
goes on, so that scripts see the (empty) answer all the same.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from argparse import ArgumentParser
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from wsmanager._handler_classes import handler_class, handler_names
from wsmanager._manager import Manager, get_manager
from wsmanager.contract._openrpc import openrpc_document
from wsmanager.contract._typescript import typescript_declarations
from wsmanager.exceptions import WsManagerError
from wsmanager.jsonrpc._dispatch import RpcHandler
from wsmanager.node import get_node
from wsmanager.registry import get_registry


def _known_handlers() -> list[str]:
    """Handler names, after importing the ASGI application (which defines them)."""
    app_path = getattr(settings, "ASGI_APPLICATION", "")
    if app_path:
        with contextlib.suppress(ImportError):
            import_module(app_path.rsplit(".", 1)[0])
    return handler_names()


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc}") from None


def _add_contract_parsers(sub: Any) -> None:
    """The ``schema`` and ``typescript`` subcommands (docs/contract.md)."""
    schema = sub.add_parser("schema", help="the handler's OpenRPC document (JSON)")
    typescript = sub.add_parser("typescript", help="TypeScript declarations of the handler's client")
    for cmd in (schema, typescript):
        cmd.add_argument("target", nargs="?", metavar="HANDLER", help="handler name or dotted class path")
        cmd.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    schema.add_argument("--api-version", default="0.0.0", help="the document's info.version")
    typescript.add_argument(
        "--client-module",
        default="./wsmanager.js",
        help="where the declarations import wsmanager.d.ts from (default: ./wsmanager.js)",
    )


def _contract_handler(name: str | None) -> type[RpcHandler]:
    """The RpcHandler class named ``name`` (a handler name or ``module.Class``)."""
    known = _known_handlers()  # imports the ASGI application, which defines the handlers
    if not name:
        if len(known) != 1:
            raise CommandError(f"name the handler; known handlers: {', '.join(known) or 'none'}")
        name = known[0]
    try:
        cls: Any = handler_class(name)
    except WsManagerError as exc:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(import_module(module), attr) if module else None
        except ImportError:
            cls = None
        if cls is None:
            raise CommandError(str(exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, RpcHandler)):
        raise CommandError(f"{name} is not an RpcHandler: only RpcHandler classes have a contract")
    return cls


class Command(BaseCommand):
    help = "List, count, message and disconnect the sockets of a wsmanager handler."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--handler", help="handler name (default: the only one routed)")
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="one line per socket")
        listing.add_argument("--group", help="only this group's members")
        listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
        sub.add_parser("count", help="number of open sockets")
        sub.add_parser("groups", help="groups with their member counts")
        for name in ("send", "notify"):
            cmd = sub.add_parser(name, help=f"{name} to an id, a group or everyone")
            target = cmd.add_mutually_exclusive_group(required=True)
            target.add_argument("--to", metavar="ID")
            target.add_argument("--group")
            target.add_argument("--all", action="store_true")
            if name == "send":
                payload = cmd.add_mutually_exclusive_group(required=True)
                payload.add_argument("--text")
                payload.add_argument("--json", dest="json_text", metavar="JSON")
            else:
                cmd.add_argument("method")
                cmd.add_argument("--params", default="[]", help="JSON array or object")
        close = sub.add_parser("disconnect", help="close a socket from the server side")
        close.add_argument("id")
        close.add_argument("--code", type=int, default=1000)
        close.add_argument("--reason", default="")
        stats = sub.add_parser("stats", help="each live process's counters, as of its last heartbeat")
        stats.add_argument("--json", action="store_true", help="one JSON object instead of a table")
        drain = sub.add_parser("drain", help="ask live processes to close their sockets (1012) for a deploy")
        which = drain.add_mutually_exclusive_group(required=True)
        which.add_argument("node", nargs="?", help="a node id, as `stats` lists them")
        which.add_argument("--all", action="store_true", help="every live process")
        drain.add_argument("--period", type=float, help='seconds (default WSMANAGER["DRAIN_PERIOD"])')
        _add_contract_parsers(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action in ("schema", "typescript"):
            self.write_contract(action, options)
            return
        manager = None if action in ("stats", "drain") else self._manager(options.get("handler"))
        if not get_registry().shared:
            self.stderr.write(
                "warning: the registry is in-memory, so this command sees and reaches only its own "
                "process, which has no sockets. Use a shared registry (RedisRegistry, "
                "docs/scaling.md) to act on the running servers."
            )
        try:
            getattr(self, f"do_{action}")(manager, options)
        except (WsManagerError, ValueError) as exc:  # ValueError: e.g. JSON with NaN
            raise CommandError(str(exc)) from exc

    def _manager(self, name: str | None) -> Manager:
        if name:
            return get_manager(name)
        known = _known_handlers()
        if len(known) != 1:
            raise CommandError(f"pass --handler; known handlers: {', '.join(known) or 'none'}")
        return get_manager(known[0])

    def do_list(self, manager: Manager, options: dict[str, Any]) -> None:
        if options.get("group"):
            infos = manager.get_many(manager.group_members(options["group"]))
        else:
            infos = manager.all()
        infos.sort(key=lambda info: info.connected_at)
        if options.get("json"):
            for info in infos:
                self.stdout.write(json.dumps(info.to_json()))
            return
        self.stdout.write(f"{'id':43}  {'user':>8}  {'connected since':19}  {'node':<40}  groups")
        for info in infos:
            since = datetime.datetime.fromtimestamp(info.connected_at).strftime("%Y-%m-%d %H:%M:%S")
            groups = ",".join(sorted(info.groups))
            user = info.user_id or "-"
            self.stdout.write(f"{info.id:43}  {user:>8}  {since:19}  {info.node:<40}  {groups}")

    def do_count(self, manager: Manager, options: dict[str, Any]) -> None:
        self.stdout.write(str(manager.count()))

    def do_groups(self, manager: Manager, options: dict[str, Any]) -> None:
        for group in sorted(manager.groups()):
            self.stdout.write(f"{group}\t{len(manager.group_members(group))}")

    def do_send(self, manager: Manager, options: dict[str, Any]) -> None:
        data: str | None = options.get("text")
        extra: dict[str, Any] = {}
        if data is None:
            extra["json"] = _json_arg(options["json_text"], "--json")
        if options.get("to"):
            manager.send(options["to"], data, **extra)
            count = 1
        elif options.get("group"):
            count = manager.send_group(options["group"], data, **extra)
        else:
            count = manager.send_all(data, **extra)
        self.stdout.write(f"sent to {count} socket(s)")

    def do_notify(self, manager: Manager, options: dict[str, Any]) -> None:
        params = _json_arg(options["params"], "--params")
        if not isinstance(params, list | dict):
            raise CommandError("--params must be a JSON array or object")
        args, kwargs = (params, {}) if isinstance(params, list) else ([], params)
        method = options["method"]
        if options.get("to"):
            manager.notify(options["to"], method, *args, **kwargs)
            count = 1
        elif options.get("group"):
            count = manager.notify_group(options["group"], method, *args, **kwargs)
        else:
            count = manager.notify_all(method, *args, **kwargs)
        self.stdout.write(f"notified {count} socket(s)")

    def do_stats(self, manager: None, options: dict[str, Any]) -> None:
        """Per node and in total: open sockets and every counter (docs/protocol.md#counters)."""
        by_node = async_to_sync(get_registry().node_stats)()
        total: dict[str, int] = {}
        for stats in by_node.values():
            for name, value in stats.items():
                total[name] = total.get(name, 0) + value
        if options.get("json"):
            self.stdout.write(json.dumps({"nodes": by_node, "total": total}, sort_keys=True))
            return
        for node, stats in [*sorted(by_node.items()), ("total", total)]:
            counters = " ".join(f"{k}={v}" for k, v in sorted(stats.items()) if k != "sockets")
            self.stdout.write(f"{node:<40}  sockets={stats.get('sockets', 0)}  {counters}".rstrip())

    def do_drain(self, manager: None, options: dict[str, Any]) -> None:
        """Ask one live node, or all, to drain: sockets closed with 1012 over the period,
        readiness 503 (the process keeps running; stop it when it is empty)."""
        live = sorted(async_to_sync(get_registry().node_stats)())
        targets = live if options.get("all") else [options["node"]]
        unknown = [node for node in targets if node not in live]
        if unknown or not targets:
            raise CommandError(f"no live node {', '.join(unknown)}; live: {', '.join(live) or 'none'}")
        period = options.get("period")

        async def ask() -> list[str]:
            node = get_node()
            return [target for target in targets if not await node.request_drain(target, period)]

        refused = async_to_sync(ask)()
        if refused:
            raise CommandError(f"the channel layer refused the request for {', '.join(refused)}")
        for target in targets:
            self.stdout.write(f"asked {target} to drain")

    def write_contract(self, action: str, options: dict[str, Any]) -> None:
        """``schema``: the OpenRPC document; ``typescript``: the ``.d.ts`` built from it."""
        handler = _contract_handler(options.get("target") or options.get("handler"))
        try:
            document = openrpc_document(handler, version=options.get("api_version") or "0.0.0")
        except WsManagerError as exc:  # e.g. malformed declarations
            raise CommandError(str(exc)) from exc
        if action == "schema":
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        else:
            text = typescript_declarations(document, client_module=options["client_module"])
        if options.get("output"):
            try:
                with open(options["output"], "w", encoding="utf-8") as out:
                    out.write(text)
            except OSError as exc:
                raise CommandError(f"cannot write {options['output']}: {exc}") from None
        else:
            self.stdout.write(text, ending="")

    def do_disconnect(self, manager: Manager, options: dict[str, Any]) -> None:
        manager.disconnect(options["id"], options["code"], options["reason"])
        self.stdout.write(f"disconnect sent to {options['id']}")
