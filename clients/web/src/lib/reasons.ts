/**
 * Error reasons → what the user reads. The one place that turns a failed call into text: it
 * branches on the stable reason (ADR 0002), never on the server's message.
 */

import { Code, ErrorReason, detailsOf, type FieldViolation } from "@tradingmesh/sdk";

const MESSAGES: Partial<Record<ErrorReason, string>> = {
  [ErrorReason.INVALID_CREDENTIALS]: "Wrong username or password.",
  [ErrorReason.ACCOUNT_DISABLED]: "This account is disabled. Contact support.",
  [ErrorReason.UNAUTHENTICATED]: "Your session has ended. Please sign in again.",
  [ErrorReason.REFRESH_TOKEN_REUSED]: "Your session has ended. Please sign in again.",
  [ErrorReason.PERMISSION_DENIED]: "You are not allowed to do that.",
  [ErrorReason.RATE_LIMITED]: "Too many requests. Wait a moment and try again.",
  [ErrorReason.VALIDATION_FAILED]: "Some fields are not valid.",
  [ErrorReason.NOT_FOUND]: "Not found (it may have changed meanwhile).",
  [ErrorReason.INVALID_STATE]: "That is not possible in the current state.",
  [ErrorReason.UNKNOWN_INSTRUMENT]: "Unknown instrument.",
  [ErrorReason.INSTRUMENT_HALTED]: "Trading in this instrument is halted.",
  [ErrorReason.MARKET_CLOSED]: "The market is closed.",
  [ErrorReason.PRICE_UNAVAILABLE]: "No price is available right now.",
  [ErrorReason.DUPLICATE_CLIENT_ORDER_ID]: "This order was already sent.",
  [ErrorReason.TOO_MANY_DECIMALS]: "Too many decimals for this instrument.",
  [ErrorReason.QUANTITY_OUT_OF_RANGE]: "Quantity is outside the instrument's lot limits.",
  [ErrorReason.INVALID_ORDER_FIELDS]: "These order fields do not fit the order type.",
  [ErrorReason.INVALID_STOPS]: "Stop loss or take profit is on the wrong side or too close.",
  [ErrorReason.INVALID_ORDER_STATE]: "The order can no longer be changed.",
  [ErrorReason.UNSUPPORTED_TIME_IN_FORCE]: "This time in force is not allowed for the order type.",
  [ErrorReason.INSUFFICIENT_MARGIN]: "Not enough free margin.",
  [ErrorReason.MAX_ORDER_SIZE_EXCEEDED]: "The order is larger than allowed.",
  [ErrorReason.POSITION_LIMIT_EXCEEDED]: "The position limit would be exceeded.",
  [ErrorReason.ACCOUNT_LIMIT_EXCEEDED]: "The account's limit would be exceeded.",
  [ErrorReason.ACCOUNT_IN_STOP_OUT]: "The account is in stop-out: only closing is allowed.",
  [ErrorReason.REQUOTE]: "The price moved (requote).",
  [ErrorReason.NO_LIQUIDITY]: "No liquidity for this order.",
  [ErrorReason.LP_REJECTED]: "The liquidity provider rejected the order.",
  [ErrorReason.LP_UNAVAILABLE]: "The liquidity provider is unavailable.",
  [ErrorReason.EXPIRED]: "The order expired.",
  [ErrorReason.INSUFFICIENT_FUNDS]: "Insufficient funds.",
  [ErrorReason.CONCURRENT_MODIFICATION]: "Changed meanwhile by someone else; refresh and retry.",
  [ErrorReason.DEPENDENCY_UNAVAILABLE]: "A service is unavailable. Try again shortly.",
  [ErrorReason.DEADLINE_EXCEEDED]: "The request took too long. Try again.",
};

/** The text for a reason (UNSPECIFIED or unknown reasons: undefined). */
export function reasonMessage(reason: ErrorReason): string | undefined {
  return MESSAGES[reason];
}

export interface UserError {
  /** One sentence for the user. */
  readonly message: string;
  /** The stable reason's name, e.g. "INSUFFICIENT_MARGIN" ("" when none). */
  readonly reason: string;
  /** Field violations by request field (snake_case path as the server wrote it). */
  readonly fields: Readonly<Record<string, string>>;
}

/** A failed call as the user sees it. */
export function userError(error: unknown): UserError {
  const details = detailsOf(error);
  const fields: Record<string, string> = {};
  for (const v of details.fieldViolations as readonly FieldViolation[]) {
    fields[v.field] = v.description || v.reason;
  }
  let message = reasonMessage(details.reason);
  if (message === undefined) {
    if (details.code === Code.Unavailable || details.code === Code.Unknown) {
      message = "Cannot reach the server. Check your connection and try again.";
    } else if (details.code === Code.InvalidArgument) {
      message = "Some fields are not valid.";
    } else if (details.code === Code.Unauthenticated) {
      message = "Your session has ended. Please sign in again.";
    } else {
      message = "Something went wrong. Try again.";
    }
  }
  return { message, reason: details.reasonName, fields };
}

/** The text for an order's status reason (an order REJECTED with a reason). */
export function orderReasonText(reason: ErrorReason, reasonName?: string): string {
  return reasonMessage(reason) ?? (reasonName ? reasonName : "");
}
