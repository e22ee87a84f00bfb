"""The public surface: ``__all__`` of the package and of every public module, and the
exception hierarchy."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

import wsmanager
from wsmanager import exceptions
from wsmanager.exceptions import (
    ConfigurationError,
    ConnectionClosed,
    DeliveryError,
    InvokeError,
    InvokeTimeout,
    RegistryUnavailable,
    RejectConnection,
    RemoteError,
    RpcError,
    SocketNotFound,
    SocketParked,
    WsManagerError,
)

#: The documented public modules: each declares ``__all__`` and the docs name it.
PUBLIC_MODULES = [
    "wsmanager.client",
    "wsmanager.contract",
    "wsmanager.exceptions",
    "wsmanager.layers",
    "wsmanager.node",
    "wsmanager.observe",
    "wsmanager.ops.drain",
    "wsmanager.ops.lifespan",
    "wsmanager.ops.metrics",
    "wsmanager.ops.probes",
    "wsmanager.ops.tracing",
    "wsmanager.registry",
    "wsmanager.registry.memory",
    "wsmanager.registry.redis",
    "wsmanager.testing",
    "wsmanager.testing.plugin",
    "wsmanager.topics",
]

#: What Django finds by convention (the app, its models, admin and command): public by place.
DJANGO_MODULES = {
    "wsmanager.admin",
    "wsmanager.apps",
    "wsmanager.models",
    "wsmanager.management",
    "wsmanager.management.commands",
    "wsmanager.management.commands.wsmanager",
}

#: Subsystem packages whose modules are all private; their ``__init__`` exports nothing
#: users may rely on (``servers`` exports the adapters' entry points to the layers above).
INTERNAL_PACKAGES = {
    "wsmanager.connection",
    "wsmanager.handlers",
    "wsmanager.jsonrpc",
    "wsmanager.ops",
    "wsmanager.servers",
}

ROOT = Path(__file__).resolve().parent.parent


def every_module() -> list[str]:
    """Every module of the wsmanager package, by dotted name."""
    package = ROOT / "wsmanager"
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def test_every_module_is_public_private_or_django_plumbing() -> None:
    """A module is documented public, found by Django, an internal package, or ``_``-prefixed
    (itself or a package above it): nothing is public by accident."""
    known = {"wsmanager", *PUBLIC_MODULES, *DJANGO_MODULES, *INTERNAL_PACKAGES}
    stray = [
        name
        for name in every_module()
        if name not in known and not any(p.startswith("_") for p in name.split("."))
    ]
    assert stray == []


def test_internal_packages_export_nothing_public() -> None:
    """The internal packages' ``__init__`` declares no ``__all__`` (``servers`` excepted, see above)."""
    exporting = [
        name
        for name in sorted(INTERNAL_PACKAGES - {"wsmanager.servers"})
        if hasattr(importlib.import_module(name), "__all__")
    ]
    assert exporting == []


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_modules_are_documented(module_name: str) -> None:
    """Each public module is named in README.md or docs/ (as a dotted path or an import)."""
    text = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    parent, _, leaf = module_name.rpartition(".")
    assert module_name in text or f"from {parent} import {leaf}" in text, module_name


def test_package_exports_exist() -> None:
    """Every name in ``wsmanager.__all__`` is an attribute of the package."""
    assert [name for name in wsmanager.__all__ if not hasattr(wsmanager, name)] == []


def test_package_exports_are_importable() -> None:
    """``from wsmanager import *`` binds every exported name."""
    namespace: dict[str, object] = {}
    exec("from wsmanager import *", namespace)
    assert set(wsmanager.__all__) <= set(namespace)


def test_package_all_is_sorted_without_duplicates() -> None:
    """``wsmanager.__all__`` is sorted and lists each name once."""
    assert wsmanager.__all__ == sorted(wsmanager.__all__)
    assert len(set(wsmanager.__all__)) == len(wsmanager.__all__)


def test_package_has_a_version() -> None:
    """``wsmanager.__version__`` is a dotted version string."""
    assert wsmanager.__version__.count(".") == 2


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_module_declares_all_with_existing_names(module_name: str) -> None:
    """Each public module has ``__all__``, without duplicates, naming defined things."""
    module = importlib.import_module(module_name)
    names = module.__all__
    assert names, module_name
    assert len(set(names)) == len(names)
    assert [name for name in names if not hasattr(module, name)] == []


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_package_reexports_come_from_their_modules(module_name: str) -> None:
    """A name exported by both the package and a module is the same object (but
    ``wsmanager.client``, the client's own namespace: its ``State`` is the client's)."""
    if module_name == "wsmanager.client":
        return
    module = importlib.import_module(module_name)
    for name in set(module.__all__) & set(wsmanager.__all__):
        assert getattr(wsmanager, name) is getattr(module, name), name


