"""Calls about one account go to one instance of a service: account affinity (ADR 0017).

Some services keep per-account state in memory that a decision reads and changes: risk's
reservations (`services/risk/holds.py`) are the margin of orders it approved whose trades its
copies have not seen yet. With several instances behind a round-robin channel, two orders of one
account checked at the same moment by two instances each see only their own reservations, and
both may be approved although together they exceed the free margin. `AccountAffineChannels`
sends every call about an account to the same instance instead, so that instance's event loop
serializes the account's decisions as it did with one instance.

- **The choice** is rendezvous (highest random weight) hashing: each instance scores
  `blake2b(instance address, account id)`, and the account's order of instances is by score,
  highest first (`rendezvous_order`). Every caller that lists the same instances computes the
  same order (the score is a digest, not Python's salted `hash`), with no shared state and no
  extra round trip; accounts spread evenly, and removing an instance moves only its accounts.
- **Fall-over**: the call goes to the first instance in the account's order whose channel is
  not known to be down (`pick`). Each instance has a channel of its own with client-side health
  checking (the standard Health/Watch, as `internal_channel` balances): an instance that stops
  (NOT_SERVING first) or dies puts its channel in TRANSIENT_FAILURE, which stays so until the
  instance serves again (gRPC's "sticky" failure), so its accounts move to their next instance
  and come back once it serves. A channel still connecting (or idle, never used) is not known
  down: its calls wait for it (`wait_for_ready`) or queue until it connects. When every
  instance is down the account's first is used, and the call fails as a single channel's would.
  Channels connect when made and do not go idle (`grpc.client_idle_timeout_ms` at its
  maximum), so a channel's state stays current without calls and no call waits for a
  connection.
- While an account moves (its instance stopped, or serves again), the instance it moves to does
  not hold the reservations the other one made: orders checked in that moment are checked
  against copies that may not show an order approved a few milliseconds before (the window
  ADR 0017 describes for round robin, now only at a fall-over). Callers may briefly disagree on
  whether an instance is up (each sees its own channel), with the same effect.
- One instance (a `host:port` target): one channel as `internal_channel` makes it, no choice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from collections.abc import Sequence
from typing import Generic
from typing import TypeVar

import grpc
import grpc.aio

from services.platform.certificates import CertificateSource
from services.platform.internal import check_target
from services.platform.internal import instances_of
from services.platform.internal import internal_channel
from services.platform.secrets import Secret

__all__ = ["AccountAffineChannels", "pick", "rendezvous_order"]

_Stub = TypeVar("_Stub")

# Not usable: a call made on such a channel fails at once (without wait_for_ready) or waits for
# an instance that is not coming back soon.
_DOWN = frozenset({grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN})


def _score(instance: str, account_id: str) -> int:
    digest = hashlib.blake2b(f"{instance}\n{account_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_order(account_id: str, instances: Sequence[str]) -> list[str]:
    """`instances` in the account's order of preference: highest score first (ties, which a
    64-bit digest makes next to impossible, by name). The same for every caller and call."""
    return sorted(instances, key=lambda instance: (-_score(instance, account_id), instance))


def pick(order: Sequence[str], state: Callable[[str], grpc.ChannelConnectivity]) -> str:
    """The first instance in `order` whose channel is not down; the first when all are."""
    for instance in order:
        if state(instance) not in _DOWN:
            return instance
    return order[0]


class AccountAffineChannels(Generic[_Stub]):
    """A channel (and a stub made by `stub`) per instance of the service `callee` listed in
    `target` (`host:port`, or `ipv4:host:port,host:port` as the stack gives it), and the one to
    use for an account. Mutual TLS as `internal_channel` (`certificate`, `plaintext` go to it).
    Open for the caller's lifetime; close it on shutdown."""

    def __init__(
        self,
        target: str,
        edge_token: Secret,
        stub: Callable[[grpc.aio.Channel], _Stub],
        *,
        callee: str,
        certificate: CertificateSource | None = None,
        plaintext: bool = False,
    ) -> None:
        self.instances = instances_of(check_target(target))
        several = len(self.instances) > 1
        self._channels = {
            instance: internal_channel(
                instance,
                edge_token,
                callee=callee,
                certificate=certificate,
                plaintext=plaintext,
                health_checked=several,
                stay_connected=several,
            )
            for instance in self.instances
        }
        self._stubs = {instance: stub(channel) for instance, channel in self._channels.items()}
        if several:
            # Connected from the start, so that the first call about an account pays no
            # connection (the OMS's check has 300 ms) and every channel's state is known.
            for channel in self._channels.values():
                channel.get_state(try_to_connect=True)

    def instance_for(self, account_id: str) -> str:
        """The instance to call about `account_id` now (no I/O: the channels' own states)."""
        if len(self.instances) == 1:
            return self.instances[0]
        return pick(rendezvous_order(account_id, self.instances), self._state)

    def stub_for(self, account_id: str) -> _Stub:
        """The stub of the instance to call about `account_id` now."""
        return self._stubs[self.instance_for(account_id)]

    def _state(self, instance: str) -> grpc.ChannelConnectivity:
        # try_to_connect: an idle channel starts connecting, so that its state becomes known.
        return self._channels[instance].get_state(try_to_connect=True)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
