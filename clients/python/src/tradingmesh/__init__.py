"""The tradingmesh SDK: typed gRPC stubs for every service, and exact-money helpers.

Generated packages (never edited by hand; `scripts/generate` rewrites them):
    tradingmesh.<domain>.v1.<file>_pb2       messages (with .pyi type stubs)
    tradingmesh.<domain>.v1.<file>_pb2_grpc  service stubs (sync and asyncio, typed)
Hand-written modules:
    tradingmesh.exact    decimal strings and fixed-point integers <-> Decimal, exactly
    tradingmesh.errors   the stable reason and field violations of a failed call
"""

__version__ = "0.1.0"
