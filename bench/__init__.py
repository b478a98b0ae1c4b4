"""Benchmarks: `python -m bench.<name>` from the repository root. See bench/README.md."""
