"""A stand-in for `services.platform.db.Database` in unit tests of code that only opens
transactions and hands their session on (no SQL is run): it records each transaction, what
was applied in it, and whether it committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class Transaction:
    def __init__(self) -> None:
        self.applied: list[str] = []
        self.end = ""
        self.info: dict[str, Any] = {}

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: what was applied inside is undone if the block raises."""
        mark = len(self.applied)
        try:
            yield
        except BaseException:
            del self.applied[mark:]
            raise


class FakeDatabase:
    def __init__(self) -> None:
        self.transactions: list[Transaction] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        transaction = Transaction()
        self.transactions.append(transaction)
        try:
            yield transaction
        except BaseException:
            transaction.end = "rollback"
            raise
        transaction.end = "commit"

    def committed(self) -> list[list[str]]:
        return [t.applied for t in self.transactions if t.end == "commit"]
