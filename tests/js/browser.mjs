// Drives the real browser SDKs (posthog-js, mixpanel-browser) in Debian's headless Chromium
// against a running phlite, and prints one JSON object of what the page saw on stdout.
//
//   node browser.mjs <posthog|mixpanel|snippet> <phlite url> <project token> <page origin> <project id> <personal key>
//
// The page origin is a second local server (tests/test_browser.py) serving pages/*.html and the
// SDK bundles from node_modules, so every request to phlite is cross-origin with real CORS.
// Every wait is bounded by STEP_MS: Playwright's own, a promise on the page's traffic, or (for
// the unload beacon only, which Playwright cannot see) a poll of phlite's events API.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const [scenario, apiHost, token, pageOrigin, projectId, personalKey] = process.argv.slice(2);
const STEP_MS = 15000;
const TOTAL_MS = 60000;
const CHROMIUM = process.env.PHLITE_CHROMIUM || "/usr/bin/chromium";

// One record per request the page makes to phlite: what was sent and what came back.
class Traffic {
  constructor(context) {
    this.requests = [];
    this.waiters = [];
    context.on("requestfinished", (req) => this.finished(req));
    context.on("requestfailed", (req) => this.record(req, null, req.failure()?.errorText));
  }

  async finished(req) {
    let status = null;
    let error = null;
    try {
      status = (await req.response())?.status() ?? null;
    } catch (e) {
      error = String(e);
    }
    this.record(req, status, error);
  }

