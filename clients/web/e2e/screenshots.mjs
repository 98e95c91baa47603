// Screenshots of the terminal for the docs: signs in, places a market order, and writes
// terminal-desktop.png (1440×900) and terminal-phone.png (390×844, mobile emulation, device
// pixel ratio 2) into TM_SCREENSHOT_DIR. Env: TM_WEB_URL, TM_DEMO_USERNAME, TM_DEMO_PASSWORD.
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { env, launch, signIn, waitFor } from "./browser.mjs";

const url = env("TM_WEB_URL");
const username = env("TM_DEMO_USERNAME");
const password = env("TM_DEMO_PASSWORD");
const dir = env("TM_SCREENSHOT_DIR");
mkdirSync(dir, { recursive: true });

async function signedIn(page) {
  await page.goto(url);
  await signIn(page, username, password);
  await page.getByRole("button", { name: "Sign out" }).waitFor({ timeout: 20_000 });
  await waitFor("quotes", async () => (await page.locator('[data-testid^="bid-"]').first().textContent()) !== "—");
  await waitFor("the account strip", async () => (await page.getByTestId("equity").textContent()) !== "—");
}

async function shoot(contextOptions, file, placeOrder) {
  const browser = await launch(contextOptions);
  try {
    const page = browser.context.pages()[0] ?? (await browser.context.newPage());
    await signedIn(page);
    if (placeOrder) {
      const ticket = page.getByRole("form", { name: "Order ticket" });
      await ticket.getByRole("button", { name: "Place order" }).click();
      await waitFor("the fill", async () => /FILLED|REJECTED/.test((await ticket.textContent()) ?? ""));
      await page.locator("tr[data-position-id]").first().waitFor({ timeout: 15_000 });
    }
    // Let the chart draw and a few ticks arrive.
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(dir, file) });
    console.log(JSON.stringify({ file: join(dir, file) }));
  } finally {
    await browser.close();
  }
}

await shoot({ viewport: { width: 1440, height: 900 } }, "terminal-desktop.png", true);
await shoot(
  { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  "terminal-phone.png",
  false,
);
