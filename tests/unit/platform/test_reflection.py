"""Reflection on a real grpc.aio server: the process's own view for direct callers, the edge's
public view for calls that carry the edge token (what Envoy forwards)."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2  # type: ignore[import-untyped]  # no type information
from grpc_reflection.v1alpha import reflection_pb2_grpc

from services.platform.reflection import public_services
from tests.unit.platform.pricing_harness import PRICING_SERVICE
from tests.unit.platform.pricing_harness import Harness
from tests.unit.platform.pricing_harness import edge_metadata

TOOLS = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
INTERNAL = ("tradingmesh.risk.v1.RiskInternalService", "tradingmesh.oms.v1.OmsInternalService")
Metadata = tuple[tuple[str, str], ...]


async def _ask(
    harness: Harness, request: reflection_pb2.ServerReflectionRequest, metadata: Metadata = ()
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel)
    call = stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
    responses = [response async for response in call]
    assert len(responses) == 1
    response: reflection_pb2.ServerReflectionResponse = responses[0]
    return response


async def _listed(harness: Harness, metadata: Metadata = ()) -> set[str]:
    response = await _ask(
        harness, reflection_pb2.ServerReflectionRequest(list_services=""), metadata
    )
    return {service.name for service in response.list_services_response.service}


def _files(
    response: reflection_pb2.ServerReflectionResponse,
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    found = {}
    for raw in response.file_descriptor_response.file_descriptor_proto:
        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
        found[file.name] = file
    return found


async def test_a_direct_caller_sees_the_process_own_services(harness: Harness) -> None:
    assert await _listed(harness) == {PRICING_SERVICE, *TOOLS}


async def test_a_call_through_the_edge_sees_every_public_service_and_no_internal_one(
    harness: Harness,
) -> None:
    listed = await _listed(harness, edge_metadata())

    assert listed == {*public_services(), *TOOLS}
    assert {"tradingmesh.oms.v1.OrderService", "tradingmesh.account.v1.AuthService"} <= listed
    assert not any(name.endswith("InternalService") for name in listed)


async def test_a_forged_edge_token_gets_the_process_own_view(harness: Harness) -> None:
    listed = await _listed(harness, (("x-tm-edge-token", "forged"),))

    assert listed == {PRICING_SERVICE, *TOOLS}


async def test_through_the_edge_a_public_service_is_described_with_its_imports(
    harness: Harness,
) -> None:
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="tradingmesh.oms.v1.OrderService"
    )

    files = _files(await _ask(harness, request, edge_metadata()))

    service_file = files["tradingmesh/oms/v1/order_service.proto"]
    assert [s.name for s in service_file.service] == ["OrderService"]
    assert "tradingmesh/oms/v1/oms.proto" in files  # what it imports comes along
    assert "buf/validate/validate.proto" in files


async def test_through_the_edge_internal_services_and_their_files_are_not_found(
    harness: Harness,
) -> None:
    asks = [
        *(reflection_pb2.ServerReflectionRequest(file_containing_symbol=name) for name in INTERNAL),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="tradingmesh.risk.v1.RiskInternalService.CheckOrder"
        ),
        reflection_pb2.ServerReflectionRequest(
            file_by_filename="tradingmesh/risk/v1/risk_internal_service.proto"
        ),
        reflection_pb2.ServerReflectionRequest(
            file_by_filename="tradingmesh/oms/v1/oms_internal_service.proto"
        ),
    ]

    for request in asks:
        response = await _ask(harness, request, edge_metadata())
        assert response.WhichOneof("message_response") == "error_response", request
        assert response.error_response.error_code == 5  # NOT_FOUND


async def test_no_file_served_through_the_edge_defines_an_internal_service(
    harness: Harness,
) -> None:
    # Every public service, with all it imports: none of those files brings an internal service.
    for name in public_services():
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)
        files = _files(await _ask(harness, request, edge_metadata()))
        assert files, name
        for file in files.values():
            assert not any(s.name.endswith("InternalService") for s in file.service), file.name
