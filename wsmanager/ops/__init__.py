"""For operators: the public modules :mod:`~wsmanager.ops.metrics`
(Prometheus), :mod:`~wsmanager.ops.tracing` (OpenTelemetry),
:mod:`~wsmanager.ops.probes` (health and readiness views),
:mod:`~wsmanager.ops.drain` (a graceful stop) and
:mod:`~wsmanager.ops.lifespan` (the ASGI lifespan app); ``_health`` is the
process's draining flag. Import the module you need; this package imports
none of them.
"""
