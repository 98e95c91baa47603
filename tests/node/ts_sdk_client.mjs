// A client of the TypeScript SDK (@tradingmesh/sdk, clients/typescript, built with `npm run
// build`) as a web or Node application uses it: gRPC-web over fetch, through the edge (Envoy)
// over TLS. tests/integration/test_ts_sdk.py runs it against the real stack and checks what it
// prints: one JSON object on stdout.
//
// Environment: TM_EDGE_URL (https://127.0.0.1:<port>), NODE_EXTRA_CA_CERTS (the stack's CA, so
// fetch trusts the edge), TM_DEMO_USERNAME, TM_DEMO_PASSWORD, TM_DEMO_ACCOUNT_ID.
// Exits 1 with the error on stderr.

import {
  createClients,
  detailsOf,
  formatDecimal,
  fromUnits,
  parseDecimal,
  subtractDecimals,
} from "../../clients/typescript/dist/index.js";

const DEADLINE_MS = 20000;

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** A refused call, decoded by the SDK. */
async function refusal(call) {
  try {
    await call();
  } catch (error) {
    const details = detailsOf(error);
    return { code: details.code, reason: details.reasonName, violations: details.fieldViolations };
  }
  throw new Error("the call was expected to fail");
}

/** The first StreamQuotes response that carries a tick, then the stream is closed. */
async function firstTick(tm, accountId, symbol) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), DEADLINE_MS);
  try {
    for await (const batch of tm.pricing.streamQuotes(
      { accountId, symbols: [symbol] },
      { signal: abort.signal },
    )) {
      const tick = batch.quotes.find((q) => q.symbol === symbol);
      if (tick) return tick;
    }
    throw new Error("the quote stream ended without a tick");
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

async function main() {
  const accountId = env("TM_DEMO_ACCOUNT_ID");
  const changes = [];
  const tm = createClients({
    baseUrl: env("TM_EDGE_URL"),
    defaultTimeoutMs: DEADLINE_MS,
    onTokens: (tokens) => changes.push(tokens === undefined ? "ended" : "tokens"),
  });
  const report = {};

  // A refused sign-in, by its stable reason.
  report.wrong_password = await refusal(() =>
    tm.signIn(env("TM_DEMO_USERNAME"), `${env("TM_DEMO_PASSWORD")}-wrong`),
  );
  // A call without a token: the edge refuses it with the same shape.
  report.without_token = await refusal(() => tm.pricing.listInstruments({ accountId }));
  // Bad input: the field violation and its rule.
  report.user_id = await tm.signIn(env("TM_DEMO_USERNAME"), env("TM_DEMO_PASSWORD"));
  report.bad_input = await refusal(() => tm.pricing.getQuote({ symbol: "eurusd", accountId }));

  const { instruments } = await tm.pricing.listInstruments({ accountId, pageSize: 500 });
  report.instruments = instruments.map((i) => ({
    symbol: i.symbol,
    digits: i.digits,
    tick_size: i.tickSize,
    contract_size: i.contractSize,
    min_lot: i.minLot,
    max_lot: i.maxLot,
    lot_step: i.lotStep,
  }));
  // Every decimal string goes through the SDK's parser and formatter unchanged.
  report.decimals_round_trip = instruments.every((i) =>
    [i.tickSize, i.contractSize, i.minLot, i.maxLot, i.lotStep].every(
      (text) => formatDecimal(parseDecimal(text)) === text,
    ),
  );

  const { quote } = await tm.pricing.getQuote({ symbol: "EURUSD", accountId });
  report.quote = {
    bid: quote.bid,
    ask: quote.ask,
    spread: quote.spread,
    // ask − bid, exactly, compared by value with the spread the service computed.
    spread_is_ask_minus_bid: parseDecimal(subtractDecimals(quote.ask, quote.bid)).equals(
      quote.spread,
    ),
  };

  // Server streaming over gRPC-web: fixed-point units to an exact price.
  const tick = await firstTick(tm, accountId, "EURUSD");
  report.tick = {
    bid: fromUnits(tick.bidUnits, tick.priceScale).toString(),
    ask: fromUnits(tick.askUnits, tick.priceScale).toString(),
    price_scale: tick.priceScale,
    ask_above_bid: fromUnits(tick.askUnits, tick.priceScale).compare(
      fromUnits(tick.bidUnits, tick.priceScale),
    ),
  };

  // Refresh before expiry: the session thinks its access token is due, so the next call
  // refreshes first (rotation: a new refresh token replaces the spent one).
  const signedIn = tm.session.tokens;
  tm.session.set({ ...signedIn, accessTokenExpiresAt: Date.now() });
  await tm.pricing.getQuote({ symbol: "EURUSD", accountId });
  const refreshed = tm.session.tokens;
  report.proactive_refresh = {
    rotated: refreshed.refreshToken !== signedIn.refreshToken,
    new_access_token: refreshed.accessToken !== signedIn.accessToken,
    expires_in_future: refreshed.accessTokenExpiresAt > Date.now() + 60_000,
  };

  // The edge refuses a token the client thought valid (here: tampered): one refresh, one retry.
  tm.session.set({ ...refreshed, accessToken: `${refreshed.accessToken}x` });
  const retried = await tm.pricing.getQuote({ symbol: "EURUSD", accountId });
  report.refresh_on_refusal = {
    answered: retried.quote?.symbol === "EURUSD",
    rotated: tm.session.tokens.refreshToken !== refreshed.refreshToken,
  };

  // A spent refresh token is refused as reused (and the server ends the session).
  report.reused_refresh_token = await refusal(() =>
    tm.auth.refreshToken({ refreshToken: signedIn.refreshToken }),
  );
  await tm.signOut().catch(() => undefined);
  report.signed_out = tm.session.tokens === undefined;
  report.token_changes = changes;
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
