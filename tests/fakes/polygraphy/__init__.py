"""Fake `polygraphy` (backend.trt loaders subset). See tests/fakes/README.md."""
