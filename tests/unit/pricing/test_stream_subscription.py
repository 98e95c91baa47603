"""The RESP2 reading of the stream tier's Redis subscription (services/pricing/subscription.py)."""

from __future__ import annotations

import ssl

import pytest
import redis.asyncio

from services.platform.infra_tls import redis_tls
from services.pricing.quotes import endpoint_of
from services.pricing.subscription import RedisEndpoint
from services.pricing.subscription import RespError
from services.pricing.subscription import command
from services.pricing.subscription import parse

MESSAGE = b"*3\r\n$7\r\nmessage\r\n$16\r\npricing:quotes:g\r\n$5\r\na\r\nbc\r\n"


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert command(b"SUBSCRIBE", b"a", b"bc") == b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$2\r\nbc\r\n"


def test_a_message_is_parsed_with_binary_data_that_holds_crlf() -> None:
    reply, after = parse(MESSAGE)

    assert reply == [b"message", b"pricing:quotes:g", b"a\r\nbc"]
    assert after == len(MESSAGE)


def test_every_reply_in_a_buffer_is_parsed_in_turn() -> None:
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
    buffer = b"+OK\r\n" + confirmation + MESSAGE
    replies, position = [], 0

    while position < len(buffer):
        reply, position = parse(buffer, position)
        replies.append(reply)

    assert replies == [
        b"OK",
        [b"subscribe", b"c", 1],
        [b"message", b"pricing:quotes:g", b"a\r\nbc"],
    ]


@pytest.mark.parametrize("cut", [1, 5, 20, 40, len(MESSAGE) - 1])
def test_an_incomplete_reply_is_left_for_the_next_read(cut: int) -> None:
    assert parse(MESSAGE[:cut]) == (None, 0)
    assert parse(b"+OK\r\n" + MESSAGE[:cut], 5) == (None, 5)


def test_an_error_reply_raises() -> None:
    with pytest.raises(RespError, match="WRONGPASS"):
        parse(b"-WRONGPASS invalid username-password pair\r\n")


def test_the_endpoint_never_shows_its_password() -> None:
    endpoint = RedisEndpoint("127.0.0.1", 6379, None, "s3cret")

    assert "s3cret" not in repr(endpoint)
    assert "s3cret" not in str(endpoint)


def test_the_subscription_of_a_tls_client_is_over_tls_checking_the_same_ca() -> None:
    tls_client = redis.asyncio.Redis(host="127.0.0.1", port=1, password="p", **redis_tls(None))
    endpoint = endpoint_of(tls_client)
    assert endpoint.tls is not None
    assert endpoint.tls.check_hostname
    assert endpoint.tls.verify_mode == ssl.CERT_REQUIRED
    assert (endpoint.host, endpoint.port, endpoint.password) == ("127.0.0.1", 1, "p")

    assert endpoint_of(redis.asyncio.Redis(host="127.0.0.1", port=1)).tls is None
