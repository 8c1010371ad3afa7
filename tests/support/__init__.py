"""Helpers of the tests (tiny hand-built inputs, a tiny store and checkpoint, cohort readers).

Test modules import them as ``tests.support.<module>``; what ``benchmarks/`` needs as well lives
in ``tissuebert.testing``."""
