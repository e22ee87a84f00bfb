"""Settings: defaults, effective values, and the system checks that report mistakes."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Error, Warning
from django.test import override_settings

from wsmanager import ConfigurationError
from wsmanager._checks import check_settings
from wsmanager._conf import DEFAULTS, get_settings, validate
from wsmanager.registry import InMemoryRegistry, get_registry, reset_registry

LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def errors(conf: Any) -> list[str]:
    """Messages of the wsmanager.E001 errors the checks report for ``conf`` (W001 aside)."""
    with override_settings(WSMANAGER=conf, CHANNEL_LAYERS=LAYERS):
        messages = check_settings()
    found = [m.msg for m in messages if isinstance(m, Error) and m.id == "wsmanager.E001"]
    others = [m for m in messages if m.id != "wsmanager.E001"]
    assert all(m.id == "wsmanager.W001" for m in others), others
    return found


def test_defaults_apply_when_unset() -> None:
    """Without WSMANAGER every documented default is in effect."""
    with override_settings(WSMANAGER=None):
        conf = get_settings()
    assert conf.registry_backend == DEFAULTS["REGISTRY"]["BACKEND"]
    assert dict(conf.registry_options) == {}
    assert conf.channel_layer == "default"
    assert conf.invoke_timeout == 30.0
    assert conf.heartbeat_interval == 5.0
    assert conf.max_outgoing_queue == 1000
    assert conf.allowed_origins is None
    assert conf.require_origin is False


def test_user_values_override_defaults() -> None:
    """User values replace defaults; unset keys keep theirs."""
    conf_in = {"INVOKE_TIMEOUT": 2, "ALLOWED_ORIGINS": ["a.example"], "CHANNEL_LAYER": None}
    with override_settings(WSMANAGER=conf_in):
        conf = get_settings()
    assert conf.invoke_timeout == 2.0
    assert conf.allowed_origins == ("a.example",)
    assert conf.channel_layer is None
    assert conf.max_outgoing_queue == 1000


@pytest.mark.parametrize(
    "conf",
    [
        None,
        {},
        dict(DEFAULTS),
        {"INVOKE_TIMEOUT": 0.5, "HEARTBEAT_INTERVAL": 1, "MAX_OUTGOING_QUEUE": 1},
        {"ALLOWED_ORIGINS": [], "REQUIRE_ORIGIN": True, "CHANNEL_LAYER": None},
        {"ALLOWED_ORIGINS": ("https://example.com", "*")},
        {"REGISTRY": {"BACKEND": "wsmanager.registry.memory.InMemoryRegistry"}},
    ],
)
def test_valid_settings_pass_the_checks(conf: Any) -> None:
    """Valid settings give no error."""
    assert errors(conf) == []


@pytest.mark.parametrize(
    ("conf", "mentions"),
    [
        ("not a dict", "must be a dict"),
        ({"INVOKE_TIMEOUTS": 1}, "unknown key 'INVOKE_TIMEOUTS'"),
        ({"REGISTRY": "wsmanager.registry.memory.InMemoryRegistry"}, '"REGISTRY"'),
        ({"REGISTRY": {"OPTIONS": {}}}, '"BACKEND"'),
        ({"REGISTRY": {"BACKEND": 1}}, '"BACKEND"'),
        ({"REGISTRY": {"BACKEND": "x.Y", "OPTIONS": []}}, '"OPTIONS"'),
        ({"CHANNEL_LAYER": 1}, '"CHANNEL_LAYER"'),
        ({"INVOKE_TIMEOUT": 0}, '"INVOKE_TIMEOUT"'),
        ({"INVOKE_TIMEOUT": -1}, '"INVOKE_TIMEOUT"'),
        ({"INVOKE_TIMEOUT": "30"}, '"INVOKE_TIMEOUT"'),
        ({"INVOKE_TIMEOUT": True}, '"INVOKE_TIMEOUT"'),
        ({"INVOKE_TIMEOUT": float("nan")}, '"INVOKE_TIMEOUT"'),
        ({"HEARTBEAT_INTERVAL": 0}, '"HEARTBEAT_INTERVAL"'),
        ({"HEARTBEAT_INTERVAL": None}, '"HEARTBEAT_INTERVAL"'),
        ({"MAX_OUTGOING_QUEUE": 0}, '"MAX_OUTGOING_QUEUE"'),
        ({"MAX_OUTGOING_QUEUE": 1.5}, '"MAX_OUTGOING_QUEUE"'),
        ({"MAX_OUTGOING_QUEUE": True}, '"MAX_OUTGOING_QUEUE"'),
        ({"ALLOWED_ORIGINS": "example.com"}, '"ALLOWED_ORIGINS"'),
        ({"ALLOWED_ORIGINS": ["ok.example", 1]}, '"ALLOWED_ORIGINS"'),
        ({"ALLOWED_ORIGINS": 5}, '"ALLOWED_ORIGINS"'),
        ({"REQUIRE_ORIGIN": "yes"}, '"REQUIRE_ORIGIN"'),
        ({"REQUIRE_ORIGIN": 1}, '"REQUIRE_ORIGIN"'),
        ({"TRUSTED_PROXIES": "127.0.0.1"}, '"TRUSTED_PROXIES"'),
        ({"TRUSTED_PROXIES": ["10.0.0.0/8", "proxy.local"]}, "'proxy.local'"),
    ],
)
def test_each_bad_value_is_reported(conf: Any, mentions: str) -> None:
    """Every invalid WSMANAGER value gives one E001 error naming the key."""
    messages = errors(conf)
    assert len(messages) == 1, messages
    assert mentions in messages[0]


def test_several_bad_values_are_all_reported() -> None:
    """Independent mistakes are reported together, not one per start-up."""
    messages = errors({"INVOKE_TIMEOUT": 0, "MAX_OUTGOING_QUEUE": 0, "NOPE": 1})
    assert len(messages) == 3


def test_validate_accepts_an_explicit_mapping() -> None:
    """``validate(raw)`` checks the given mapping instead of the settings."""
    assert validate({}) == []
    assert validate({"INVOKE_TIMEOUT": -1}) != []


def test_missing_channel_layer_gives_w001() -> None:
    """No 'default' channel layer gives warning W001 (local delivery only)."""
    with override_settings(WSMANAGER={}, CHANNEL_LAYERS={}):
        messages = check_settings()
    assert [(type(m), m.id) for m in messages] == [(Warning, "wsmanager.W001")]
    assert "'default'" in messages[0].msg


def test_w001_names_the_configured_alias() -> None:
    """W001 names the alias from WSMANAGER CHANNEL_LAYER when it is missing."""
    with override_settings(WSMANAGER={"CHANNEL_LAYER": "fanout"}, CHANNEL_LAYERS=LAYERS):
        messages = check_settings()
    assert [m.id for m in messages] == ["wsmanager.W001"]
    assert "'fanout'" in messages[0].msg


def test_no_w001_when_the_layer_exists_or_is_disabled() -> None:
    """A configured layer, or CHANNEL_LAYER None, gives no warning."""
    with override_settings(WSMANAGER={}, CHANNEL_LAYERS=LAYERS):
        assert check_settings() == []
    with override_settings(WSMANAGER={"CHANNEL_LAYER": None}, CHANNEL_LAYERS={}):
        assert check_settings() == []


def test_registry_backend_is_built_from_settings() -> None:
    """The registry comes from REGISTRY BACKEND, once per process until reset."""
    reset_registry()
    assert isinstance(get_registry(), InMemoryRegistry)
    assert get_registry() is get_registry()


@pytest.mark.parametrize(
    "backend", ["no.such.Module", "wsmanager._conf.get_settings", "wsmanager.registry.Nope"]
)
def test_bad_registry_backend_raises_configuration_error(backend: str) -> None:
    """An unimportable or non-backend REGISTRY BACKEND raises ConfigurationError."""
    reset_registry()
    with (
        override_settings(WSMANAGER={"REGISTRY": {"BACKEND": backend}}),
        pytest.raises(ConfigurationError, match=backend),
    ):
        get_registry()
    reset_registry()
