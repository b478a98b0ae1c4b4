"""Local stand-ins for the providers' HTTP APIs (SendGrid, Twilio), close enough that
their official SDKs run against them unmodified. See base.py for the shared switches."""
