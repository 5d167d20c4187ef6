"""Fake `pycuda` (driver subset). See tests/fakes/README.md."""
