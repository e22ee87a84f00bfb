"""The Redis registry backend: :class:`RedisRegistry`, named in settings as
``"wsmanager.registry.redis.RedisRegistry"``.

Private modules: ``_registry`` (the backend), ``_common`` (keys and
encoding), ``_scripts`` (the Lua scripts), ``_recovery`` (the journal on
Redis) and ``_activity`` (node statistics and socket activity).
"""

from ._registry import RedisRegistry

__all__ = ["RedisRegistry"]
