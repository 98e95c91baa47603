import assert from "node:assert/strict";
import { test } from "node:test";

import { Code, ConnectError, ErrorReason } from "@tradingmesh/sdk";
import { BadRequestSchema, ErrorInfoSchema } from "@tradingmesh/sdk/gen/google/rpc/error_details_pb";

import { orderReasonText, reasonMessage, userError } from "../src/lib/reasons.js";

function failure(code: Code, reason: string, violations: [string, string][] = []): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { domain: "tradingmesh", reason } },
  ];
  if (violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: { fieldViolations: violations.map(([field, description]) => ({ field, description })) },
    });
  }
  return new ConnectError("server text, not for branching", code, undefined, details);
}

test("a wrong password reads clearly", () => {
  const e = userError(failure(Code.Unauthenticated, "INVALID_CREDENTIALS"));
  assert.equal(e.message, "Wrong username or password.");
  assert.equal(e.reason, "INVALID_CREDENTIALS");
});

test("field violations are kept by field", () => {
  const e = userError(
    failure(Code.InvalidArgument, "VALIDATION_FAILED", [["quantity", "must be a positive decimal"]]),
  );
  assert.equal(e.message, "Some fields are not valid.");
  assert.deepEqual(e.fields, { quantity: "must be a positive decimal" });
});

test("reasons, not messages, pick the text", () => {
  assert.equal(userError(failure(Code.FailedPrecondition, "INSUFFICIENT_MARGIN")).message, "Not enough free margin.");
  assert.equal(reasonMessage(ErrorReason.REQUOTE), "The price moved (requote).");
  assert.equal(orderReasonText(ErrorReason.UNSPECIFIED, "SOMETHING_NEW"), "SOMETHING_NEW");
});

test("a network failure has no reason", () => {
  const e = userError(new TypeError("Failed to fetch"));
  assert.equal(e.message, "Cannot reach the server. Check your connection and try again.");
  assert.equal(e.reason, "");
  assert.equal(userError(failure(Code.Internal, "")).message, "Something went wrong. Try again.");
});
