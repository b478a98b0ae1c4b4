"""RQ job functions and the worker entry point. Thin: ids in, a service call, nothing else."""
