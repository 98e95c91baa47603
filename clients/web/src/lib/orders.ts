/** What the ticket says about a placed order (pure: the ticket's outcome line and requote). */

import { ErrorReason } from "@tradingmesh/sdk";
import { OrderStatus } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/trading_pb";
import { Side } from "@tradingmesh/sdk/gen/tradingmesh/common/v1/types_pb";
import type { Order } from "@tradingmesh/sdk/gen/tradingmesh/oms/v1/oms_pb";

import { DASH } from "./format.js";
import { orderReasonText } from "./reasons.js";

export interface Outcome {
  readonly kind: "ok" | "rejected" | "requote" | "error";
  /** Starts with the order's status word (FILLED, WORKING, REJECTED, ...). */
  readonly text: string;
  /** For a requote: the live price to accept (resend as the requested price). */
  readonly requotePrice?: string;
}

export type OrderSummary = Pick<
  Order,
  | "status"
  | "side"
  | "quantity"
  | "symbol"
  | "statusReason"
  | "statusMessage"
  | "requotePrice"
  | "averageFillPrice"
  | "price"
  | "stopPrice"
>;

export function describeOrder(order: OrderSummary): Outcome {
  const status = OrderStatus[order.status] ?? "UNKNOWN";
  const side = order.side === Side.BUY ? "Buy" : "Sell";
  const what = `${side} ${order.quantity} ${order.symbol}`;
  if (order.status === OrderStatus.REJECTED) {
    if (order.statusReason === ErrorReason.REQUOTE && order.requotePrice !== "") {
      return {
        kind: "requote",
        text: `REJECTED (requote): ${what}. New price ${order.requotePrice}.`,
        requotePrice: order.requotePrice,
      };
    }
    const why = orderReasonText(order.statusReason) || order.statusMessage;
    return { kind: "rejected", text: `REJECTED: ${what}.${why === "" ? "" : ` ${why}`}` };
  }
  if (order.status === OrderStatus.FILLED || order.status === OrderStatus.PARTIALLY_FILLED) {
    return { kind: "ok", text: `${status}: ${what} at ${order.averageFillPrice || DASH}.` };
  }
  const at =
    order.price !== "" ? ` at ${order.price}` : order.stopPrice !== "" ? ` stop ${order.stopPrice}` : "";
  return { kind: "ok", text: `${status}: ${what}${at}.` };
}