def test_every_exception_class_is_under_the_root() -> None:
    """Every exception of ``wsmanager.exceptions`` derives from WsManagerError: those defined there
    (the server's own) and those it takes from ``wsmanager_client.exceptions`` (shared with the client)."""
    classes = [getattr(exceptions, name) for name in exceptions.__all__]
    defined_here = [
        obj
        for obj in vars(exceptions).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__
    ]
    assert set(defined_here) <= set(classes)
    assert all(issubclass(cls, WsManagerError) for cls in classes)
    modules = {cls.__name__: cls.__module__ for cls in classes}
    shared = {"WsManagerError", "ConnectionClosed", "RpcError", "InvokeError", "InvokeTimeout", "RemoteError"}
    assert {name for name, module in modules.items() if module == "wsmanager_client.exceptions"} == shared
    assert {name for name, module in modules.items() if module == exceptions.__name__} == (
        set(exceptions.__all__) - shared
    )


def test_package_exports_every_exception() -> None:
    """Every exception is reachable as ``wsmanager.<Name>``."""
    assert set(exceptions.__all__) <= set(wsmanager.__all__)


@pytest.mark.parametrize(
    ("cls", "parents"),
    [
        (ConfigurationError, (WsManagerError, ImproperlyConfigured)),
        (SocketNotFound, (WsManagerError, LookupError)),
        (SocketParked, (SocketNotFound,)),
        (ConnectionClosed, (WsManagerError,)),
        (DeliveryError, (WsManagerError,)),
        (RegistryUnavailable, (WsManagerError,)),
        (RejectConnection, (WsManagerError,)),
        (RpcError, (WsManagerError,)),
        (InvokeError, (WsManagerError,)),
        (InvokeTimeout, (InvokeError, TimeoutError)),
        (RemoteError, (InvokeError,)),
    ],
)
def test_exception_hierarchy_matches_the_documented_tree(
    cls: type[Exception], parents: tuple[type[Exception], ...]
) -> None:
    """Each exception sits where the tree in ``wsmanager.exceptions`` says."""
    assert all(issubclass(cls, parent) for parent in parents)


def test_exceptions_carry_their_facts_and_print_readably() -> None:
    """Exceptions keep ids, codes and methods as attributes and in their message."""
    missing = SocketNotFound("abc", "chat")
    assert (missing.socket_id, missing.handler_name) == ("abc", "chat")
    assert "abc" in str(missing) and "chat" in str(missing)
    closed = ConnectionClosed("abc", 1006)
    assert closed.code == 1006 and "1006" in str(closed)
    timeout = InvokeTimeout("abc", "ask", 0.5)
    assert (timeout.socket_id, timeout.method, timeout.timeout) == ("abc", "ask", 0.5)
    assert "0.5s" in str(timeout)
    remote = RemoteError("abc", "ask", 4000, "no", {"x": 1})
    assert (remote.code, remote.message, remote.data) == (4000, "no", {"x": 1})
    assert "4000" in str(remote) and "ask" in str(remote)
    error = RpcError(4001, "Bad", [1])
    assert (error.code, error.message, error.data) == (4001, "Bad", [1])
    assert str(error) == "[4001] Bad"
    reject = RejectConnection("go", code=4003)
    assert (reject.reason, reject.code) == ("go", 4003)
    assert str(RejectConnection()) == "connection rejected"


@pytest.mark.parametrize(
    "error",
    [
        SocketNotFound("abc", "chat"),
        SocketParked("abc", "chat"),
        ConnectionClosed("abc", 1006),
        InvokeTimeout("abc", "ask", 0.5),
        RemoteError("abc", "ask", 4000, "no", {"x": 1}),
        RpcError(4001, "bad", [1, 2]),
        RejectConnection("go away", 4003),
        InvokeError("abc", "ask", "why"),
        DeliveryError("layer full"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exceptions_pickle_with_their_facts(error: WsManagerError) -> None:
    """A cross-process invoke or a process pool can send any of them and get it back whole."""
    import pickle

    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert back.__dict__ == error.__dict__
    assert str(back) == str(error)


def test_the_user_docs_name_no_private_module() -> None:
    """Pages for users point to public names: no ``wsmanager._conf`` nor ``wsmanager.x._y``.

    docs/architecture.md, the tour of the code for contributors, is the one
    page that names private modules (tests/test_architecture.py checks it)."""
    docs = ROOT / "docs"
    private = re.compile(r"\bwsmanager(?:\.[a-z]\w*)*\._\w+")
    named = {
        f"{page.name}: {match}"
        for page in sorted(docs.glob("*.md"))
        if page.name != "architecture.md"
        for match in private.findall(page.read_text())
    }
    assert named == set()
