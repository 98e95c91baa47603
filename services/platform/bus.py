"""NATS JetStream: the domain event streams, and publishing an event exactly once per id.

One stream per domain (ADR 0001), defined here in code and created or updated at start by
`ensure_streams`. Every event is a protobuf message whose `metadata.event_id` is sent as the
`Nats-Msg-Id` header, so that JetStream drops a duplicate published within the duplicate window
(e.g. an outbox row sent again after a crash); consumers de-duplicate on the id too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from collections.abc import Sequence
from typing import Final

import protovalidate
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy
from nats.js.api import ConsumerConfig
from nats.js.api import DeliverPolicy
from nats.js.api import PubAck
from nats.js.api import StorageType
from nats.js.api import StreamConfig
from nats.js.api import StreamInfo
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from services.platform.infra_tls import client_context
from services.platform.secrets import NATS_PATH
from services.platform.secrets import Vault
from services.platform.settings import Settings
from tradingmesh.common.v1.events_pb2 import EventMetadata

__all__ = [
    "DUPLICATE_WINDOW_SECONDS",
    "MSG_ID_HEADER",
    "STREAMS",
    "connect_nats",
    "contract_checks",
    "encode_event",
    "ensure_streams",
    "last_per_subject",
    "publish_event",
]

MSG_ID_HEADER: Final = "Nats-Msg-Id"
DUPLICATE_WINDOW_SECONDS: Final = 120.0
"""How long JetStream remembers a message id (nats-py takes seconds, as a float)."""

_log = logging.getLogger(__name__)


def _stream(name: str, subjects: list[str], *, last_per_subject: bool = False) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=subjects,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        # Quotes: a newer price supersedes the older one, so only the last per subject is kept.
        max_msgs_per_subject=1 if last_per_subject else -1,
    )


STREAMS: Final[Sequence[StreamConfig]] = (
    _stream("ACCOUNT", ["account.>"]),
    _stream("OMS", ["oms.>"]),
    _stream("RISK", ["risk.>"]),
    # PRICING and PRICING_QUOTES must not overlap (JetStream refuses it): quotes are
    # pricing.quote.>, everything else of pricing is named here.
    _stream("PRICING", ["pricing.instrument.>", "pricing.liquidity_provider.>"]),
    _stream("PRICING_QUOTES", ["pricing.quote.>"], last_per_subject=True),
)


async def connect_nats(settings: Settings, vault: Vault) -> NatsClient:
    """A connection to the settings' NATS with the user and password from
    `secret/tradingmesh/nats`, over TLS (required by the server), its certificate checked
    against `TM_TLS_CA_FILE`. It reconnects for ever once connected; the first connection
    must succeed. Close it with `await nc.drain()` on shutdown."""
    username, password = vault.read_keys(NATS_PATH, "username", "password")

    async def disconnected() -> None:
        _log.warning("nats disconnected")

    async def reconnected() -> None:
        _log.info("nats reconnected")

    async def error(problem: Exception) -> None:
        _log.error("nats error", extra={"error": str(problem)})

    client = NatsClient()
    await client.connect(
        servers=[settings.nats_url],
        user=username.reveal(),
        password=password.reveal(),
        name=f"tradingmesh-{settings.instance_name}",
        tls=client_context(settings.tls_ca_file),
        connect_timeout=5,
        max_reconnect_attempts=-1,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    return client


async def ensure_streams(
    js: JetStreamContext, streams: Sequence[StreamConfig] = STREAMS
) -> list[StreamInfo]:
    """Creates each stream, or updates it to its definition here; safe to run at every start."""
    infos: list[StreamInfo] = []
    for config in streams:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            infos.append(await js.add_stream(config))
        else:
            infos.append(await js.update_stream(config))
    return infos


async def publish_event(js: JetStreamContext, subject: str, event: Message) -> PubAck:
    """Publishes a domain event with `Nats-Msg-Id` = its `metadata.event_id`; returns the ack
    (`ack.duplicate` is true when JetStream already had this id)."""
    payload, headers = encode_event(event)
    return await js.publish(subject, payload, headers=headers)


def contract_checks() -> bool:
    """Whether outgoing events are checked against their contracts (`TM_CHECK_EVENTS=1`): on in
    the test suite and in debug runs, off by default (production), where it cost about 4 % of
    the OMS's CPU per order (ADR 0009); the producers' own unit and integration tests are what
    keeps their events within the contracts."""
    return os.environ.get("TM_CHECK_EVENTS", "") == "1"


def encode_event(event: Message) -> tuple[bytes, dict[str, str]]:
    """The payload and headers of an event message.

    An event must carry its metadata (its id). With `contract_checks()` on, it is also checked
    against its contract: a malformed event is a bug, and raises `ValueError` rather than reach
    consumers.
    """
    metadata = getattr(event, "metadata", None)
    if not isinstance(metadata, EventMetadata) or not event.HasField("metadata"):
        # Some events' contracts do not mark metadata required; without it there is no id.
        raise ValueError(f"{event.DESCRIPTOR.full_name} is not an event with its metadata set")
    if not metadata.event_id:
        raise ValueError(f"{event.DESCRIPTOR.full_name} has no event id")
    violations = protovalidate.collect_violations(event) if contract_checks() else None
    if violations:
        broken = ", ".join(v.proto.rule_id or "?" for v in violations)
        raise ValueError(f"{event.DESCRIPTOR.full_name} breaks its contract: {broken}")
    return event.SerializeToString(), {MSG_ID_HEADER: metadata.event_id}


async def last_per_subject(
    js: JetStreamContext,
    subjects: str,
    take: Callable[[Msg], int],
    *,
    batch: int = 1000,
    wait_seconds: float = 0.5,
) -> int:
    """Hands each subject's last message in its stream to `take` (through a short-lived
    consumer: e.g. the last price per symbol and group at a service's start, before its
    subscription brings new ones); the sum of what `take` returned."""
    subscription = await js.pull_subscribe(
        subjects,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30,
        ),
    )
    taken = 0
    try:
        while True:
            try:
                messages = await subscription.fetch(batch=batch, timeout=wait_seconds)
            except TimeoutError:
                break
            for message in messages:
                taken += take(message)
            if not messages or messages[-1].metadata.num_pending == 0:
                break
    finally:
        await subscription.unsubscribe()
    return taken
