"""Sign-in, tokens, refresh rotation, API keys and signing key rotation, against the real stack
and through Envoy (jwt_authn against the account service's JWKS, signed by OpenBao transit).

Users are made per test straight in PostgreSQL (as the stack's admin), so each test has its own
rate-limit buckets and sessions. Bad tokens are minted here: with `cryptography` (an unknown key,
a tampered signature) or with the stack's transit key through the root token (expired, another
audience), so that only the property under test is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import math
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import hvac  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa

from stack.operator_tls import service_channel
from tests.integration.conftest import RunningStack
from tests.integration.events import outbox_events
from tests.integration.support.edge import Edge
from tests.integration.support.edge import User
from tests.integration.support.edge import bearer
from tests.integration.support.edge import login
from tests.integration.support.edge import make_user
from tests.integration.support.edge import refused
from tests.integration.support.edge import restart_envoy
from tradingmesh.account.v1 import account_admin_service_pb2 as admin_pb2
from tradingmesh.account.v1 import account_admin_service_pb2_grpc as admin_grpc
from tradingmesh.account.v1 import account_events_pb2
from tradingmesh.account.v1 import account_pb2
from tradingmesh.account.v1 import auth_service_pb2 as auth_pb2
from tradingmesh.account.v1 import auth_service_pb2_grpc as auth_grpc
from tradingmesh.common.v1.errors_pb2 import ErrorReason

LOGOUT = "/tradingmesh.account.v1.AuthService/Logout"


# ---- the stack ------------------------------------------------------------------------------


def refresh(edge: Edge, refresh_token: str) -> auth_pb2.RefreshTokenResponse:
    with edge.channel() as channel:
        response: auth_pb2.RefreshTokenResponse = auth_grpc.AuthServiceStub(channel).RefreshToken(
            auth_pb2.RefreshTokenRequest(refresh_token=refresh_token), timeout=20
        )
    return response


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return _json_part(header), _json_part(payload)


def _json_part(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def sign_with_transit(edge: Edge, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A token signed by the stack's real signing key (root token), with any claims."""
    unsigned = _unsigned(header, payload)
    version = int(header["kid"].rsplit("-v", 1)[1])
    client = hvac.Client(
        url=edge.state.vault.address,
        token=Path(edge.state.vault.root_token_file).read_text().strip(),
    )
    signed = client.secrets.transit.sign_data(
        name="access-token",
        hash_input=base64.b64encode(unsigned.encode()).decode(),
        key_version=version,
        hash_algorithm="sha2-256",
        signature_algorithm="pkcs1v15",
        marshaling_algorithm="jws",
    )
    return f"{unsigned}.{signed['data']['signature'].rsplit(':', 1)[1]}"


