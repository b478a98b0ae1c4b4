"""bench/analytics: the campaign dashboard's queries on a generated campaign of 1,000,000 forwards."""
