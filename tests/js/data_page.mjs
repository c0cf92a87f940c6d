// Drives the console's Data page in Debian's headless Chromium and prints one JSON object of what it saw.
//
//   node data_page.mjs <phlite url> <project id> <project name> <email> <password> <event to delete> <shots dir>
//
// Signs in, sets retention, previews a deletion of one event name and confirms it, then deletes the
// project through its confirmation page. Hostile captured data on the page sets window.__pwned if it runs.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [base, projectId, projectName, email, password, eventName, shots] = process.argv.slice(2);
const CHROMIUM = process.env.PHLITE_CHROMIUM || "/usr/bin/chromium";
const data = `${base}/project/${projectId}/data`;

async function seen(page, out, name) {
  out.pages[name] = await page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    injected: document.querySelectorAll("main script, main img, main iframe, [onerror]").length,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  }));
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function run(page, out) {
  await page.goto(data);
  await page.waitForURL(/\/console\/login/);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(data), page.click("button:has-text('Sign in')")]);
  await seen(page, out, "data");

  await page.fill("input[name=retention_days]", "30");
  await Promise.all([page.waitForURL(/saved=1/), page.click("button:has-text('Save retention')")]);
  out.retention = await page.inputValue("input[name=retention_days]");

  await page.fill("#delete-events input[name=event]", eventName);
  await page.click("button:has-text('Preview how many')");
  await page.locator("#preview-count").waitFor();
  out.preview = (await page.locator("#preview-count strong").textContent()).trim();
  await seen(page, out, "data-preview");
  await Promise.all([page.waitForURL(/queued=/), page.click("button.danger:has-text('Delete')")]);
  out.queued = await page.locator("p[role=status]").first().textContent();

  await page.click("a:has-text('Delete project')");
  await page.waitForURL(/delete-project/);
  await page.fill("input[name=confirm]", projectName);
  await Promise.all([page.waitForURL(/\/console\/projects/), page.click("button:has-text('Delete project')")]);
  out.after = page.url();
}

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "phlite-data-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const out = { console: [], pageErrors: [], dialogs: [], pages: {} };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(15000);
    page.on("console", (m) => { if (m.type() === "error") out.console.push(m.text()); });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });
    await run(page, out);
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

main();
