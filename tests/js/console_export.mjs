// The settings page's "Download an export" in Debian's headless Chromium: sign in, choose CSV and a range of
// days, press Download, and print one JSON object with the downloaded file's name and text.
//
//   node console_export.mjs <phlite url> <project id> <email> <password> <from day> <to day>

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [base, projectId, email, password, from, to] = process.argv.slice(2);
const CHROMIUM = process.env.PHLITE_CHROMIUM || "/usr/bin/chromium";

async function main() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "phlite-export-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, acceptDownloads: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const out = { console: [], pageErrors: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    // Chromium asks for /favicon.ico by itself (phlite has none): not an error of the page.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) out.console.push(`${m.text()} ${m.location().url}`);
    });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    await page.goto(`${base}/project/${projectId}/settings`);
    await page.waitForURL(/\/console\/login/);
    await page.fill("input[name=email]", email);
    await page.fill("input[name=password]", password);
    await Promise.all([page.waitForURL(/\/settings/), page.click("button:has-text('Sign in')")]);
    const form = page.locator("#export form");
    await form.locator("select[name=format]").selectOption("csv");
    await form.locator("input[name=from]").fill(from);
    await form.locator("input[name=to]").fill(to);
    const [download] = await Promise.all([page.waitForEvent("download"), form.locator("button").click()]);
    const file = path.join(userDataDir, "download");
    await download.saveAs(file);
    out.name = download.suggestedFilename();
    out.failure = await download.failure();
    out.text = fs.readFileSync(file, "utf8");
    out.url = page.url(); // a download leaves the page where it was
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

main();
