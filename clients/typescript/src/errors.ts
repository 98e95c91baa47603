/**
 * What a failed tradingmesh call says: its stable reason and the fields at fault.
 *
 * Every error the platform returns (the services' and the edge's own) is a gRPC status whose
 * details (the `grpc-status-details-bin` trailer, which Connect's gRPC-web transport decodes) hold
 * a `google.rpc.ErrorInfo` (`domain = "tradingmesh"`, `reason` = an `ErrorReason` name without its
 * `ERROR_REASON_` prefix, `metadata` of decimal strings and ids) and, for bad input, a
 * `google.rpc.BadRequest` with one violation per field; a `google.rpc.RetryInfo` says when a retry
 * helps. See docs/adr/0002-error-model.md; the Python SDK's `tradingmesh.errors` decodes the same.
 *
 * Branch on `reason`, never on `message` (its text may change).
 */

import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { ErrorReason, ErrorReasonSchema } from "./gen/tradingmesh/common/v1/errors_pb.js";

/** The `ErrorInfo.domain` of every tradingmesh error. */
export const ERROR_DOMAIN = "tradingmesh";

const PREFIX = "ERROR_REASON_";

/** One field that broke the contract, e.g. field "quantity", reason "string.positive_decimal". */
export interface FieldViolation {
  /** The request field's path, e.g. "quantity" or "stop_loss.price". */
  readonly field: string;
  /** Readable text for a person. */
  readonly description: string;
  /** The rule id (protovalidate's, e.g. "string.positive_decimal"), or "" if none. */
  readonly reason: string;
}

/** A failed call, decoded. */
export interface ErrorDetails {
  /** The gRPC status code (Connect's `Code`, e.g. `Code.Unauthenticated`). */
  readonly code: Code;
  /** The status message (for people and logs, not for branching). */
  readonly message: string;
  /** The stable reason; UNSPECIFIED when the error carried none (or one this SDK predates). */
  readonly reason: ErrorReason;
  /** The reason as the server wrote it, e.g. "INSUFFICIENT_MARGIN" (also for newer reasons). */
  readonly reasonName: string;
  /** The context of the reason, e.g. `required_margin`, `free_margin`, `bid`, `ask`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** For bad input: every field at fault. */
  readonly fieldViolations: readonly FieldViolation[];
  /** When a retry helps (RetryInfo), the delay to wait first, in milliseconds. */
  readonly retryDelayMs?: number;
}

/** The `ErrorInfo.reason` text of an `ErrorReason`, e.g. "INSUFFICIENT_MARGIN". */
export function reasonString(reason: ErrorReason): string {
  const value = ErrorReasonSchema.value[reason];
  if (value === undefined) return ErrorReason[reason] ?? String(reason);
  return value.name.startsWith(PREFIX) ? value.name.slice(PREFIX.length) : value.name;
}

/** The `ErrorReason` of an `ErrorInfo.reason`; unknown ones (newer servers) are UNSPECIFIED. */
export function reasonFromString(text: string): ErrorReason {
  const value = ErrorReasonSchema.values.find((v) => v.name === PREFIX + text);
  return value === undefined ? ErrorReason.UNSPECIFIED : (value.number as ErrorReason);
}

/**
 * Decodes a failed call. Accepts what a client call throws (a `ConnectError`); anything else
 * (e.g. a `TypeError` from a broken network) is converted as `ConnectError.from` does, which
 * gives code `Unknown` and no reason.
 */
export function detailsOf(error: unknown): ErrorDetails {
  const connectError = ConnectError.from(error);
  let reasonName = "";
  const metadata: Record<string, string> = {};
  for (const info of connectError.findDetails(ErrorInfoSchema)) {
    if (info.domain !== ERROR_DOMAIN) continue;
    reasonName = info.reason;
    Object.assign(metadata, info.metadata);
  }
  const fieldViolations = connectError
    .findDetails(BadRequestSchema)
    .flatMap((badRequest) => badRequest.fieldViolations)
    .map((v) => ({ field: v.field, description: v.description, reason: v.reason }));
  const retry = connectError.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const details: ErrorDetails = {
    code: connectError.code,
    message: connectError.rawMessage,
    reason: reasonFromString(reasonName),
    reasonName,
    metadata,
    fieldViolations,
  };
  if (retry === undefined) return details;
  // A delay (seconds and nanos) is not money: milliseconds as a number are exact enough.
  return { ...details, retryDelayMs: Number(retry.seconds) * 1000 + Math.round(retry.nanos / 1e6) };
}

/** Whether a failed call carries the given reason, e.g. `hasReason(e, ErrorReason.REQUOTE)`. */
export function hasReason(error: unknown, reason: ErrorReason): boolean {
  return detailsOf(error).reason === reason;
}

export { Code, ConnectError, ErrorReason };
