"""The benchmark suite: bare Channels vs python-socketio vs wsmanager.

``python -m bench`` starts real daphne processes for each system (ASGI apps in
:mod:`bench.apps`, settings in :mod:`bench.settings`), drives them from this
process with a load generator built on the ``websockets`` library
(:mod:`bench.wsclient`, :mod:`bench.systems`), runs the scenarios of
:mod:`bench.scenarios` interleaved, and prints a table of medians and ratios
against bare Channels (:mod:`bench.results`). ``--profile`` records py-spy
profiles of the servers instead (:mod:`bench.profiling`).

Options: ``--quick`` (tiny sizes, the smoke test), ``--scenario NAME``,
``--repeat N``, ``--redis-url URL`` (``none`` skips the Redis cases),
``--profile``. Results: docs/benchmarks.md.
"""
