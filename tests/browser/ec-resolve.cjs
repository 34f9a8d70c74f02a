// Drives headless Debian Chromium through playwright-core against a running Gatehouse: loads a
// page that includes the client-side Edge Cookie script (/_ts/ec.js), waits for the script's
// POST /_ts/api/v1/ec/resolve to be answered, and prints one JSON line with that answer and the
// `ts-ec` cookie the browser then holds (or null).
//
//   PLAYWRIGHT_CORE=<dir of playwright-core> node ec-resolve.cjs BASE_URL [CONSENT_COOKIE=VALUE]
//
// With CONSENT_COOKIE=VALUE (e.g. euconsent-v2=<TC string>) that cookie is set in the browser
// before the page loads. Run by host/standalone/tests/all/browser.rs.
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

async function main() {
  const [base, consent] = process.argv.slice(2);
  if (!base) throw new Error("usage: ec-resolve.cjs BASE_URL [NAME=VALUE]");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    // Headless Chromium says `HeadlessChrome` in its User-Agent, which the device provider
    // rightly classifies as a bot (no Edge Cookie): present the UA of the same browser, headed.
    const version = browser.version();
    const context = await browser.newContext({
      userAgent: `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${version} Safari/537.36`,
    });
    if (consent) {
      const split = consent.indexOf("=");
      await context.addCookies([
        { name: consent.slice(0, split), value: consent.slice(split + 1), url: base },
      ]);
    }
    const page = await context.newPage();
    const resolved = page.waitForResponse(
      (r) => new URL(r.url()).pathname === "/_ts/api/v1/ec/resolve",
      { timeout: 60000 },
    );
    await page.goto(base + "/", { waitUntil: "load", timeout: 60000 });
    const response = await resolved;
    const body = await response.json();
    const cookie = (await context.cookies(base)).find((c) => c.name === "ts-ec") || null;
    process.stdout.write(
      JSON.stringify({ status: response.status(), body, cookie }) + "\n",
    );
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  process.exit(1);
});
