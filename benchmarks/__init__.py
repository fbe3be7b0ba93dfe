"""benchmarks
~~~~~~~~~~

Ratios, not absolute numbers: every candidate is measured in one process,
interleaved round-robin with the baselines it is compared to, because the
machines this runs on are shared and noisy.

Run ``python -m benchmarks`` (about three minutes on two cores),
``python -m benchmarks --quick`` (a smoke run), ``python -m benchmarks --load``
(adds a gunicorn load test on 127.0.0.1), ``--production`` (adds the production
shape: gunicorn with 4 workers, PostgreSQL, replay on PostgreSQL and on Redis;
see :mod:`benchmarks.production`) and ``--write docs/benchmarks.md`` to
regenerate the results file; ``--production-only --write docs/benchmarks.md``
regenerates the production-shape section alone.
"""
