"""A service instance's Prometheus metrics, as text."""

from __future__ import annotations

import urllib.request

from stack.ports import Ports
from stack.state import StackState


def metrics(state: StackState, service: str, instance: int) -> str:
    port = Ports(state.base_port).service_metrics(service, instance)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())
