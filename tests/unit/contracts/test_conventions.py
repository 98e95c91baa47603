"""ADR 0001 checked against the built contracts, beyond what buf lint covers."""

from __future__ import annotations

from google.api import annotations_pb2
from google.api import http_pb2
from google.protobuf import descriptor_pb2

from buf.validate import validate_pb2

from .conftest import our_files
from .conftest import walk_messages

FieldType = descriptor_pb2.FieldDescriptorProto
ALLOWED_IMPORT_PREFIXES = ("google/", "buf/validate/", "tradingmesh/common/v1/")


def _http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    return method.options.Extensions[annotations_pb2.http]


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    assert kind is not None
    if kind == "custom":
        return rule.custom.kind, rule.custom.path
    return kind.upper(), getattr(rule, kind)


def test_no_float_or_double_anywhere(image: descriptor_pb2.FileDescriptorSet) -> None:
    floats = [
        f"{name}.{field.name}"
        for file in our_files(image)
        for name, message in walk_messages(file.message_type, file.package)
        for field in message.field
        if field.type in (FieldType.TYPE_FLOAT, FieldType.TYPE_DOUBLE)
    ]

    assert floats == []


def test_domains_import_only_google_validation_and_common(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    strays = [
        f"{file.name} imports {dep}"
        for file in our_files(image)
        for dep in file.dependency
        if not dep.startswith(ALLOWED_IMPORT_PREFIXES)
        and not dep.startswith(file.name.rsplit("/", 1)[0] + "/")
    ]

    assert strays == []


def test_every_public_and_admin_rpc_has_a_route_and_internal_ones_have_none(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    problems = []
    for file in our_files(image):
        for service in file.service:
            internal = service.name.endswith("InternalService")
            for method in service.method:
                rule = _http_rule(method)
                if internal and rule is not None:
                    problems.append(f"{service.name}.{method.name}: internal RPC has a route")
                if not internal and rule is None:
                    problems.append(f"{service.name}.{method.name}: no google.api.http route")

    assert problems == []


def test_admin_routes_live_under_v1_admin_and_public_ones_do_not(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    problems = []
    for file in our_files(image):
        for service in file.service:
            admin = service.name.endswith("AdminService")
            for method in service.method:
                rule = _http_rule(method)
                if rule is None:
                    continue
                _, path = _verb_and_path(rule)
                if admin != path.startswith("/v1/admin/"):
                    problems.append(f"{service.name}.{method.name}: {path}")

    assert problems == []


def test_no_two_rpcs_share_a_route(image: descriptor_pb2.FileDescriptorSet) -> None:
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for file in our_files(image):
        for service in file.service:
            for method in service.method:
                rule = _http_rule(method)
                if rule is None:
                    continue
                key = _verb_and_path(rule)
                name = f"{service.name}.{method.name}"
                if key in seen:
                    clashes.append(f"{key}: {seen[key]} and {name}")
                seen[key] = name

    assert clashes == []


def _is_validated(field: descriptor_pb2.FieldDescriptorProto) -> bool:
    if not field.options.HasExtension(validate_pb2.field):
        return False
    rules = field.options.Extensions[validate_pb2.field]
    return rules.WhichOneof("type") is not None or bool(rules.cel) or rules.required


def test_every_string_repeated_and_enum_field_a_client_sends_has_a_rule(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    """ADR 0001: no unbounded input. Nested request messages are covered through their fields."""
    unruled = []
    for file in our_files(image):
        for name, message in walk_messages(file.message_type, file.package):
            if not name.endswith("Request") or message.options.map_entry:
                continue
            for field in message.field:
                needs_rule = (
                    field.type in (FieldType.TYPE_STRING, FieldType.TYPE_BYTES, FieldType.TYPE_ENUM)
                    or field.label == FieldType.LABEL_REPEATED
                )
                if needs_rule and not _is_validated(field):
                    unruled.append(f"{name}.{field.name}")

    assert unruled == []


def test_every_event_carries_metadata_as_field_one(
    image: descriptor_pb2.FileDescriptorSet,
) -> None:
    problems = []
    for file in our_files(image):
        if not file.name.endswith("_events.proto"):
            continue
        for message in file.message_type:
            first = next((f for f in message.field if f.number == 1), None)
            if first is None or first.type_name != ".tradingmesh.common.v1.EventMetadata":
                problems.append(f"{file.package}.{message.name}")

    assert problems == []


CORE_ROUTES = {
    ("POST", "/v1/auth/login"): "tradingmesh.account.v1.AuthService.Login",
    ("POST", "/v1/auth/refresh"): "tradingmesh.account.v1.AuthService.RefreshToken",
    ("GET", "/v1/instruments"): "tradingmesh.pricing.v1.PricingService.ListInstruments",
    ("GET", "/v1/quotes/{symbol}"): "tradingmesh.pricing.v1.PricingService.GetQuote",
    ("GET", "/v1/candles/{symbol}"): "tradingmesh.pricing.v1.PricingService.GetCandles",
    ("GET", "/v1/accounts"): "tradingmesh.account.v1.AccountService.ListAccounts",
    ("GET", "/v1/accounts/{account_id}"): "tradingmesh.account.v1.AccountService.GetAccount",
    ("POST", "/v1/accounts/{account_id}/orders"): "tradingmesh.oms.v1.OrderService.PlaceOrder",
    (
        "GET",
        "/v1/accounts/{account_id}/orders/{order_id}",
    ): "tradingmesh.oms.v1.OrderService.GetOrder",
    (
        "POST",
        "/v1/accounts/{account_id}/orders/{order_id}:cancel",
    ): "tradingmesh.oms.v1.OrderService.CancelOrder",
    (
        "GET",
        "/v1/accounts/{account_id}/positions",
    ): "tradingmesh.oms.v1.PositionService.ListPositions",
    (
        "GET",
        "/v1/accounts/{account_id}/statement",
    ): "tradingmesh.reporting.v1.ReportingService.GetStatement",
}


def test_the_core_rest_routes_map_to_their_rpcs(image: descriptor_pb2.FileDescriptorSet) -> None:
    routes = {}
    for file in our_files(image):
        for service in file.service:
            for method in service.method:
                rule = _http_rule(method)
                if rule is not None:
                    routes[_verb_and_path(rule)] = f"{file.package}.{service.name}.{method.name}"

    assert {route: routes.get(route) for route in CORE_ROUTES} == CORE_ROUTES
