// Drives phlite's console in Debian's headless Chromium and prints one JSON object of what it saw.
//
//   node console.mjs <scenario> <phlite url> <page origin> <project token> <project id> <email> <password> <shots dir>
//
// Scenarios: "shell" (sign in, home, live Activity fed by posthog-js on another origin, hostile
// events on every page); "forms" (find a person after identify, create and edit a flag and a cohort
// through the forms, use the cohort in a flag, hostile data on the persons/flags/cohorts pages);
// "keys" (create a key, shown once, revoke it); "member" (a member is refused the admin pages);
// "crosssite" (a form on another origin posts to the console with the session cookie: refused); "insights"
// (each page of the JSON list [[name, path], ...] given last: the chart is drawn). Screenshots of each page go to <shots dir>. Hostile payloads set
// window.__pwned or open a dialog if they ever run; both are reported.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [scenario, base, pageOrigin, token, projectId, email, password, shots, pagesJson] = process.argv.slice(2);
const STEP_MS = 15000;
const TOTAL_MS = 90000;
const CHROMIUM = process.env.PHLITE_CHROMIUM || "/usr/bin/chromium";

async function check(page, out, name) {
  // Whatever the page shows: no hostile script ran, no hostile element exists, nothing overflows.
  const seen = await page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    injected: document.querySelectorAll("main script, main img, main iframe, main svg script, [onerror]").length,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    nav: document.querySelectorAll("nav.side a").length,
  }));
  out.pages[name] = seen;
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function signIn(page) {
  await page.goto(`${base}/project/${projectId}/`);
  await page.waitForURL(/\/console\/login/);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(`${base}/project/${projectId}/`), page.click("button:has-text('Sign in')")]);
}

