"""Notifications against the real stack (issue #15, ADR 0011): the OMS's, risk's and the
account service's events become one notification each, streamed (gRPC and gRPC-web through
Envoy) and listed, and one email each in the stack's SMTP sink (a real SMTP server), retried
when the sink refuses; margin calls are throttled; nobody sees another user's notifications;
email switched off sends none.

Traders are created through the account service and signed in through the edge; margin calls
are published to the RISK stream as the risk service would (an envelope per change), with
chosen times, so the throttle's interval is tested without waiting it out.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from services.platform.bus import MSG_ID_HEADER
from services.platform.envelope import Envelope
from simulators.smtp.control import SinkClient
from tests.integration.callers import AccountStack
from tests.integration.support.edge import Edge
from tests.integration.support.edge import bearer
from tests.integration.support.edge_trading import Trader
from tests.integration.support.edge_trading import filled_market
from tests.integration.support.edge_trading import new_trader
from tests.integration.support.infra import connect_nats
from tests.integration.support.notifications import preferences_of
from tests.integration.support.notifications import switch_email
from tests.integration.support.waiting import eventually
from tradingmesh.common.v1.errors_pb2 import ErrorReason
from tradingmesh.common.v1.events_pb2 import EventMetadata
from tradingmesh.common.v1.types_pb2 import Actor
from tradingmesh.common.v1.types_pb2 import ActorKind
from tradingmesh.errors import details_of
from tradingmesh.notification.v1 import notification_pb2 as pb
from tradingmesh.notification.v1 import notification_service_pb2 as api
from tradingmesh.notification.v1 import notification_service_pb2_grpc as api_grpc
from tradingmesh.risk.v1 import risk_events_pb2
from tradingmesh.risk.v1 import risk_pb2

K = pb.NotificationKind
STREAM = "/tradingmesh.notification.v1.NotificationService/StreamNotifications"


@pytest.fixture(scope="module")
def sink(edge: Edge) -> SinkClient:
    return SinkClient(edge.ports.smtp_control)


def notifications(edge: Edge, trader: Trader, **filters: Any) -> api.ListNotificationsResponse:
    with edge.channel() as channel:
        response: api.ListNotificationsResponse = api_grpc.NotificationServiceStub(
            channel
        ).ListNotifications(
            api.ListNotificationsRequest(**filters), metadata=bearer(trader.token), timeout=10
        )
    return response


def of_kind(edge: Edge, trader: Trader, kind: int) -> list[pb.Notification]:
    return list(notifications(edge, trader, kinds=[kind], page_size=500).notifications)


def email_of(sink: SinkClient, notification_id: str) -> list[dict[str, Any]]:
    return [
        m
        for m in sink.messages()
        if m["headers"].get("X-TradingMesh-Notification-Id") == notification_id
    ]


def delivery(edge: Edge, notification_id: str) -> tuple[str, int, str] | None:
    with edge.database() as db:
        row = db.execute(
            "SELECT status, attempts, last_error FROM notification.deliveries"
            " WHERE notification_id = %s",
            (notification_id,),
        ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def funded_trader(edge: Edge, accounts: AccountStack) -> tuple[Trader, pb.Notification]:
    """A new trader (`new_trader`), and its deposit's notification once that notification's
    email has settled."""
    trader = new_trader(edge, accounts)
    (funded,) = eventually(
        lambda: of_kind(edge, trader, K.NOTIFICATION_KIND_DEPOSIT_COMPLETED), 20, "the deposit"
    )
    settled(edge, funded.id)
    return trader, funded


def settled(edge: Edge, notification_id: str) -> tuple[str, int, str]:
    """The delivery once it is no longer waiting (SENT, SKIPPED or DEAD)."""

    def probe() -> tuple[str, int, str] | None:
        found = delivery(edge, notification_id)
        return found if found is not None and found[0] not in ("PENDING", "SENDING") else None

    return eventually(probe, 30, f"the email of {notification_id} settles")


class GrpcStream:
    """A StreamNotifications call through Envoy over gRPC, read by a thread into a queue."""

    def __init__(self, edge: Edge, trader: Trader, request: api.StreamNotificationsRequest):
        self.channel = edge.channel()
        self.call = api_grpc.NotificationServiceStub(self.channel).StreamNotifications(
            request, metadata=bearer(trader.token), timeout=120
        )
        self.messages: queue.Queue[api.StreamNotificationsResponse] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                self.messages.put(message)
        except grpc.RpcError:
            pass

    def next(self, timeout: float = 20) -> api.StreamNotificationsResponse:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.call.cancel()
        self.channel.close()


def grpc_web_stream(edge: Edge, trader: Trader, request: api.StreamNotificationsRequest) -> Any:
    message = request.SerializeToString()
    connection = edge.https()
    connection.request(
        "POST",
        STREAM,
        body=b"\x00" + len(message).to_bytes(4, "big") + message,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {trader.token}",
        },
    )
    return connection, connection.getresponse()


def grpc_web_next(response: Any) -> api.StreamNotificationsResponse:
    header = response.read(5)
    assert len(header) == 5, "the gRPC-web stream ended early"
    payload = response.read(int.from_bytes(header[1:], "big"))
    assert header[0] == 0, f"trailers instead of a message: {payload!r}"
    return api.StreamNotificationsResponse.FromString(payload)


# ---- a fill ----------------------------------------------------------------------------------


def test_a_fill_gives_one_notification_streamed_over_grpc_and_grpc_web_listed_and_one_email(
    edge: Edge, accounts: AccountStack, sink: SinkClient
) -> None:
    # Its account's funding mailed: the service knows whose account it is (and so their email).
    trader, funded = funded_trader(edge, accounts)
    switch_email(edge, trader, K.NOTIFICATION_KIND_ORDER_FILLED, True)  # an opt-in
    filled_only = api.StreamNotificationsRequest(kinds=[K.NOTIFICATION_KIND_ORDER_FILLED])
    stream = GrpcStream(edge, trader, filled_only)
    web, web_response = grpc_web_stream(edge, trader, filled_only)
    try:
        assert stream.next().WhichOneof("event") == "caught_up"
        assert grpc_web_next(web_response).WhichOneof("event") == "caught_up"

        order = filled_market(edge, trader)

        streamed = stream.next()
        web_streamed = grpc_web_next(web_response)
    finally:
        stream.close()
        web.close()
    listed = eventually(
        lambda: of_kind(edge, trader, K.NOTIFICATION_KIND_ORDER_FILLED),
        20,
        "the fill is listed",
    )
    (notification,) = listed
    emails = eventually(lambda: email_of(sink, notification.id), 30, "the fill's email")
    status, attempts, _ = settled(edge, notification.id)
    time.sleep(1.5)  # a second email, if the sender were to send one, would be here by now

    assert notification.details["order_id"] == order.id
    with edge.database() as db:
        trade = db.execute(
            "SELECT id, position_id FROM oms.trades WHERE order_id = %s", (order.id,)
        ).fetchone()
    assert trade is not None
    assert notification.details["trade_id"] == str(trade[0])
    assert notification.details["position_id"] == str(trade[1])
    assert notification.account_id == trader.account_id
    assert notification.severity == pb.NOTIFICATION_SEVERITY_INFO
    assert notification.title == "Order filled: buy 0.01 lots EURUSD"
    assert not notification.read
    assert streamed.notification == notification
    assert web_streamed.notification == notification
    assert (status, attempts) == ("SENT", 1)
    assert len(emails) == 1
    assert len(email_of(sink, notification.id)) == 1
    (email,) = emails
    user_email = email["rcpt_tos"][0]
    assert user_email.endswith("@example.test")
    assert email["subject"] == "Order filled: buy 0.01 lots EURUSD"
    assert order.id in email["text"]
    assert order.id in email["html"]
    assert email["message_id"] == f"<{notification.id}@tradingmesh.notification>"
    with edge.database() as db:
        (count,) = db.execute(
            "SELECT count(*) FROM notification.notifications"
            " WHERE kind = 'ORDER_FILLED' AND details->>'order_id' = %s",
            (order.id,),
        ).fetchone() or (0,)
    assert count == 1
    # The deposit that funded the account is a notification (and an email) of its own.
    assert funded.details["amount"] == "10000.00"
    assert len(email_of(sink, funded.id)) == 1


def test_a_fill_is_notified_in_app_but_not_mailed_unless_the_trader_switched_it_on(
    edge: Edge, accounts: AccountStack, sink: SinkClient
) -> None:
    trader, _ = funded_trader(edge, accounts)  # the deposit's email is on by default

    order = filled_market(edge, trader)
    (notification,) = eventually(
        lambda: of_kind(edge, trader, K.NOTIFICATION_KIND_ORDER_FILLED), 20, "the fill is listed"
    )
    time.sleep(1.5)  # an email, if one were to be sent, would be on its way by now
    defaults = preferences_of(edge, trader)

    assert notification.details["order_id"] == order.id
    assert delivery(edge, notification.id) is None  # no email, not even a skipped one
    assert email_of(sink, notification.id) == []
    settings = {p.kind: p.email_enabled for p in defaults.kinds}
    assert not settings[K.NOTIFICATION_KIND_ORDER_FILLED]
    assert not settings[K.NOTIFICATION_KIND_ORDER_REJECTED]
    assert settings[K.NOTIFICATION_KIND_DEPOSIT_COMPLETED]
    assert settings[K.NOTIFICATION_KIND_MARGIN_CALL]


# ---- retries -----------------------------------------------------------------------------------


def quiet(edge: Edge) -> bool:
    """No email being sent or due within the test (one whose recipient is known): the next
    email the sink sees is the test's own. Deliveries whose owner this service never learnt
    (accounts other tests made) wait for it and never reach the sink; ones backing off for
    minutes are not due before the test ends."""
    with edge.database() as db:
        (waiting,) = db.execute(
            "SELECT count(*) FROM notification.deliveries d"
            " JOIN notification.notifications n ON n.id = d.notification_id"
            " LEFT JOIN notification.accounts a ON a.id = n.account_id"
            " JOIN notification.users u ON u.id = COALESCE(n.user_id, a.user_id)"
            " WHERE u.email IS NOT NULL AND (d.status = 'SENDING'"
            " OR (d.status = 'PENDING' AND d.next_attempt_at < now() + interval '30 seconds'))"
        ).fetchone() or (0,)
    return waiting == 0


def _deposit_again(
    edge: Edge, accounts: AccountStack, trader: Trader, amount: str
) -> list[pb.Notification]:
    """A second deposit of `amount` into the trader's account (its first is the new trader's);
    both deposit notifications once the second is there, newest first."""
    with edge.database() as db:
        (number,) = db.execute(
            "SELECT account_number FROM account.trading_accounts WHERE id = %s",
            (trader.account_id,),
        ).fetchone() or ("",)
    accounts.deposit_direct(number, amount)
    deposits: list[pb.Notification] = eventually(
        lambda: (
            two
            if len(two := of_kind(edge, trader, K.NOTIFICATION_KIND_DEPOSIT_COMPLETED)) == 2
            else None
        ),
        20,
        "the second deposit",
    )
    return deposits


def test_an_email_the_sink_refuses_once_is_retried_and_arrives_once(
    edge: Edge, accounts: AccountStack, sink: SinkClient
) -> None:
    trader, _ = funded_trader(edge, accounts)
    eventually(lambda: quiet(edge), 30, "no email waiting")
    refused_before = sink.state()["refused"]
    sink.refuse_next(1)

    deposits = _deposit_again(edge, accounts, trader, "25.00")
    second = deposits[0]  # newest first
    status, attempts, last_error = settled(edge, second.id)
    time.sleep(1.5)

    assert second.details["amount"] == "25.00"
    assert sink.state()["refused"] == refused_before + 1
    assert (status, attempts) == ("SENT", 2)
    assert last_error == ""  # cleared by the attempt that succeeded
    assert len(email_of(sink, second.id)) == 1


# ---- margin calls ------------------------------------------------------------------------------


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def margin_event(
    account_id: str, kind: type, at: datetime, event_id: str | None = None
) -> tuple[str, Any]:
    subject = (
        "risk.account.margin_call_issued"
        if kind is risk_events_pb2.MarginCallIssued
        else "risk.account.margin_call_resolved"
    )
    event = kind(
        metadata=EventMetadata(
            event_id=event_id or str(uuid.uuid4()),
            occurred_at=_stamp(at),
            producer="risk",
            actor=Actor(kind=ActorKind.ACTOR_KIND_SYSTEM, id="risk"),
        ),
        margin_event=risk_pb2.MarginEvent(
            id=str(uuid.uuid4()),
            account_id=account_id,
            account_risk=risk_pb2.AccountRisk(
                account_id=account_id,
                currency="USD",
                balance="1000",
                unrealized_pnl="-200",
                equity="800",
                used_margin="1000",
                free_margin="-200",
                withdrawable="0",
                margin_level="80.00",
                margin_call_level="100",
                stop_out_level="50",
            ),
            create_time=_stamp(at),
            realized_pnl="0",
            negative_balance="0",
        ),
    )
    return subject, event


async def publish(edge: Edge, changes: list[tuple[str, Any]]) -> None:
    """Each (subject, event) as the risk service publishes it: an envelope of its own."""
    known = edge.admin_secrets()
    client = await connect_nats(
        f"nats://127.0.0.1:{edge.ports.nats}",
        known.nats.username,
        known.nats.password.reveal(),
        edge.state.endpoints.ca_file,
    )
    try:
        js = client.jetstream()
        for subject, event in changes:
            envelope = Envelope()
            envelope.add(subject, event)
            sealed = envelope.seal()
            await js.publish(
                sealed.subject, sealed.payload, headers={MSG_ID_HEADER: sealed.envelope_id}
            )
    finally:
        await client.close()


def test_a_burst_of_margin_calls_gives_one_notification_per_interval(
    edge: Edge, accounts: AccountStack
) -> None:
    trader = new_trader(edge, accounts)
    t0 = datetime.now(UTC).replace(microsecond=0)
    interval = timedelta(seconds=300)  # TM_NOTIFICATION_MARGIN_CALL_INTERVAL_S's default
    calls = [
        margin_event(trader.account_id, risk_events_pb2.MarginCallIssued, t0 + timedelta(seconds=s))
        for s in (0, 2, 4, 30, 120, 299)
    ]
    later = margin_event(
        trader.account_id, risk_events_pb2.MarginCallIssued, t0 + interval + timedelta(seconds=1)
    )
    # The same event again in an envelope of its own: the inbox does not know that envelope,
    # the event id does.
    again = margin_event(
        trader.account_id,
        risk_events_pb2.MarginCallIssued,
        t0 + interval + timedelta(seconds=1),
        event_id=later[1].metadata.event_id,
    )
    resolved = margin_event(
        trader.account_id,
        risk_events_pb2.MarginCallResolved,
        t0 + interval + timedelta(seconds=5),
    )

    asyncio.run(publish(edge, [*calls, later, again, resolved]))

    eventually(
        lambda: of_kind(edge, trader, K.NOTIFICATION_KIND_MARGIN_CALL_RESOLVED),
        20,
        "the resolution is notified",
    )
    margin_calls = of_kind(edge, trader, K.NOTIFICATION_KIND_MARGIN_CALL)
    created = sorted(n.create_time.ToDatetime(tzinfo=UTC) for n in margin_calls)
    assert created == [t0, t0 + interval + timedelta(seconds=1)]
    assert {n.details["margin_level"] for n in margin_calls} == {"80.00"}
    assert margin_calls[0].severity == pb.NOTIFICATION_SEVERITY_WARNING


# ---- ownership ---------------------------------------------------------------------------------


def test_another_users_notifications_are_neither_listed_streamed_nor_marked(
    edge: Edge, accounts: AccountStack
) -> None:
    owner, other = new_trader(edge, accounts), new_trader(edge, accounts)
    (mine,) = eventually(
        lambda: of_kind(edge, owner, K.NOTIFICATION_KIND_DEPOSIT_COMPLETED), 20, "the deposit"
    )

    listed = notifications(edge, other, page_size=500)
    with edge.channel() as channel:
        stub = api_grpc.NotificationServiceStub(channel)
        marked = stub.MarkNotificationsRead(
            api.MarkNotificationsReadRequest(ids=[mine.id]), metadata=bearer(other.token)
        )
        with pytest.raises(grpc.RpcError) as resumed:
            next(
                iter(
                    stub.StreamNotifications(
                        api.StreamNotificationsRequest(after_id=mine.id),
                        metadata=bearer(other.token),
                        timeout=10,
                    )
                )
            )
        with pytest.raises(grpc.RpcError) as filtered:
            stub.ListNotifications(
                api.ListNotificationsRequest(account_id=owner.account_id),
                metadata=bearer(other.token),
                timeout=10,
            )
    still = of_kind(edge, owner, K.NOTIFICATION_KIND_DEPOSIT_COMPLETED)

    assert mine.id not in {n.id for n in listed.notifications}
    assert {n.account_id for n in listed.notifications} <= {other.account_id, ""}
    assert marked.marked_count == 0
    assert not still[0].read
    for raised in (resumed, filtered):
        details = details_of(raised.value)
        assert details.code == grpc.StatusCode.NOT_FOUND
        assert details.reason == ErrorReason.ERROR_REASON_NOT_FOUND
        assert mine.id not in str(details)

    # The owner's own mark works, and the unread count follows.
    with edge.channel() as channel:
        own = api_grpc.NotificationServiceStub(channel).MarkNotificationsRead(
            api.MarkNotificationsReadRequest(ids=[mine.id]), metadata=bearer(owner.token)
        )
    assert own.marked_count == 1
    assert of_kind(edge, owner, K.NOTIFICATION_KIND_DEPOSIT_COMPLETED)[0].read


# ---- preferences -------------------------------------------------------------------------------


def test_email_switched_off_for_a_kind_stores_the_notification_and_sends_no_email(
    edge: Edge, accounts: AccountStack, sink: SinkClient
) -> None:
    trader, funded = funded_trader(edge, accounts)
    off = pb.NotificationPreferences(
        kinds=[
            pb.NotificationKindPreference(
                kind=K.NOTIFICATION_KIND_DEPOSIT_COMPLETED, email_enabled=False
            )
        ]
    )
    with edge.channel() as channel:
        stub = api_grpc.NotificationServiceStub(channel)
        updated = stub.UpdateNotificationPreferences(
            api.UpdateNotificationPreferencesRequest(
                preferences=off, update_mask=FieldMask(paths=["kinds"])
            ),
            metadata=bearer(trader.token),
        ).preferences
        read_back = stub.GetNotificationPreferences(
            api.GetNotificationPreferencesRequest(), metadata=bearer(trader.token)
        ).preferences
        with pytest.raises(grpc.RpcError) as required:
            stub.UpdateNotificationPreferences(
                api.UpdateNotificationPreferencesRequest(
                    preferences=pb.NotificationPreferences(
                        kinds=[
                            pb.NotificationKindPreference(
                                kind=K.NOTIFICATION_KIND_STOP_OUT, email_enabled=False
                            )
                        ]
                    ),
                    update_mask=FieldMask(paths=["kinds"]),
                ),
                metadata=bearer(trader.token),
            )
    deposits = _deposit_again(edge, accounts, trader, "10.00")
    time.sleep(1.5)

    settings = {p.kind: p for p in read_back.kinds}
    assert updated == read_back
    assert len(settings) == len(K.values()) - 1
    assert not settings[K.NOTIFICATION_KIND_DEPOSIT_COMPLETED].email_enabled
    assert not settings[K.NOTIFICATION_KIND_ORDER_FILLED].email_enabled  # an opt-in
    assert settings[K.NOTIFICATION_KIND_STOP_OUT].email_required
    assert read_back.HasField("update_time")
    details = details_of(required.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == ErrorReason.ERROR_REASON_VALIDATION_FAILED
    assert delivery(edge, deposits[0].id) is None  # email off when it was made: none to send
    assert email_of(sink, deposits[0].id) == []
    assert len(email_of(sink, funded.id)) == 1  # sent before the switch


# ---- sign-ins ----------------------------------------------------------------------------------


def sign_in_from(edge: Edge, username: str, source: str) -> None:
    connection = edge.https(source=source)
    try:
        connection.request(
            "POST",
            "/v1/auth/login",
            body=json.dumps({"username": username, "password": "correct horse battery"}),
            headers={"content-type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 200


def test_a_sign_in_from_a_new_address_is_a_security_notification_and_an_email(
    edge: Edge, accounts: AccountStack, sink: SinkClient
) -> None:
    trader = new_trader(edge, accounts)  # signed in from 127.0.0.1
    with edge.database() as db:
        (username,) = db.execute(
            "SELECT username FROM account.users WHERE id = %s", (trader.user_id,)
        ).fetchone() or ("",)

    sign_in_from(edge, username, "127.0.0.1")  # a known address: nothing to say
    sign_in_from(edge, username, "127.0.0.2")
    (warning,) = eventually(
        lambda: of_kind(edge, trader, K.NOTIFICATION_KIND_SECURITY), 20, "the new-address warning"
    )
    emails = eventually(lambda: email_of(sink, warning.id), 30, "its email")
    time.sleep(1.5)

    assert warning.details["event"] == "new_address_sign_in"
    assert warning.details["source_ip"] == "127.0.0.2"
    assert warning.account_id == ""  # about the user, not an account
    assert warning.severity == pb.NOTIFICATION_SEVERITY_WARNING
    assert len(of_kind(edge, trader, K.NOTIFICATION_KIND_SECURITY)) == 1
    assert len(emails) == 1
