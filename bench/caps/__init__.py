"""bench/caps: what a volume-cap check costs against a Redis PING, and how closely the SMS
pacer holds several worker processes to a sender number's rate. See bench/README.md."""
