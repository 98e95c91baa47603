"""The gRPC servicers of the account service, one module per resource.

`client.py` serves AccountService (the caller's own data), `webhooks.py` WebhookService, and
`admin.py` composes AccountAdminService from one class per resource (users, trading accounts,
withdrawals, client groups, balance adjustments, audit) and the key RPCs of `auth/api.py`.
`status.py` is the one status change of users and trading accounts; `common.py` what they all
share. Servicers map request -> domain -> response: the rules are `domain.py`'s, the SQL
`store/`'s.
"""
