// Error decoding, over the real gRPC-web decoding path: a fake fetch answers as the edge does
// (ADR 0002), with the google.rpc.Status in grpc-status-details-bin, and the SDK's clients call it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, DurationSchema, type Any } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { createClients } from "../dist/clients.js";
import { detailsOf, hasReason, reasonFromString, reasonString } from "../dist/errors.js";
import {
  BadRequestSchema,
  BadRequest_FieldViolationSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../dist/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../dist/gen/google/rpc/status_pb.js";
import { ErrorReason } from "../dist/gen/tradingmesh/common/v1/errors_pb.js";

function statusBytes(code: Code, message: string, details: Any[]): Uint8Array {
  return toBinary(StatusSchema, create(StatusSchema, { code, message, details }));
}

function errorInfo(
  reason: string,
  metadata: Record<string, string> = {},
  domain = "tradingmesh",
): Any {
  return anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { domain, reason, metadata }));
}

function badRequest(...violations: [string, string, string][]): Any {
  return anyPack(
    BadRequestSchema,
    create(BadRequestSchema, {
      fieldViolations: violations.map(([field, description, reason]) =>
        create(BadRequest_FieldViolationSchema, { field, description, reason }),
      ),
    }),
  );
}

type Answer = { code: Code; message: string; details: Any[]; inBody?: boolean };

/** A fetch that answers every call as the edge answers a failed gRPC-web call. */
function edgeAnswering(answer: Answer): typeof globalThis.fetch {
  return async () => {
    const trailers: Record<string, string> = {
      "grpc-status": String(answer.code),
      "grpc-message": encodeURIComponent(answer.message),
      "grpc-status-details-bin": Buffer.from(
        statusBytes(answer.code, answer.message, answer.details),
      ).toString("base64"),
    };
    const headers = { "content-type": "application/grpc-web+proto" };
    if (!answer.inBody) {
      // Trailers-only: what Envoy sends for its own refusals and for a service's bare error.
      return new Response(null, { status: 200, headers: { ...headers, ...trailers } });
    }
    // A trailer frame in the body (flag 0x80), as grpc_web turns real trailers into.
    const text = Object.entries(trailers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    const payload = new TextEncoder().encode(text);
    const frame = new Uint8Array(5 + payload.length);
    frame[0] = 0x80;
    new DataView(frame.buffer).setUint32(1, payload.length);
    frame.set(payload, 5);
    return new Response(frame, { status: 200, headers });
  };
}

async function failedCall(answer: Answer): Promise<unknown> {
  const tm = createClients({ baseUrl: "http://edge.test", fetch: edgeAnswering(answer) });
  try {
    await tm.auth.login({ username: "demo", password: "wrong" });
  } catch (error) {
    return error;
  }
  assert.fail("the call should have failed");
}

describe("detailsOf", () => {
  for (const inBody of [false, true]) {
    const form = inBody ? "in the body" : "only";
    test(`decodes the reason and its metadata (trailers ${form})`, async () => {
      const error = await failedCall({
        code: Code.FailedPrecondition,
        message: "insufficient margin",
        details: [
          errorInfo("INSUFFICIENT_MARGIN", { required_margin: "1085.12", free_margin: "100.00" }),
        ],
        inBody,
      });

      const details = detailsOf(error);

      assert.ok(error instanceof ConnectError);
      assert.equal(details.code, Code.FailedPrecondition);
      assert.equal(details.reason, ErrorReason.INSUFFICIENT_MARGIN);
      assert.equal(details.reasonName, "INSUFFICIENT_MARGIN");
      assert.deepEqual(details.metadata, { required_margin: "1085.12", free_margin: "100.00" });
      assert.equal(details.message, "insufficient margin");
      assert.deepEqual(details.fieldViolations, []);
      assert.equal(details.retryDelayMs, undefined);
      assert.ok(hasReason(error, ErrorReason.INSUFFICIENT_MARGIN));
    });
  }

  test("lists every field violation with its rule id", async () => {
    const error = await failedCall({
      code: Code.InvalidArgument,
      message: "invalid request",
      details: [
        errorInfo("VALIDATION_FAILED"),
        badRequest(
          ["quantity", "must be a decimal number greater than zero", "string.positive_decimal"],
          ["stop_loss.price", "must be a decimal number", "string.decimal"],
        ),
      ],
    });

    const details = detailsOf(error);

    assert.equal(details.reason, ErrorReason.VALIDATION_FAILED);
    assert.deepEqual(details.fieldViolations, [
      {
        field: "quantity",
        description: "must be a decimal number greater than zero",
        reason: "string.positive_decimal",
      },
      {
        field: "stop_loss.price",
        description: "must be a decimal number",
        reason: "string.decimal",
      },
    ]);
  });

  test("gives the retry delay of a rate limit", async () => {
    const retry = anyPack(
      RetryInfoSchema,
      create(RetryInfoSchema, {
        retryDelay: create(DurationSchema, { seconds: 1n, nanos: 500_000_000 }),
      }),
    );
    const error = await failedCall({
      code: Code.ResourceExhausted,
      message: "rate limited",
      details: [errorInfo("RATE_LIMITED"), retry],
    });

    assert.equal(detailsOf(error).reason, ErrorReason.RATE_LIMITED);
    assert.equal(detailsOf(error).retryDelayMs, 1500);
  });

  test("ignores another domain's ErrorInfo, keeps a newer reason by name", async () => {
    const foreign = await failedCall({
      code: Code.Internal,
      message: "x",
      details: [errorInfo("SOMETHING", {}, "example.com")],
    });
    const newer = await failedCall({
      code: Code.FailedPrecondition,
      message: "x",
      details: [errorInfo("A_REASON_FROM_THE_FUTURE")],
    });

    assert.equal(detailsOf(foreign).reason, ErrorReason.UNSPECIFIED);
    assert.equal(detailsOf(foreign).reasonName, "");
    assert.equal(detailsOf(newer).reason, ErrorReason.UNSPECIFIED);
    assert.equal(detailsOf(newer).reasonName, "A_REASON_FROM_THE_FUTURE");
  });

  test("an error without details, or not from a call, has no reason", () => {
    const bare = detailsOf(new ConnectError("down", Code.Unavailable));
    assert.equal(bare.reason, ErrorReason.UNSPECIFIED);
    const network = detailsOf(new TypeError("fetch failed"));
    assert.equal(network.code, Code.Unknown);
    assert.equal(network.reason, ErrorReason.UNSPECIFIED);
  });
});

describe("reason names", () => {
  test("are the ErrorReason names without their prefix, both ways", () => {
    assert.equal(reasonString(ErrorReason.INVALID_CREDENTIALS), "INVALID_CREDENTIALS");
    assert.equal(reasonFromString("INVALID_CREDENTIALS"), ErrorReason.INVALID_CREDENTIALS);
    assert.equal(reasonFromString("ERROR_REASON_INVALID_CREDENTIALS"), ErrorReason.UNSPECIFIED);
    for (const value of Object.values(ErrorReason).filter((v) => typeof v === "number")) {
      assert.equal(reasonFromString(reasonString(value)), value);
    }
  });
});
