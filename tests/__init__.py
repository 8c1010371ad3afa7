"""The test suite is a package so that its helpers import as ``tests.support.<module>``: pytest
puts the repository root (the folder above this package) on ``sys.path``."""