  record(req, status, error) {
    if (!req.url().startsWith(apiHost)) return;
    const url = new URL(req.url());
    const entry = {
      method: req.method(),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      type: req.resourceType(),
      contentType: req.headers()["content-type"] || null,
      status,
      error,
      body: decodeBody(req.postDataBuffer(), req.headers()["content-type"] || ""),
    };
    this.requests.push(entry);
    for (const w of [...this.waiters]) {
      if (w.predicate(entry)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  }

  // Resolves with the first request (already seen or future) matching predicate.
  waitFor(what, predicate, since = 0) {
    const seen = this.requests.slice(since).find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { predicate };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.summary())}`));
      }, STEP_MS);
      w.resolve = (entry) => {
        clearTimeout(timer);
        resolve(entry);
      };
      this.waiters.push(w);
    });
  }

  summary() {
    return this.requests.map((r) => `${r.method} ${r.path} ${r.type} ${r.status}`);
  }
}

// The JSON a capture or flags body carries, whatever its encoding (gzip, base64 form, JSON).
function decodeBody(buf, contentType) {
  if (!buf || !buf.length) return null;
  try {
    if (buf[0] === 0x1f && buf[1] === 0x8b) return JSON.parse(zlib.gunzipSync(buf).toString("utf8"));
    const text = buf.toString("utf8");
    if (contentType.includes("x-www-form-urlencoded") || text.startsWith("data=")) {
      const data = new URLSearchParams(text).get("data");
      const trimmed = data.trim();
      if (trimmed.startsWith("{") || trimmed.startsWith("[")) return JSON.parse(trimmed);
      return JSON.parse(Buffer.from(data, "base64").toString("utf8"));
    }
    return JSON.parse(text);
  } catch (e) {
    return { undecoded: String(e) };
  }
}

// Event names in a captured body: posthog-js {batch: [...]}, Mixpanel arrays or single objects.
function eventNames(body) {
  if (!body) return [];
  const items = Array.isArray(body) ? body : Array.isArray(body.batch) ? body.batch : [body];
  return items.map((e) => e.event).filter(Boolean);
}

const isCapture = (r) => r.method === "POST" && /^\/(e|i\/v0\/e)\/?$/.test(r.path);
const carries = (name) => (r) => isCapture(r) && r.status === 200 && eventNames(r.body).includes(name);

async function posthogScenario(page, traffic, out) {
  const url = `${pageOrigin}/posthog.html?` + new URLSearchParams({ api_host: apiHost, token });
  await page.goto(url);
  await page.waitForFunction(() => window.flagsReady !== undefined, null, { timeout: STEP_MS });
  await traffic.waitFor("$pageview", carries("$pageview"));
  out.flagsCallback = await page.evaluate(() => window.flagsReady);
  out.flags = await page.evaluate(() => ({
    enabled: posthog.isFeatureEnabled("beta-bool"),
    disabled: posthog.isFeatureEnabled("off-flag") ?? null,
    variant: posthog.getFeatureFlag("multi"),
    boolPayload: posthog.getFeatureFlagPayload("beta-bool"),
    variantPayload: posthog.getFeatureFlagPayload("multi"),
    missing: posthog.getFeatureFlag("no-such-flag") ?? null,
  }));
  out.anonId = await page.evaluate(() => posthog.get_distinct_id());

  await page.click("#buy");
  await traffic.waitFor("$autocapture", carries("$autocapture"));

  const beforeIdentify = traffic.requests.length;
  await page.evaluate(() => posthog.identify("ph-user-1", { email: "ph-user-1@example.com", plan: "pro" }));
  await traffic.waitFor("$identify", carries("$identify"), beforeIdentify);
  const flagsAfterIdentify = await traffic.waitFor(
    "/flags after identify",
    (r) => r.method === "POST" && r.path.startsWith("/flags") && r.status === 200,
    beforeIdentify,
  );
  out.flagsAfterIdentifyBody = flagsAfterIdentify.body;
  out.identifiedId = await page.evaluate(() => posthog.get_distinct_id());

  const beforeGroup = traffic.requests.length;
  await page.evaluate(() => posthog.group("company", "acme", { name: "Acme", seats: 10 }));
  await traffic.waitFor("$groupidentify", carries("$groupidentify"), beforeGroup);

  // Queued events, then leave the page at once: posthog-js sends its queue by sendBeacon on unload.
  // Chromium sends that beacon from the browser process after the page is gone, where Playwright
  // does not see it: the page logs its sendBeacon calls to sessionStorage (kept across this
  // same-origin navigation), and delivery is checked in phlite itself.
  const beforeLeave = traffic.requests.length;
  // Capture and navigate in one step, well inside the 500 ms flush interval.
  await page.evaluate(() => {
    posthog.capture("before-leave-1", { n: 1 });
    posthog.capture("before-leave-2", { n: 2 });
    location.assign("/away.html");
  });
  await page.waitForURL(`${pageOrigin}/away.html`, { waitUntil: "load" });
  out.beacons = await page.evaluate(() => JSON.parse(sessionStorage.getItem("beacons") || "[]"));
  out.fetchedBeforeLeave = traffic.requests.slice(beforeLeave).filter(carries("before-leave-1")).length;
  out.storedAfterLeave = await waitForEvents(["before-leave-1", "before-leave-2"]);
}

// Polls phlite's events API until every named event is stored: the one wait here that has no
// browser-side signal (the unload beacon's delivery). Bounded by STEP_MS.
async function waitForEvents(names) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const res = await fetch(`${apiHost}/api/projects/${projectId}/events/?limit=1000`, {
      headers: { Authorization: `Bearer ${personalKey}` },
    });
    const stored = (await res.json()).results.map((e) => e.event);
    if (names.every((n) => stored.includes(n))) return stored;
    if (Date.now() > deadline) throw new Error(`events ${names} not stored; have ${stored}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The HTML snippet: the SDK itself comes from phlite's /static/array.js (static_dir setting).
async function snippetScenario(page, traffic, out) {
  const url = `${pageOrigin}/snippet.html?` + new URLSearchParams({ api_host: apiHost, token });
  await page.goto(url);
  await traffic.waitFor("$pageview", carries("$pageview"));
  // posthog-js 1.449.2 then loads its surveys extension (it stays off: the config says so).
  await traffic.waitFor("surveys.js", (r) => r.path === "/static/surveys.js");
  out.libVersion = await page.evaluate(() => posthog.version ?? posthog.LIB_VERSION ?? null);
  await waitForEvents(["$pageview"]);
}

async function mixpanelScenario(page, traffic, out) {
  const url = `${pageOrigin}/mixpanel.html?` + new URLSearchParams({ api_host: apiHost, token });
  await page.goto(url);
  await page.waitForFunction(() => window.mixpanelLoaded === true, null, { timeout: STEP_MS });
  out.anonId = await page.evaluate(() => mixpanel.get_distinct_id());
  out.flags = await page.evaluate(async () => ({
    variant: await mixpanel.flags.get_variant_value("multi", "fallback"),
    enabled: await mixpanel.flags.is_enabled("beta-bool", false),
    disabled: await mixpanel.flags.is_enabled("off-flag", false),
    missing: await mixpanel.flags.get_variant_value("no-such-flag", "fallback"),
  }));
  const track = (name) => (r) =>
    r.method === "POST" && r.path.startsWith("/track") && r.status === 200 && eventNames(r.body).includes(name);
  await page.evaluate(() => mixpanel.track("mp-browser-event", { plan: "pro" }));
  await traffic.waitFor("mp-browser-event", track("mp-browser-event"));

  const beforeIdentify = traffic.requests.length;
  await page.evaluate(() => {
    mixpanel.identify("mp-user-1");
    mixpanel.people.set({ name: "MP User", email: "mp-user-1@example.com" });
  });
  await traffic.waitFor("$identify", track("$identify"), beforeIdentify);
  await traffic.waitFor(
    "people.set",
    (r) => r.method === "POST" && r.path.startsWith("/engage") && r.status === 200,
    beforeIdentify,
  );
  await traffic.waitFor(
    "/flags after identify",
    (r) => r.method === "GET" && r.path.startsWith("/flags") && r.status === 200,
    beforeIdentify,
  );
  out.identifiedId = await page.evaluate(() => mixpanel.get_distinct_id());
  out.variantAfterIdentify = await page.evaluate(() => mixpanel.flags.get_variant_value_sync("multi", "fallback"));
}

async function main() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "phlite-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const out = { scenario, console: [], pageErrors: [] };
  const traffic = new Traffic(context);
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.setDefaultTimeout(STEP_MS);
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") out.console.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    const run = { posthog: posthogScenario, mixpanel: mixpanelScenario, snippet: snippetScenario }[scenario];
    if (!run) throw new Error(`unknown scenario ${scenario}`);
    // page.evaluate has no timeout of its own (an SDK promise could wait forever): bound the lot.
    let timer;
    const overall = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`scenario ${scenario} took over ${TOTAL_MS} ms`)), TOTAL_MS);
    });
    await Promise.race([run(page, traffic, out), overall]).finally(() => clearTimeout(timer));
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  } finally {
    out.requests = traffic.requests;
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
}

main();
