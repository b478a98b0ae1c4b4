"""The providers' signed webhooks: delivery reports and incoming messages."""
