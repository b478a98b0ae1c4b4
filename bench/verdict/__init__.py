"""bench/verdict: how long a verdict takes on a large experiment. See bench/README.md."""