def sign_with_unknown_key(header: dict[str, Any], payload: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unsigned = _unsigned(header, payload)
    signature = key.sign(unsigned.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{unsigned}.{_b64(signature)}"


def logout_grpc(edge: Edge, token: str | None) -> auth_pb2.LogoutResponse:
    with edge.channel() as channel:
        response: auth_pb2.LogoutResponse = auth_grpc.AuthServiceStub(channel).Logout(
            auth_pb2.LogoutRequest(), timeout=20, metadata=bearer(token) if token else None
        )
    return response


def logout_rest(edge: Edge, token: str | None) -> tuple[int, dict[str, Any]]:
    connection = edge.https()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    connection.request("POST", "/v1/auth/logout", body=b"{}", headers=headers)
    response = connection.getresponse()
    body = response.read()
    try:
        parsed: dict[str, Any] = json.loads(body)
    except ValueError:
        parsed = {"text": body.decode(errors="replace")}
    return response.status, parsed


def logout_grpc_web(edge: Edge, token: str | None) -> tuple[int, int, bytes]:
    """HTTP status, grpc-status and the first message's bytes of a gRPC-web Logout."""
    connection = edge.https()
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    message = auth_pb2.LogoutRequest().SerializeToString()
    frame = b"\x00" + len(message).to_bytes(4, "big") + message
    connection.request("POST", LOGOUT, body=frame, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    status = response.getheader("grpc-status")
    first = b""
    offset = 0
    while offset + 5 <= len(payload):
        flag, size = payload[offset], int.from_bytes(payload[offset + 1 : offset + 5], "big")
        body = payload[offset + 5 : offset + 5 + size]
        if flag & 0x80:  # the trailer frame
            for line in body.decode().split("\r\n"):
                if line.lower().startswith("grpc-status:"):
                    status = line.split(":", 1)[1].strip()
        elif not first:
            first = body
        offset += 5 + size
    assert status is not None, (response.status, payload)
    return response.status, int(status), first


# ---- sign-in and the edge's token check -----------------------------------------------------


def test_login_returns_an_rs256_token_with_the_contract_claims(edge: Edge) -> None:
    user = make_user(edge, ["trader"])

    response = login(edge, user)

    header, claims = claims_of(response.access_token)
    assert header["alg"] == "RS256"
    assert header["kid"].startswith("access-token-v")
    assert claims["iss"] == "tradingmesh"
    assert claims["aud"] == "trading-api"
    assert claims["sub"] == user.id == response.user_id
    assert claims["roles"] == ["trader"]
    assert claims["account_ids"] == [user.account_id]
    assert claims["group"] == "standard"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert uuid.UUID(claims["jti"])
    assert uuid.UUID(claims["sid"])
    assert response.token_type == "Bearer"
    assert response.expires_in.seconds == 15 * 60
    assert response.refresh_token.startswith(claims["sid"] + ".")


def test_wrong_password_and_unknown_user_are_the_same_refusal(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    wrong = User(user.id, user.username, "not-the-password", user.account_id)
    nobody = User(user.id, f"nobody-{uuid.uuid4().hex[:8]}", user.password, user.account_id)

    first = refused(lambda: login(edge, wrong))
    second = refused(lambda: login(edge, nobody))

    assert first == second
    assert first[:2] == (
        grpc.StatusCode.UNAUTHENTICATED,
        ErrorReason.ERROR_REASON_INVALID_CREDENTIALS,
    )


def test_a_protected_rpc_works_with_the_token_over_grpc_grpc_web_and_rest(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    sessions = [login(edge, user) for _ in range(3)]

    over_grpc = logout_grpc(edge, sessions[0].access_token)
    web_http, web_status, web_body = logout_grpc_web(edge, sessions[1].access_token)
    rest_http, rest_body = logout_rest(edge, sessions[2].access_token)

    # Logout revokes the calling session: the edge forwarded the token's `sid` and `sub`.
    assert over_grpc.revoked_session_count == 1
    assert (web_http, web_status) == (200, 0)
    assert auth_pb2.LogoutResponse.FromString(web_body).revoked_session_count == 1
    assert (rest_http, rest_body) == (200, {"revoked_session_count": 1})
    for session in sessions:
        _code, reason, _ = refused(lambda s=session: refresh(edge, s.refresh_token))
        assert reason == ErrorReason.ERROR_REASON_REFRESH_TOKEN_REUSED


def test_roles_reach_the_service_from_the_token(edge: Edge) -> None:
    admin = make_user(edge, ["admin"])
    trader = make_user(edge, ["trader"])
    admin_token = login(edge, admin).access_token
    trader_token = login(edge, trader).access_token

    with edge.channel() as channel:
        stub = admin_grpc.AccountAdminServiceStub(channel)
        listed = stub.ListSigningKeys(
            admin_pb2.ListSigningKeysRequest(), timeout=20, metadata=bearer(admin_token)
        )
        denied = refused(
            lambda: stub.ListSigningKeys(
                admin_pb2.ListSigningKeysRequest(), timeout=20, metadata=bearer(trader_token)
            )
        )

    assert any(
        k.status == account_pb2.SigningKeyStatus.SIGNING_KEY_STATUS_ACTIVE
        for k in listed.signing_keys
    )
    assert denied[:2] == (
        grpc.StatusCode.PERMISSION_DENIED,
        ErrorReason.ERROR_REASON_PERMISSION_DENIED,
    )


def _bad_tokens(edge: Edge, user: User, good: str) -> dict[str, str]:
    header, claims = claims_of(good)
    now = int(time.time())
    expired = {**claims, "iat": now - 1000, "exp": now - 5}
    other_audience = {**claims, "aud": "someone-else"}
    promoted = {**claims, "roles": ["admin"]}
    signature = good.rpartition(".")[2]
    return {
        "expired": sign_with_transit(edge, header, expired),
        "wrong audience": sign_with_transit(edge, header, other_audience),
        # The payload changed after signing: the signature no longer covers it.
        "tampered": f"{_unsigned(header, promoted)}.{signature}",
        "unknown key": sign_with_unknown_key(header, claims),
        "garbage": "not-a-jwt",
    }


def test_missing_expired_tampered_foreign_and_unknown_tokens_are_unauthenticated(
    edge: Edge,
) -> None:
    user = make_user(edge, ["trader"])
    session = login(edge, user)
    bad = {"missing": None, **_bad_tokens(edge, user, session.access_token)}

    for name, token in bad.items():
        code, _, message = refused(lambda t=token: logout_grpc(edge, t))
        web_http, web_status, _ = logout_grpc_web(edge, token)
        rest_http, rest_body = logout_rest(edge, token)

        assert code == grpc.StatusCode.UNAUTHENTICATED, (name, message)
        # gRPC-web gets gRPC's trailers-only form: HTTP 200, the status in grpc-status.
        assert (web_http, web_status) == (200, 16), name
        assert rest_http == 401, (name, rest_body)

    # Nothing changed: the session that those calls tried to sign out still refreshes.
    assert refresh(edge, session.refresh_token).access_token


# ---- refresh rotation -----------------------------------------------------------------------


def test_each_refresh_token_works_once_and_reuse_revokes_the_family(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    first = login(edge, user)
    second = refresh(edge, first.refresh_token)

    reused = refused(lambda: refresh(edge, first.refresh_token))
    newest = refused(lambda: refresh(edge, second.refresh_token))

    assert second.refresh_token != first.refresh_token
    assert claims_of(second.access_token)[1]["sid"] == claims_of(first.access_token)[1]["sid"]
    assert reused[:2] == (
        grpc.StatusCode.UNAUTHENTICATED,
        ErrorReason.ERROR_REASON_REFRESH_TOKEN_REUSED,
    )
    assert newest[:2] == (
        grpc.StatusCode.UNAUTHENTICATED,
        ErrorReason.ERROR_REASON_REFRESH_TOKEN_REUSED,
    )
    family = claims_of(first.access_token)[1]["sid"]
    with edge.database() as db:
        row = db.execute(
            "SELECT revoke_reason, revoked_from_ip FROM account.refresh_families WHERE id = %s",
            (family,),
        ).fetchone()
        tokens = db.execute(
            "SELECT count(*), count(spent_at) FROM account.refresh_tokens WHERE family_id = %s",
            (family,),
        ).fetchone()
        envelopes = db.execute(
            "SELECT payload FROM account.outbox WHERE position(%s::bytea IN payload) > 0",
            (family.encode(),),
        ).fetchall()
    assert row == ("REUSE_DETECTED", "127.0.0.1")
    assert tokens == (2, 1)  # stored as hashes only; the second was never spent
    revoked = [
        account_events_pb2.TokenFamilyRevoked.FromString(event.data)
        for event in outbox_events(envelopes, "account.token_family.revoked")
    ]
    assert [(e.token_family_id, e.reason) for e in revoked if e.token_family_id == family] == [
        (family, account_events_pb2.TOKEN_FAMILY_REVOKE_REASON_REUSE_DETECTED)
    ]


def test_refresh_survives_redis_losing_its_state_and_still_detects_reuse(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    first = login(edge, user)
    with edge.redis() as client:
        for key in client.scan_iter(match="auth:r*"):
            client.delete(key)

    second = refresh(edge, first.refresh_token)
    with edge.redis() as client:
        for key in client.scan_iter(match="auth:r*"):
            client.delete(key)
    reused = refused(lambda: refresh(edge, first.refresh_token))

    assert second.access_token
    assert reused[1] == ErrorReason.ERROR_REASON_REFRESH_TOKEN_REUSED


def test_an_unknown_refresh_token_is_unauthenticated(edge: Edge) -> None:
    made_up = f"{uuid.uuid4()}.{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"

    code, reason, _ = refused(lambda: refresh(edge, made_up))

    assert (code, reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        ErrorReason.ERROR_REASON_UNAUTHENTICATED,
    )


def test_logout_all_sessions_revokes_every_family(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    sessions = [login(edge, user) for _ in range(3)]

    with edge.channel() as channel:
        signed_out = auth_grpc.AuthServiceStub(channel).Logout(
            auth_pb2.LogoutRequest(all_sessions=True),
            timeout=20,
            metadata=bearer(sessions[0].access_token),
        )
    again = logout_grpc(edge, sessions[0].access_token)

    assert signed_out.revoked_session_count == 3
    assert again.revoked_session_count == 0  # idempotent
    for session in sessions:
        assert refused(lambda s=session: refresh(edge, s.refresh_token))[1] == (
            ErrorReason.ERROR_REASON_REFRESH_TOKEN_REUSED
        )


def test_change_password_signs_out_the_other_sessions(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    mine, other = login(edge, user), login(edge, user)
    new_password = f"new-{uuid.uuid4().hex}"

    with edge.channel() as channel:
        stub = auth_grpc.AuthServiceStub(channel)
        wrong = refused(
            lambda: stub.ChangePassword(
                auth_pb2.ChangePasswordRequest(current_password="nope", new_password=new_password),
                timeout=20,
                metadata=bearer(mine.access_token),
            )
        )
        changed = stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(
                current_password=user.password, new_password=new_password
            ),
            timeout=20,
            metadata=bearer(mine.access_token),
        )

    assert wrong[1] == ErrorReason.ERROR_REASON_INVALID_CREDENTIALS
    assert changed.revoked_session_count == 1
    assert refresh(edge, mine.refresh_token).access_token
    assert refused(lambda: refresh(edge, other.refresh_token))[1] == (
        ErrorReason.ERROR_REASON_REFRESH_TOKEN_REUSED
    )
    assert refused(lambda: login(edge, user))[1] == ErrorReason.ERROR_REASON_INVALID_CREDENTIALS
    assert login(edge, User(user.id, user.username, new_password, user.account_id)).access_token


# ---- bypassing the edge ---------------------------------------------------------------------


def test_a_direct_call_with_forged_identity_headers_is_refused(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    session = login(edge, user)
    forged = (
        ("x-tm-subject", user.id),
        ("x-tm-roles", "admin"),
        ("x-tm-session-id", claims_of(session.access_token)[1]["sid"]),
        ("authorization", f"Bearer {session.access_token}"),
    )

    with service_channel(edge.state, "account") as channel:
        stub = auth_grpc.AuthServiceStub(channel)
        without_token = refused(
            lambda: stub.Logout(auth_pb2.LogoutRequest(), timeout=20, metadata=forged)
        )
        wrong_token = refused(
            lambda: stub.Logout(
                auth_pb2.LogoutRequest(),
                timeout=20,
                metadata=(*forged, ("x-tm-edge-token", "guessed")),
            )
        )

    for refusal in (without_token, wrong_token):
        assert refusal[:2] == (
            grpc.StatusCode.UNAUTHENTICATED,
            ErrorReason.ERROR_REASON_UNTRUSTED_CALLER,
        )
    # Nothing was signed out.
    assert refresh(edge, session.refresh_token).access_token


def test_identity_headers_sent_through_the_edge_are_replaced_by_the_tokens(edge: Edge) -> None:
    trader = make_user(edge, ["trader"])
    token = login(edge, trader).access_token

    with edge.channel() as channel:
        denied = refused(
            lambda: admin_grpc.AccountAdminServiceStub(channel).ListSigningKeys(
                admin_pb2.ListSigningKeysRequest(),
                timeout=20,
                metadata=(*bearer(token), ("x-tm-roles", "admin"), ("x-tm-subject", "root")),
            )
        )

    assert denied[0] == grpc.StatusCode.PERMISSION_DENIED


# ---- partner API keys -----------------------------------------------------------------------


def test_api_key_is_exchanged_for_a_scoped_token_and_stops_working_when_revoked(
    edge: Edge,
) -> None:
    admin, partner = make_user(edge, ["admin"]), make_user(edge, ["trader"])
    admin_token = login(edge, admin).access_token

    with edge.channel() as channel:
        admin_stub = admin_grpc.AccountAdminServiceStub(channel)
        auth = auth_grpc.AuthServiceStub(channel)
        created = admin_stub.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(
                user_id=partner.id,
                name="Acme Bridge",
                scopes=[account_pb2.ApiKeyScope.API_KEY_SCOPE_READ],
                account_ids=[partner.account_id],
            ),
            timeout=20,
            metadata=bearer(admin_token),
        )
        key = created.api_key
        exchanged = auth.ExchangeApiKey(
            auth_pb2.ExchangeApiKeyRequest(api_key_id=key.id, secret=created.secret), timeout=20
        )
        # The key's token passes the edge; Logout without all_sessions does nothing for it.
        key_logout = auth.Logout(
            auth_pb2.LogoutRequest(), timeout=20, metadata=bearer(exchanged.access_token)
        )
        # An API key never acts as staff, even for an admin's key.
        staff_denied = refused(
            lambda: admin_stub.ListApiKeys(
                admin_pb2.ListApiKeysRequest(), timeout=20, metadata=bearer(exchanged.access_token)
            )
        )
        wrong_secret = refused(
            lambda: auth.ExchangeApiKey(
                auth_pb2.ExchangeApiKeyRequest(api_key_id=key.id, secret=created.secret + "x"),
                timeout=20,
            )
        )
        listed = admin_stub.ListApiKeys(
            admin_pb2.ListApiKeysRequest(user_id=partner.id),
            timeout=20,
            metadata=bearer(admin_token),
        )
        revoked = admin_stub.RevokeApiKey(
            admin_pb2.RevokeApiKeyRequest(api_key_id=key.id, reason="rotated by partner"),
            timeout=20,
            metadata=bearer(admin_token),
        )
        after_revoke = refused(
            lambda: auth.ExchangeApiKey(
                auth_pb2.ExchangeApiKeyRequest(api_key_id=key.id, secret=created.secret), timeout=20
            )
        )

    _, claims = claims_of(exchanged.access_token)
    assert created.secret.startswith("tmk_")
    assert created.secret.startswith(key.prefix)
    assert key.status == account_pb2.ApiKeyStatus.API_KEY_STATUS_ACTIVE
    assert (claims["api_key_id"], claims["scope"], claims["account_ids"]) == (
        key.id,
        "read",
        [partner.account_id],
    )
    assert "sid" not in claims
    assert list(exchanged.scopes) == [account_pb2.ApiKeyScope.API_KEY_SCOPE_READ]
    assert key_logout.revoked_session_count == 0
    assert staff_denied[0] == grpc.StatusCode.PERMISSION_DENIED
    assert wrong_secret[1] == ErrorReason.ERROR_REASON_INVALID_CREDENTIALS
    assert [k.id for k in listed.api_keys] == [key.id]
    assert listed.api_keys[0].HasField("last_used_time")
    assert revoked.api_key.status == account_pb2.ApiKeyStatus.API_KEY_STATUS_REVOKED
    assert after_revoke[:2] == (
        grpc.StatusCode.PERMISSION_DENIED,
        ErrorReason.ERROR_REASON_ACCOUNT_DISABLED,
    )
    with edge.database() as db:
        stored = db.execute(
            "SELECT secret_hash FROM account.api_keys WHERE id = %s", (key.id,)
        ).fetchone()
        audit = db.execute(
            "SELECT action FROM account.audit_records WHERE resource_id = %s ORDER BY sequence",
            (key.id,),
        ).fetchall()
    assert stored is not None
    assert stored[0].startswith("$argon2")
    assert created.secret not in stored[0]
    assert [a[0] for a in audit] == ["api_key.create", "api_key.revoke"]


def test_an_api_key_for_another_users_account_is_not_found(edge: Edge) -> None:
    admin, partner, other = (make_user(edge, r) for r in (["admin"], ["trader"], ["trader"]))
    admin_token = login(edge, admin).access_token

    with edge.channel() as channel:
        code, reason, _ = refused(
            lambda: admin_grpc.AccountAdminServiceStub(channel).CreateApiKey(
                admin_pb2.CreateApiKeyRequest(
                    user_id=partner.id,
                    name="Not theirs",
                    scopes=[account_pb2.ApiKeyScope.API_KEY_SCOPE_TRADE],
                    account_ids=[other.account_id],
                ),
                timeout=20,
                metadata=bearer(admin_token),
            )
        )

    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, ErrorReason.ERROR_REASON_NOT_FOUND)
    with edge.database() as db:
        count = db.execute(
            "SELECT count(*) FROM account.api_keys WHERE user_id = %s", (partner.id,)
        ).fetchone()
    assert count == (0,)


# ---- rate limits ----------------------------------------------------------------------------


async def _burst(edge: Edge, token: str, calls: int) -> list[grpc.StatusCode]:
    async with grpc.aio.secure_channel(edge.state.endpoints.grpc, edge.credentials()) as channel:
        stub = admin_grpc.AccountAdminServiceStub(channel)

        async def one() -> grpc.StatusCode:
            try:
                await stub.ListSigningKeys(
                    admin_pb2.ListSigningKeysRequest(), timeout=30, metadata=bearer(token)
                )
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        return list(await asyncio.gather(*(one() for _ in range(calls))))


def test_a_burst_past_the_per_user_limit_is_refused_and_other_users_are_not(edge: Edge) -> None:
    noisy, quiet = make_user(edge, ["trader"]), make_user(edge, ["trader"])
    noisy_token, quiet_token = login(edge, noisy).access_token, login(edge, quiet).access_token

    codes = asyncio.run(_burst(edge, noisy_token, 400))
    others = asyncio.run(_burst(edge, quiet_token, 1))

    # Traders may not list signing keys: every call that passed the edge is PERMISSION_DENIED.
    assert set(codes) == {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 100
    assert others == [grpc.StatusCode.PERMISSION_DENIED]


def test_rest_past_the_per_user_limit_gets_429_with_rate_limit_headers(edge: Edge) -> None:
    user = make_user(edge, ["trader"])
    token = login(edge, user).access_token
    connection = edge.https()

    statuses = []
    limited: http.client.HTTPResponse | None = None
    for _ in range(400):
        connection.request(
            "GET", "/v1/admin/signing-keys", headers={"authorization": f"Bearer {token}"}
        )
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        if response.status == 429:
            limited = response
            break

    assert limited is not None, statuses[-5:]
    assert set(statuses[:-1]) == {403}
    assert limited.getheader("x-ratelimit-limit") is not None
    assert limited.getheader("x-ratelimit-remaining") == "0"


def test_sign_in_is_limited_harder_than_other_routes_per_address(edge: Edge) -> None:
    # From 127.0.0.2: its own address buckets, so no other test's sign-ins are limited. The
    # sign-in bucket (60, refilled 1 a second) is emptied by callers in parallel until one is
    # refused; however slow the machine, at most the burst plus what refilled meanwhile (plus
    # the calls in flight) get through, which is what makes the outcome certain.
    workers, cap = 8, 600
    connections = [edge.https(source="127.0.0.2") for _ in range(workers)]
    statuses: list[int] = []
    lock = threading.Lock()

    def post_login(connection: http.client.HTTPSConnection) -> None:
        while True:
            with lock:
                if 429 in statuses or len(statuses) >= cap:
                    return
            body = json.dumps({"username": f"nobody-{uuid.uuid4().hex[:10]}", "password": "x"})
            connection.request(
                "POST",
                "/v1/auth/login",
                body=body.encode(),
                headers={"content-type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            with lock:
                statuses.append(response.status)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(post_login, connections))
    elapsed = time.monotonic() - started
    jwks_connection = edge.https(source="127.0.0.2")
    jwks_connection.request("GET", "/v1/auth/jwks")
    jwks = jwks_connection.getresponse()
    jwks.read()

    # Wrong credentials are 401 from the service; past the sign-in limit Envoy answers 429.
    assert statuses[0] == 401
    assert 429 in statuses, (len(statuses), elapsed)
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= 60 + math.ceil(elapsed) + workers, (statuses, elapsed)
    # The address's bucket for other routes (a burst of 1000) is far from empty.
    assert jwks.status == 200


# ---- signing key rotation -------------------------------------------------------------------


def _jwks_kids(edge: Edge) -> list[str]:
    connection = edge.https()
    connection.request("GET", "/v1/auth/jwks")
    response = connection.getresponse()
    keys: list[dict[str, str]] = json.loads(response.read())["keys"]
    return [k["kid"] for k in keys]


def test_key_rotation_publishes_first_keeps_old_tokens_and_signs_with_the_new_key_once_active(
    edge: Edge, running_stack: RunningStack
) -> None:
    admin = make_user(edge, ["admin"])
    old_token = login(edge, admin).access_token
    old_kid = claims_of(old_token)[0]["kid"]

    with edge.channel() as channel:
        stub = admin_grpc.AccountAdminServiceStub(channel)
        rotated = stub.RotateSigningKey(
            admin_pb2.RotateSigningKeyRequest(reason="scheduled"),
            timeout=30,
            metadata=bearer(old_token),
        )
        too_soon = refused(
            lambda: stub.RotateSigningKey(
                admin_pb2.RotateSigningKeyRequest(), timeout=30, metadata=bearer(old_token)
            )
        )
    new_kid = rotated.new_key.kid
    published_kids = _jwks_kids(edge)
    still_old = claims_of(login(edge, admin).access_token)[0]["kid"]

    assert rotated.new_key.status == account_pb2.SigningKeyStatus.SIGNING_KEY_STATUS_PUBLISHED
    assert rotated.previous_key.kid == old_kid
    assert rotated.previous_key.status == account_pb2.SigningKeyStatus.SIGNING_KEY_STATUS_ACTIVE
    assert (
        rotated.previous_key.remove_time.seconds - rotated.previous_key.retire_time.seconds
        == 15 * 60
    )
    assert rotated.new_key.activate_time.seconds == rotated.previous_key.retire_time.seconds
    assert too_soon[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION,
        ErrorReason.ERROR_REASON_INVALID_STATE,
    )
    assert published_kids[:2] == [new_kid, old_kid]
    assert still_old == old_kid  # published, not signing yet

    # Five minutes pass (every verifier has the new key): the new key activates.
    with edge.database() as db:
        db.execute(
            "UPDATE account.signing_keys SET retire_at = now() - interval '1 second',"
            " remove_at = now() + interval '15 minutes' WHERE kid = %s",
            (old_kid,),
        )
        db.execute(
            "UPDATE account.signing_keys SET activate_at = now() - interval '1 second'"
            " WHERE kid = %s",
            (new_kid,),
        )
    restart_envoy(running_stack)
    new_token = login(edge, admin).access_token

    assert claims_of(new_token)[0]["kid"] == new_kid
    for token in (old_token, new_token):
        with edge.channel() as channel:
            keys = admin_grpc.AccountAdminServiceStub(channel).ListSigningKeys(
                admin_pb2.ListSigningKeysRequest(), timeout=20, metadata=bearer(token)
            )
        statuses = {k.kid: k.status for k in keys.signing_keys}
        assert statuses[new_kid] == account_pb2.SigningKeyStatus.SIGNING_KEY_STATUS_ACTIVE
        assert statuses[old_kid] == account_pb2.SigningKeyStatus.SIGNING_KEY_STATUS_RETIRED
    with edge.database() as db:
        actions = db.execute(
            "SELECT action, resource_id FROM account.audit_records"
            " WHERE resource_type = 'signing_key' ORDER BY sequence DESC LIMIT 2"
        ).fetchall()
    assert sorted(actions) == [("signing_key.retire", old_kid), ("signing_key.rotate", new_kid)]


def test_a_user_cannot_read_or_act_on_another_users_account_through_the_edge(
    edge: Edge,
) -> None:
    alice, bob = make_user(edge, ["trader"]), make_user(edge, ["trader"])
    token = login(edge, alice).access_token
    with edge.database() as db:
        before = db.execute(
            "SELECT count(*) FROM account.withdrawals WHERE account_id = %s", (bob.account_id,)
        ).fetchone()
    attempts = [
        ("GET", f"/v1/accounts/{bob.account_id}", None),
        ("GET", f"/v1/accounts/{bob.account_id}/ledger", None),
        (
            "POST",
            f"/v1/accounts/{bob.account_id}/withdrawals",
            {"amount": "1.00", "idempotency_key": "it-steal-1"},
        ),
    ]
    for method, path, body in attempts:
        connection = edge.https()
        connection.request(
            method,
            path,
            body=json.dumps(body) if body is not None else None,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        response = connection.getresponse()
        payload = json.loads(response.read() or b"{}")
        assert response.status == 404, (path, payload)
        assert payload["details"][0]["reason"] == "NOT_FOUND"
    # Her own account is there, so the refusals above are about ownership, not the route.
    connection = edge.https()
    connection.request(
        "GET", f"/v1/accounts/{alice.account_id}", headers={"authorization": f"Bearer {token}"}
    )
    assert connection.getresponse().status == 200
    with edge.database() as db:
        after = db.execute(
            "SELECT count(*) FROM account.withdrawals WHERE account_id = %s", (bob.account_id,)
        ).fetchone()
    assert before == after
