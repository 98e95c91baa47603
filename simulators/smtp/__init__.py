"""The dev stack's SMTP sink: a real SMTP server (PyPI `aiosmtpd`) that stores what it receives."""
