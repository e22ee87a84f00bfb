"""(c) wsmanager with Prometheus metrics installed: ``python -m bench --metrics``.

The same application as :mod:`bench.apps.wsm`, plus ``wsmanager.ops.metrics.install()``
before any socket opens, so that every hook of :mod:`wsmanager.observe` updates a
prometheus-client metric. Run beside the plain one, interleaved, it measures
what the metrics cost.
"""

from __future__ import annotations

from wsmanager.ops import metrics

from .wsm import application

__all__ = ["application"]

metrics.install()
