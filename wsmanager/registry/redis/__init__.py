"""The Redis registry backend: :class:`RedisRegistry`, named in settings as
``"wsmanager.registry.redis.RedisRegistry"``, and :func:`channel_layer_host`,
channels_redis's ``hosts`` entry for the same URL (``redis://`` or
``redis+sentinel://``).

Private modules: ``_registry`` (the backend), ``_common`` (keys and
encoding), ``_scripts`` (the Lua scripts), ``_recovery`` (the journal on
Redis) and ``_activity`` (node statistics and socket activity).
"""

from ._common import channel_layer_host
from ._registry import RedisRegistry

__all__ = ["RedisRegistry", "channel_layer_host"]
