// Shared by the e2e scripts: Debian's chromium through playwright-core, headless, in a fresh
// temporary profile, and small helpers (exact price arithmetic on strings, step reporting).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") throw new Error(`set ${name}`);
  return value;
}

/** A persistent context in a fresh temporary profile; `close()` removes the profile. */
export async function launch(contextOptions = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), "tm-web-e2e-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.TM_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    // The stack's edge may serve the page over TLS with its own CA.
    ignoreHTTPSErrors: true,
    ...contextOptions,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Signs in through the form. */
export async function signIn(page, username, password) {
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** A decimal string's units and scale, exactly ("1.08512" → [108512n, 5]). */
export function units(text) {
  const [whole, fraction = ""] = text.split(".");
  return [BigInt(`${whole}${fraction}`), fraction.length];
}

/** Units at a scale back to a decimal string. */
export function decimal(value, scale) {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

/** Waits until `probe()` returns a truthy value (polled), or fails with `what`. */
export async function waitFor(what, probe, timeoutMs = 15_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
