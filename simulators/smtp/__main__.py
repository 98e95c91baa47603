"""`python -m simulators.smtp`: the dev stack's SMTP sink, configured from the environment.

    TM_SMTPSINK_PORT          the SMTP port on 127.0.0.1
    TM_SMTPSINK_CONTROL_PORT  the control port on 127.0.0.1 (simulators/smtp/control.py)
    TM_SMTPSINK_DIR           the Maildir where every received message is stored
    TM_SMTPSINK_USERNAME      the login AUTH must present (the stack takes it from Vault)
    TM_SMTPSINK_PASSWORD      its password

SIGTERM stops it; the Maildir stays (it is the stack's record of what was sent).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from simulators.smtp.control import serve
from simulators.smtp.sink import Credentials
from simulators.smtp.sink import Mailstore
from simulators.smtp.sink import smtp_factory

HOST = "127.0.0.1"


def _require(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"smtpsink: {name} is missing")
    return value


async def main() -> None:
    port = int(_require("TM_SMTPSINK_PORT"))
    control_port = int(_require("TM_SMTPSINK_CONTROL_PORT"))
    store = Mailstore(Path(_require("TM_SMTPSINK_DIR")))
    credentials = Credentials(_require("TM_SMTPSINK_USERNAME"), _require("TM_SMTPSINK_PASSWORD"))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: smtp_factory(store, credentials, "smtp-sink.tradingmesh.local"), HOST, port
    )
    control = serve(store, HOST, control_port)
    logging.info("smtp sink listening on %s:%d (control %d)", HOST, port, control_port)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    server.close()
    control.shutdown()
    await server.wait_closed()


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(main())
