"""Sign-in, tokens, signing keys and partner API keys of the account service (ADR 0005)."""
