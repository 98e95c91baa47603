/**
 * @tradingmesh/sdk: typed clients for every tradingmesh service over gRPC-web, plus exact
 * decimals, error reasons and the session's token refresh. Messages and enums are generated
 * under `@tradingmesh/sdk/gen/...` (e.g. `@tradingmesh/sdk/gen/tradingmesh/oms/v1/oms_pb`).
 */

export {
  SERVICES,
  clientsOver,
  createClients,
  type ClientsOptions,
  type TradingClients,
} from "./clients.js";
export {
  Session,
  authInterceptor,
  tokensFrom,
  type RefreshFn,
  type SessionOptions,
  type TokenResponse,
  type Tokens,
} from "./auth.js";
export {
  Code,
  ConnectError,
  ERROR_DOMAIN,
  ErrorReason,
  detailsOf,
  hasReason,
  reasonFromString,
  reasonString,
  type ErrorDetails,
  type FieldViolation,
} from "./errors.js";
export {
  Decimal,
  InexactValueError,
  InvalidDecimalError,
  MAX_FRACTION_DIGITS,
  MAX_INTEGER_DIGITS,
  addDecimals,
  compareDecimals,
  formatDecimal,
  fromUnits,
  isDecimal,
  parseDecimal,
  subtractDecimals,
  toUnits,
} from "./exact.js";
