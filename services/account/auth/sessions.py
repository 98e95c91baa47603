"""The live state of refresh tokens in Redis, with the spend as one atomic step (ADR 0005).

    auth:rt:<sha256 of token>  hash {family, spent}   expires with the token
    auth:rf:<family id>        hash {revoked}         expires with the family

Spending is a Lua script, so of two concurrent refreshes with one token exactly one succeeds and
the other is a reuse. PostgreSQL (`store/auth.py`) keeps the same facts for audit and is the
source of truth when Redis has lost them (it keeps nothing on disk): `restore` puts them back.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Final

import redis.asyncio

__all__ = ["RefreshStore", "SpendOutcome"]

_SPEND: Final = """
local token = redis.call('HMGET', KEYS[1], 'family', 'spent')
if not token[1] or token[1] ~= ARGV[1] then return 'unknown' end
local revoked = redis.call('HGET', KEYS[2], 'revoked')
if not revoked then return 'unknown' end
if revoked == '1' then return 'revoked' end
if token[2] == '1' then
  redis.call('HSET', KEYS[2], 'revoked', '1')
  return 'reused'
end
redis.call('HSET', KEYS[1], 'spent', '1')
return 'ok'
"""

# Puts back what PostgreSQL knows without overwriting what Redis knows (it may be newer).
_RESTORE: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'family', ARGV[1], 'spent', ARGV[2])
  redis.call('EXPIREAT', KEYS[1], ARGV[3])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'revoked', ARGV[4])
  redis.call('EXPIREAT', KEYS[2], ARGV[5])
end
return 1
"""


_REVOKE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'revoked', '1') end
return 1
"""


class SpendOutcome(enum.Enum):
    OK = "ok"
    """The token was live and is now spent."""
    REUSED = "reused"
    """The token was spent before: its family is now revoked."""
    REVOKED = "revoked"
    """The token's family was revoked before."""
    UNKNOWN = "unknown"
    """Redis does not know the token (never issued, expired, or Redis lost it)."""


def _token_key(token_hash: str) -> str:
    return f"auth:rt:{token_hash}"


def _family_key(family_id: uuid.UUID) -> str:
    return f"auth:rf:{family_id}"


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class RefreshStore:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._redis = client
        self._spend = client.register_script(_SPEND)
        self._restore = client.register_script(_RESTORE)
        self._revoke = client.register_script(_REVOKE)

    async def add_family(self, family_id: uuid.UUID, expires_at: datetime) -> None:
        key = _family_key(family_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"revoked": "0"})
            pipe.expireat(key, _epoch(expires_at))
            await pipe.execute()

    async def add_token(self, token_hash: str, family_id: uuid.UUID, expires_at: datetime) -> None:
        key = _token_key(token_hash)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"family": str(family_id), "spent": "0"})
            pipe.expireat(key, _epoch(expires_at))
            await pipe.execute()

    async def spend(self, token_hash: str, family_id: uuid.UUID) -> SpendOutcome:
        keys = [_token_key(token_hash), _family_key(family_id)]
        outcome = await self._spend(keys=keys, args=[str(family_id)])
        return SpendOutcome(outcome.decode() if isinstance(outcome, bytes) else str(outcome))

    async def restore(
        self,
        *,
        token_hash: str,
        family_id: uuid.UUID,
        spent: bool,
        token_expires_at: datetime,
        family_revoked: bool,
        family_expires_at: datetime,
    ) -> None:
        await self._restore(
            keys=[_token_key(token_hash), _family_key(family_id)],
            args=[
                str(family_id),
                "1" if spent else "0",
                _epoch(token_expires_at),
                "1" if family_revoked else "0",
                _epoch(family_expires_at),
            ],
        )

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        """Marks the family revoked if Redis knows it (PostgreSQL records it in any case)."""
        await self._revoke(keys=[_family_key(family_id)])
