"""The forward POST under load, against a hello-world endpoint of the same app: `python -m bench.forward`."""
