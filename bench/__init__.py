"""Benchmarks of envforge, one script per area; each writes its own section of
docs/benchmarks.md. Shared timing, medians and section writing live in :mod:`bench.common`."""