async function shellScenario(context, page, out) {
  await page.goto(`${base}/console/login`);
  await page.screenshot({ path: path.join(shots, "login.png") });
  await signIn(page);
  await check(page, out, "home");

  await page.goto(`${base}/project/${projectId}/activity`);
  await check(page, out, "activity");
  await page.evaluate(() => { window.__notReloaded = true; });

  // posthog-js on another origin sends an event; it must appear here without a reload.
  const live = `live-${Date.now()}`;
  const app = await context.newPage();
  await app.goto(`${pageOrigin}/posthog.html?` + new URLSearchParams({ api_host: base, token }));
  await app.waitForFunction(() => window.posthog && window.posthog.__loaded, null, { timeout: STEP_MS });
  await app.evaluate((name) => window.posthog.capture(name, { from: "console test" }), live);
  const started = Date.now();
  await page.locator("a.ev", { hasText: live }).first().waitFor({ timeout: STEP_MS });
  out.liveAfterMs = Date.now() - started;
  out.notReloaded = await page.evaluate(() => window.__notReloaded === true);
  await check(page, out, "activity-live");
  await app.close();

  // The hostile event opens to its properties.
  await page.locator("a.ev", { hasText: "<script>" }).first().click();
  await page.waitForURL(/\/events\//);
  await check(page, out, "event-hostile");
  out.eventTitle = await page.locator("h1").first().textContent();
}

async function formsScenario(context, page, out) {
  await signIn(page);
  // posthog-js identifies a user on another origin; the person is then found by search.
  const app = await context.newPage();
  await app.goto(`${pageOrigin}/posthog.html?` + new URLSearchParams({ api_host: base, token }));
  await app.waitForFunction(() => window.posthog && window.posthog.__loaded, null, { timeout: STEP_MS });
  await app.evaluate(() => window.posthog.identify("browser-user-1", { email: "b1@corp.example", plan: "pro" }));
  await app.evaluate(() => window.posthog.capture("after identify"));
  await page.goto(`${base}/project/${projectId}/persons`);
  const deadline = Date.now() + STEP_MS;
  for (;;) {  // the identify goes through the writer: search until the person is there (bounded)
    await page.fill("input[name=search]", "b1@corp");
    await page.click("button:has-text('Search')");
    if (await page.locator("a.person").count()) break;
    if (Date.now() > deadline) throw new Error("person never appeared");
    await page.waitForTimeout(250);
  }
  await page.locator("a.person").first().click();
  await page.waitForURL(/\/persons\/[0-9a-f-]{36}/);
  out.personIds = await page.locator("code.did").allTextContents();
  await check(page, out, "person");
  await app.close();

  // A flag through the form: one property filter, 50% rollout.
  await page.goto(`${base}/project/${projectId}/feature_flags/new`);
  await page.fill("input[name=key]", "browser-flag");
  await page.fill("input[name=name]", "Made in Chromium");
  await Promise.all([page.waitForLoadState("load"), page.click("button:has-text('+ Filter')")]);
  await page.fill("input[name='c0.p0.key']", "email");
  await page.selectOption("select[name='c0.p0.op']", "icontains");
  await page.fill("input[name='c0.p0.value']", "@corp.example");
  await page.fill("input[name='c0.rollout']", "50");
  await Promise.all([page.waitForURL(/saved=1/), page.click("button:has-text('Create flag')")]);
  await check(page, out, "flag-created");
  out.flagUrl = page.url();

  // Edit it (100%) and read the history.
  await page.fill("input[name='c0.rollout']", "100");
  await Promise.all([page.waitForURL(/saved=1/), page.click("button:has-text('Save changes')")]);
  out.history = await page.locator("table.history tbody tr").allTextContents();
  await page.fill("input[name=test]", "browser-user-1");
  await Promise.all([page.waitForLoadState("load"), page.click("button:has-text('Evaluate')")]);
  out.testResult = await page.locator(".test-result").textContent();
  await check(page, out, "flag-edited");

  // A dynamic cohort with the same filter editor, then used in a second flag.
  await page.goto(`${base}/project/${projectId}/cohorts/new`);
  await page.fill("input[name=name]", "Pro plan");
  await Promise.all([page.waitForLoadState("load"), page.click("button:has-text('+ Filter')")]);
  await page.fill("input[name='c0.p0.key']", "plan");
  await page.fill("input[name='c0.p0.value']", "pro");
  await Promise.all([page.waitForURL(/saved=1/), page.click("button:has-text('Create cohort')")]);
  out.cohortMembers = await page.locator("ul.members li").allTextContents();
  await check(page, out, "cohort");
  await page.goto(`${base}/project/${projectId}/feature_flags/new`);
  await page.fill("input[name=key]", "pro-flag");
  await Promise.all([page.waitForLoadState("load"), page.click("button:has-text('+ Filter')")]);
  await Promise.all([page.waitForLoadState("load"), page.selectOption("select[name='c0.p0.kind']", "cohort")
    .then(() => page.click("button:has-text('+ Filter')"))]);
  // Re-rendered with the cohort picker for filter 0 (and a new empty filter 1, removed again).
  await Promise.all([page.waitForLoadState("load"), page.click("button[value='remove_property:0:1']")]);
  await page.selectOption("select[name='c0.p0.value']", { label: "Pro plan" });
  await Promise.all([page.waitForURL(/saved=1/), page.click("button:has-text('Create flag')")]);

  // Hostile data, captured before this ran, on every list and detail page.
  for (const [name, url] of [["persons", "persons"], ["flags", "feature_flags"], ["cohorts", "cohorts"],
                             ["groups", "groups"]]) {
    await page.goto(`${base}/project/${projectId}/${url}`);
    await check(page, out, `hostile-${name}`);
  }
  await page.goto(`${base}/project/${projectId}/persons?search=` + encodeURIComponent("<script>"));
  await page.locator("a.person").first().click();
  await page.waitForURL(/\/persons\/[0-9a-f-]{36}/);
  await check(page, out, "hostile-person");
  await page.goto(`${base}/project/${projectId}/feature_flags`);
  await page.locator("a.flag", { hasText: "hostile" }).first().click();
  await page.waitForURL(/feature_flags\/\d+/);
  await check(page, out, "hostile-flag");
}

async function keysScenario(context, page, out) {
  await signIn(page);
  await page.goto(`${base}/project/${projectId}/keys`);
  await page.fill("input[name=label]", "made in chromium");
  await Promise.all([page.waitForLoadState("load"), page.click("button:has-text('Create key')")]);
  out.key = (await page.locator("#new-key").textContent()).trim();
  await check(page, out, "key-created");
  await page.goto(`${base}/project/${projectId}/keys`);
  out.keyShownAgain = (await page.content()).includes(out.key);
  const row = page.locator("tr", { hasText: "made in chromium" });
  await Promise.all([page.waitForLoadState("load"), row.locator("button:has-text('Revoke')").click()]);
  out.revokedRow = await page.locator("tr", { hasText: "made in chromium" }).textContent();
  await check(page, out, "key-revoked");
  await page.goto(`${base}/project/${projectId}/settings`);
  await check(page, out, "settings");
  await page.goto(`${base}/project/${projectId}/users`);
  await check(page, out, "users");
}

async function crossSiteScenario(context, page, out) {
  await signIn(page);
  const evil = await context.newPage();
  await evil.goto(`${pageOrigin}/csrf.html?` + new URLSearchParams({ target: `${base}/console/projects` }));
  const [resp] = await Promise.all([evil.waitForNavigation(), evil.click("#send")]);
  out.crossSiteStatus = resp.status();
  out.crossSiteBody = (await evil.textContent("body")).slice(0, 300);
  await evil.screenshot({ path: path.join(shots, "cross-site-refused.png") });
  await evil.close();
}

async function memberScenario(context, page, out) {
  await signIn(page);
  out.nav = await page.locator("nav.side a").allTextContents();
  out.refused = {};
  for (const p of ["keys", "users"]) {
    const resp = await page.goto(`${base}/project/${projectId}/${p}`);
    out.refused[p] = resp.status();
  }
  await page.screenshot({ path: path.join(shots, "member-refused.png") });
}

async function insightsScenario(context, page, out) {
  // Each insight page (name, path under /project/<id>/): the chart is drawn (SVG with a size and marks),
  // the tables are there, nothing hostile ran, and a full-page screenshot is kept.
  await signIn(page);
  out.charts = {};
  for (const [name, sub] of JSON.parse(pagesJson)) {
    await page.goto(`${base}/project/${projectId}/${sub}`);
    await page.waitForLoadState("networkidle");  // htmx-loaded parts (the web tables) are in
    await check(page, out, name);
    out.charts[name] = await page.evaluate(() => {
      const svgs = [...document.querySelectorAll("svg.insight-chart")];
      const box = (el) => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
      return {
        svgs: svgs.map(box),
        lines: [...document.querySelectorAll("svg.insight-chart path.series")].filter((p) => p.getTotalLength() > 0).length,
        dots: document.querySelectorAll("svg.insight-chart circle.dot").length,
        bars: [...document.querySelectorAll("svg.insight-chart rect.bar, svg.hbar rect.bar")].filter((r) => r.getBBox().height > 0 && r.getBBox().width > 0).length,
        strokes: [...new Set([...document.querySelectorAll("svg.insight-chart path.series")].map((p) => getComputedStyle(p).stroke))],
        tableRows: document.querySelectorAll("main table tbody tr").length,
        error: document.querySelector(".query-error")?.textContent ?? null,
        legend: [...document.querySelectorAll("ul.legend li")].map((li) => li.textContent.trim()),
        tiles: [...document.querySelectorAll(".tile .n")].map((n) => n.textContent.trim()),
        webTables: document.querySelectorAll(".web-table table").length,
        loading: document.querySelectorAll(".web-table .loading").length,
        sqlCells: [...document.querySelectorAll("table.sql-results tbody td")].slice(0, 50).map((td) => td.textContent),
      };
    });
  }
}

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "phlite-console-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const out = { scenario, console: [], pageErrors: [], dialogs: [], pages: {} };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(STEP_MS);
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") out.console.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });
    const run = { shell: shellScenario, forms: formsScenario, keys: keysScenario, member: memberScenario,
                  crosssite: crossSiteScenario, insights: insightsScenario }[scenario];
    if (!run) throw new Error(`unknown scenario ${scenario}`);
    let timer;
    const overall = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`scenario ${scenario} took over ${TOTAL_MS} ms`)), TOTAL_MS);
    });
    await Promise.race([run(context, page, out), overall]).finally(() => clearTimeout(timer));
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

main();
