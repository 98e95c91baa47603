"""The account service: identity, client groups, trading accounts, the ledger, API keys,
webhooks and audit (issue #4)."""
