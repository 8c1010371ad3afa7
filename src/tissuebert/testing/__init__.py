"""testing: data generators and slow reference paths that tests and ``benchmarks/`` share.

No command imports this package. It lives under ``tissuebert`` (not ``tests/``) because the
benchmark scripts run from ``benchmarks/`` and must import it without touching ``sys.path``;
helpers only the tests need stay in ``tests/support``.
"""
