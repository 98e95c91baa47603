// End-to-end test of the web terminal against a real stack (issue 16's acceptance), driving
// Debian's chromium with playwright-core. Env: TM_WEB_URL (the page), TM_DEMO_USERNAME,
// TM_DEMO_PASSWORD, optional TM_CHROMIUM. Prints one JSON object per step on stdout; on failure
// the step and the reason go to stderr and the exit code is 1.
import { decimal, env, launch, signIn, units, waitFor } from "./browser.mjs";

const url = env("TM_WEB_URL");
const username = env("TM_DEMO_USERNAME");
const password = env("TM_DEMO_PASSWORD");
const DASH = "—";

let step = "launch";
const report = (result) => console.log(JSON.stringify({ step, ok: true, ...result }));

const browser = await launch({ viewport: { width: 1440, height: 900 } });
try {
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const refreshes = [];
  page.on("request", (request) => {
    if (request.url().includes("tradingmesh.account.v1.AuthService/RefreshToken")) {
      refreshes.push(Date.now());
    }
  });
  // The fake clock must be there before the page loads (it then runs in real time until we
  // jump it forward).
  await page.clock.install();
  await page.goto(url);

  step = "wrong password";
  await signIn(page, username, `${password}-wrong`);
  const alert = page.getByRole("alert");
  await alert.waitFor({ timeout: 15_000 });
  const alertText = (await alert.textContent()) ?? "";
  if (!alertText.includes("Wrong username or password")) throw new Error(`alert says ${JSON.stringify(alertText)}`);
  report({ message: alertText });

  step = "sign in";
  await signIn(page, username, password);
  await page.getByRole("button", { name: "Sign out" }).waitFor({ timeout: 20_000 });
  report({});

  step = "quotes change";
  const watchlist = page.getByRole("table", { name: "Watchlist" });
  await watchlist.waitFor();
  const firstBid = watchlist.locator('[data-testid^="bid-"]').first();
  const symbol = ((await firstBid.getAttribute("data-testid")) ?? "").slice(4);
  const bid1 = await waitFor("a first quote", async () => {
    const t = (await firstBid.textContent()) ?? DASH;
    return t !== DASH ? t : undefined;
  });
  const started = Date.now();
  const bid2 = await waitFor(`the ${symbol} bid to change`, async () => {
    const t = (await firstBid.textContent()) ?? DASH;
    return t !== bid1 ? t : undefined;
  }, 20_000);
  report({ symbol, first: bid1, then: bid2, ms: Date.now() - started });

  step = "market order fills";
  const ticket = page.getByRole("form", { name: "Order ticket" });
  const usedMargin = page.getByTestId("used-margin");
  await waitFor("the account strip", async () => ((await usedMargin.textContent()) ?? DASH) !== DASH);
  const marginBefore = (await usedMargin.textContent()) ?? "";
  await ticket.getByLabel("Symbol").selectOption(symbol);
  await ticket.getByLabel("Order type").selectOption({ label: "Market" });
  await ticket.getByRole("radio", { name: "Buy", exact: true }).check();
  await ticket.getByRole("button", { name: "Place order" }).click();
  const outcome = ticket.locator('[role="status"], [role="alert"]');
  let outcomeText = await waitFor("the order's outcome", async () => {
    const t = (await outcome.first().textContent()) ?? "";
    return t.trim() !== "" ? t : undefined;
  });
  if (outcomeText.includes("requote")) {
    // Instant execution requoted: accept the new price once.
    await ticket.getByRole("button", { name: /^Accept/ }).click();
    outcomeText = await waitFor("the requoted order's outcome", async () => {
      const t = (await outcome.first().textContent()) ?? "";
      return !t.includes("requote") ? t : undefined;
    });
  }
  if (!outcomeText.includes("FILLED")) throw new Error(`the ticket says ${JSON.stringify(outcomeText)}`);
  report({ outcome: outcomeText.trim() });

  step = "position with P&L";
  await page.getByRole("tab", { name: /^Positions/ }).click();
  const positions = page.getByRole("table", { name: "Positions" });
  const positionRow = positions.locator("tr[data-position-id]").first();
  await positionRow.waitFor({ timeout: 15_000 });
  const positionId = (await positionRow.getAttribute("data-position-id")) ?? "";
  const pnl = page.getByTestId(`pnl-${positionId}`);
  const pnl1 = await waitFor("the P&L", async () => {
    const t = (await pnl.textContent()) ?? DASH;
    return t !== DASH ? t : undefined;
  });
  let pnl2 = pnl1;
  try {
    pnl2 = await waitFor("the P&L to change", async () => {
      const t = (await pnl.textContent()) ?? DASH;
      return t !== pnl1 ? t : undefined;
    }, 10_000);
  } catch {
    // A quiet market may leave it unchanged; shown is what counts.
  }
  report({ positionId, pnl: pnl1, later: pnl2, changed: pnl1 !== pnl2 });

  step = "account strip changes";
  const marginAfter = await waitFor("the used margin to change", async () => {
    const t = (await usedMargin.textContent()) ?? "";
    return t !== marginBefore ? t : undefined;
  });
  report({ usedMarginBefore: marginBefore, usedMarginAfter: marginAfter });

  step = "limit order placed";
  const bidNow = (await firstBid.textContent()) ?? "";
  const [bidUnits, scale] = units(bidNow);
  const farPrice = decimal(bidUnits / 2n, scale);
  const amendedPrice = decimal(bidUnits / 2n - 10n ** BigInt(Math.max(0, scale - 2)), scale);
  await ticket.getByLabel("Order type").selectOption({ label: "Limit" });
  await ticket.getByLabel("Time in force").selectOption("1"); // GTC
  await ticket.getByLabel("Limit price").fill(farPrice);
  await ticket.getByRole("button", { name: "Place order" }).click();
  const limitOutcome = await waitFor("the limit order's outcome", async () => {
    const t = (await outcome.first().textContent()) ?? "";
    return /WORKING|NEW|ACCEPTED|PENDING/.test(t) && t.includes(farPrice) ? t : undefined;
  });
  await page.getByRole("tab", { name: /^Working orders/ }).click();
  const orders = page.getByRole("table", { name: "Working orders" });
  const orderRow = orders.locator("tr[data-order-id]").filter({ hasText: farPrice }).first();
  await orderRow.waitFor({ timeout: 15_000 });
  const orderId = (await orderRow.getAttribute("data-order-id")) ?? "";
  report({ orderId, price: farPrice, outcome: limitOutcome.trim() });

  step = "limit order amended";
  const row = orders.locator(`tr[data-order-id="${orderId}"]`);
  await row.getByRole("button", { name: "Amend" }).click();
  await row.getByLabel("New price").fill(amendedPrice);
  await row.getByRole("button", { name: "Save" }).click();
  await waitFor("the amended price in the blotter", async () =>
    ((await page.getByTestId(`price-${orderId}`).textContent()) ?? "") === amendedPrice,
  );
  report({ orderId, price: amendedPrice });

  step = "limit order cancelled";
  await row.getByRole("button", { name: "Cancel" }).click();
  await waitFor("the order to leave the blotter", async () => (await row.count()) === 0);
  report({ orderId });

  step = "streams reconnect and say so";
  // The quote stream fails after a reload (the session survives the reload): the indicator
  // counts down to the next attempt, then the stream comes back.
  await page.route("**/tradingmesh.pricing.v1.PricingService/StreamQuotes", (route) => route.abort());
  await page.reload();
  await page.getByRole("button", { name: "Sign out" }).waitFor({ timeout: 15_000 });
  const indicator = page.getByRole("status").filter({ hasText: /^(Live|Connecting…|Offline|Reconnecting in \d+ s…)$/ });
  const retrying = await waitFor("the indicator to say it reconnects", async () => {
    const t = (await indicator.textContent()) ?? "";
    return t.startsWith("Reconnecting in") ? t : undefined;
  });
  await page.unroute("**/tradingmesh.pricing.v1.PricingService/StreamQuotes");
  await waitFor("the indicator to say Live", async () => (await indicator.textContent()) === "Live", 20_000);
  await waitFor("quotes again", async () => ((await firstBid.textContent()) ?? DASH) !== DASH);
  report({ indicator: retrying });

  step = "token refreshed silently";
  const before = refreshes.length;
  await page.clock.fastForward("16:00");
  await waitFor("a RefreshToken request", async () => refreshes.length > before, 15_000);
  await page.getByRole("button", { name: "Sign out" }).waitFor({ timeout: 5_000 });
  if ((await page.getByRole("button", { name: "Sign in" }).count()) > 0) throw new Error("signed out");
  // A later action works: close the position.
  await page.getByRole("tab", { name: /^Positions/ }).click();
  const closeRow = positions.locator(`tr[data-position-id="${positionId}"]`);
  await closeRow.getByRole("button", { name: "Close" }).click();
  try {
    await waitFor("the position to close", async () => (await closeRow.count()) === 0, 8_000);
  } catch {
    // A requote on the close: press Close again at the live price.
    await closeRow.getByRole("button", { name: "Close" }).click();
    await waitFor("the position to close", async () => (await closeRow.count()) === 0);
  }
  report({ refreshRequests: refreshes.length - before, closedPosition: positionId });

  step = "a duplicated tab shares the session";
  // A duplicated tab starts with a copy of this tab's sessionStorage: the same refresh token.
  // When both find the access token due, the session must be refreshed once (a spent refresh
  // token presented twice would end it, signing both tabs out).
  const held = await page.evaluate(() => sessionStorage.getItem("tradingmesh.tokens"));
  const twin = await browser.context.newPage();
  twin.on("request", (request) => {
    if (request.url().includes("tradingmesh.account.v1.AuthService/RefreshToken")) {
      refreshes.push(Date.now());
    }
  });
  await twin.addInitScript((tokens) => {
    if (sessionStorage.getItem("tradingmesh.tokens") === null) {
      sessionStorage.setItem("tradingmesh.tokens", tokens);
    }
  }, held);
  // The browser orders the tabs' messages with nothing else: the twin hears them late, so that
  // it may get the refresh lock before it hears what the first tab's refresh bought (as on a
  // loaded machine; spending the token again there once signed the session out).
  await twin.addInitScript(() => {
    const onmessage = Object.getOwnPropertyDescriptor(BroadcastChannel.prototype, "onmessage");
    Object.defineProperty(BroadcastChannel.prototype, "onmessage", {
      get() {
        return onmessage.get.call(this);
      },
      set(listener) {
        onmessage.set.call(this, (event) => setTimeout(() => listener(event), 200));
      },
    });
  });
  await twin.goto(url);
  await twin.getByRole("button", { name: "Sign out" }).waitFor({ timeout: 15_000 });
  const beforeTwin = refreshes.length;
  await page.clock.fastForward("16:00");
  await waitFor("a RefreshToken request from either tab", async () => refreshes.length > beforeTwin, 15_000);
  // Both tabs poll the account every second or two: long enough for a second refresh to show.
  await page.waitForTimeout(4_000);
  for (const tab of [page, twin]) {
    if ((await tab.getByRole("button", { name: "Sign in" }).count()) > 0) throw new Error("a tab was signed out");
  }
  const tokensNow = await Promise.all(
    [page, twin].map((tab) => tab.evaluate(() => JSON.parse(sessionStorage.getItem("tradingmesh.tokens") ?? "{}").refreshToken)),
  );
  if (tokensNow[0] !== tokensNow[1]) throw new Error("the tabs hold different refresh tokens");
  report({ refreshRequests: refreshes.length - beforeTwin, tabs: 2 });
  await twin.close();

  step = "sign out";
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor({ timeout: 10_000 });
  const stored = await page.evaluate(() => sessionStorage.length);
  if (stored !== 0) throw new Error("tokens left in sessionStorage");
  report({});
} catch (error) {
  console.error(JSON.stringify({ step, ok: false, reason: error instanceof Error ? error.message : String(error) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
