"""bench/dispatch: N messages through real workers into the SendGrid stub over TLS, for Fluister
and for a naive baseline (one RQ job and one SDK call per message). See bench/README.md."""
