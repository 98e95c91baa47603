"""The shared runtime of every tradingmesh service; no domain logic (ADR 0004).

settings      Settings.from_env(): the TM_* variables, typed, failing fast
secrets       Secret (never prints), Vault (kv v2 reads, token renewal)
logging       configure_logging(): one JSON object per line
errors        DomainError and the one reason -> gRPC status table (ADR 0002)
validation    protovalidate on every request; the rule id -> reason table
identity      Caller and current_caller(): who is calling, as the edge says
request_id    current_request_id()
interceptors  the server interceptor chain
metrics       Prometheus registry and /metrics
server        ServiceSpec, serve() and run(): start, serve, stop gracefully
runtime       Runtime: a service's parts started in order and stopped in reverse
internal      internal_channel(): calls to other services, mutual TLS and the edge token
callers       who may call whom: the identities each service accepts (ADR 0018)
certificates  the process's own certificate from Vault's PKI, renewed while it runs
tls           server and channel credentials, the caller's certificate name
affinity      AccountAffineChannels: calls about one account to one instance of a service
risk_internal RiskInternalChannels: the risk service's internal API, the account's instance
db            Database: PostgreSQL primary and replica sessions
cache         connect_redis()
bus           NATS JetStream streams and publish_event()
outbox        add_event() in a change's transaction; OutboxRelay publishes to JetStream
detached      Detached: work after a commit that a cancelled request cannot stop halfway
"""

from services.platform.bus import STREAMS
from services.platform.bus import connect_nats
from services.platform.bus import ensure_streams
from services.platform.bus import publish_event
from services.platform.cache import connect_redis
from services.platform.db import Database
from services.platform.errors import DomainError
from services.platform.errors import status_of
from services.platform.errors import to_status
from services.platform.identity import Caller
from services.platform.identity import current_caller
from services.platform.internal import internal_channel
from services.platform.logging import configure_logging
from services.platform.metrics import REGISTRY
from services.platform.metrics import start_metrics_server
from services.platform.request_id import current_request_id
from services.platform.secrets import Secret
from services.platform.secrets import Vault
from services.platform.secrets import VaultError
from services.platform.server import Registration
from services.platform.server import RunningServer
from services.platform.server import ServiceSpec
from services.platform.server import connect_vault
from services.platform.server import run
from services.platform.server import serve
from services.platform.server import start_server
from services.platform.settings import Settings
from services.platform.settings import SettingsError

__all__ = [
    "REGISTRY",
    "STREAMS",
    "Caller",
    "Database",
    "DomainError",
    "Registration",
    "RunningServer",
    "Secret",
    "ServiceSpec",
    "Settings",
    "SettingsError",
    "Vault",
    "VaultError",
    "configure_logging",
    "connect_nats",
    "connect_redis",
    "connect_vault",
    "current_caller",
    "current_request_id",
    "ensure_streams",
    "internal_channel",
    "publish_event",
    "run",
    "serve",
    "start_metrics_server",
    "start_server",
    "status_of",
    "to_status",
]
