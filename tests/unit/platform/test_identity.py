"""The caller from the edge's headers, and the edge token check."""

from __future__ import annotations

import contextvars

import pytest

from services.platform.identity import Caller
from services.platform.identity import current_caller
from services.platform.identity import edge_token_matches
from services.platform.identity import set_caller
from services.platform.secrets import Secret

TOKEN = Secret("edge-token")


def test_caller_is_read_from_the_identity_headers() -> None:
    metadata = [
        ("x-tm-subject", "user-1"),
        ("x-tm-roles", "client,broker_admin"),
        ("x-tm-accounts", "acc-1, acc-2"),
        ("x-tm-api-key-id", "key-1"),
        ("x-tm-client-ip", "203.0.113.7"),
        ("user-agent", "grpc-python"),
    ]

    caller = Caller.from_metadata(metadata, "req-1")

    assert caller == Caller(
        subject="user-1",
        roles=frozenset({"client", "broker_admin"}),
        account_ids=frozenset({"acc-1", "acc-2"}),
        api_key_id="key-1",
        request_id="req-1",
        client_ip="203.0.113.7",
    )
    assert caller.authenticated
    assert caller.has_role("broker_admin")
    assert caller.owns_account("acc-2")
    assert not caller.owns_account("acc-3")


def test_no_identity_headers_is_an_anonymous_caller() -> None:
    caller = Caller.from_metadata([], "req-1")

    assert not caller.authenticated
    assert (caller.roles, caller.account_ids, caller.api_key_id) == (frozenset(), frozenset(), None)


def test_empty_items_in_lists_are_ignored() -> None:
    caller = Caller.from_metadata([("x-tm-roles", " , client,,")], "r")

    assert caller.roles == {"client"}


def test_repeated_identity_header_is_refused() -> None:
    with pytest.raises(ValueError, match="x-tm-accounts"):
        Caller.from_metadata([("x-tm-accounts", "a"), ("x-tm-accounts", "b")], "r")


@pytest.mark.parametrize(
    ("metadata", "trusted"),
    [
        ([("x-tm-edge-token", "edge-token")], True),
        ([], False),
        ([("x-tm-edge-token", "edge-tokeN")], False),
        ([("x-tm-edge-token", "edge-token-and-more")], False),
        ([("x-tm-edge-token", "edge-token"), ("x-tm-edge-token", "edge-token")], False),
        ([("x-tm-edge-token", b"edge-token")], False),
    ],
)
def test_edge_token_must_be_present_once_and_exact(
    metadata: list[tuple[str, str | bytes]], trusted: bool
) -> None:
    assert edge_token_matches(metadata, TOKEN) is trusted


def test_current_caller_outside_a_call_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="only known while serving"):
        contextvars.Context().run(current_caller)


def test_current_caller_is_the_one_set_for_the_call() -> None:
    caller = Caller("user-1", frozenset(), frozenset(), None, "req-1")

    def serve_call() -> Caller:
        set_caller(caller)
        return current_caller()

    assert contextvars.Context().run(serve_call) is caller


def test_scopes_and_session_come_from_their_headers() -> None:
    caller = Caller.from_metadata(
        [("x-tm-scopes", "read  trade"), ("x-tm-session-id", " s-1 "), ("x-tm-subject", "u")], "r"
    )

    assert caller.scopes == {"read", "trade"}
    assert caller.session_id == "s-1"


def test_no_scope_or_session_headers_leave_them_empty() -> None:
    caller = Caller.from_metadata([("x-tm-subject", "u")], "r")

    assert caller.scopes == frozenset()
    assert caller.session_id is None


def test_repeated_session_header_is_refused() -> None:
    with pytest.raises(ValueError, match="x-tm-session-id"):
        Caller.from_metadata([("x-tm-session-id", "a"), ("x-tm-session-id", "b")], "r")
