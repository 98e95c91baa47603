// For the benchmark: the page's time to first price after sign-in. TM_RUNS runs (default 5),
// each in a fresh browser context (empty cache): open the page, sign in, and measure in the
// page's own clock from the click on "Sign in" (performance.now() recorded right before the
// click) to document.body.dataset.firstPriceAt (set when the first quote is rendered). Also
// records the bytes the initial load transferred (sum of CDP Network.loadingFinished
// encodedDataLength until the sign-in form is ready). Prints one JSON object {runs: [...]}.
// Env: TM_WEB_URL, TM_DEMO_USERNAME, TM_DEMO_PASSWORD, optional TM_RUNS, TM_CHROMIUM.
import { chromium } from "playwright-core";

import { CHROMIUM_ARGS, env } from "./browser.mjs";

const url = env("TM_WEB_URL");
const username = env("TM_DEMO_USERNAME");
const password = env("TM_DEMO_PASSWORD");
const runs = Number.parseInt(process.env.TM_RUNS ?? "5", 10);

const browser = await chromium.launch({
  executablePath: process.env.TM_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_ARGS,
});
const results = [];
try {
  for (let run = 0; run < runs; run += 1) {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    let loadBytes = 0;
    let loadRequests = 0;
    let counting = true;
    cdp.on("Network.loadingFinished", (event) => {
      if (!counting) return;
      loadBytes += event.encodedDataLength;
      loadRequests += 1;
    });
    const navigationStart = Date.now();
    await page.goto(url, { waitUntil: "load" });
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    const loadMs = Date.now() - navigationStart;
    counting = false;

    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password").fill(password);
    await page.evaluate(() => {
      delete document.body.dataset.firstPriceAt;
      window.__tmSignInClickAt = performance.now();
    });
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForFunction(() => document.body.dataset.firstPriceAt !== undefined, undefined, {
      timeout: 30_000,
    });
    const ms = await page.evaluate(
      () => Number(document.body.dataset.firstPriceAt) - window.__tmSignInClickAt,
    );
    results.push({
      run: run + 1,
      first_price_ms: Math.round(ms * 10) / 10,
      initial_load_bytes: loadBytes,
      initial_load_requests: loadRequests,
      initial_load_ms: loadMs,
    });
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ url, runs: results }));
