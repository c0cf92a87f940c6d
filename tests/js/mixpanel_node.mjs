// mixpanel-node (npm `mixpanel`), unmodified, against a running phlite over plain http.
//
//   node mixpanel_node.mjs <phlite url> <project token> <time ms for the imported events>
//
// Single calls are GETs with ?data=<base64>; the batch calls POST base64 forms. Every call's
// callback error (mixpanel-node accepts only the exact body `1`, or JSON status 1 when verbose)
// is collected; prints one JSON object on stdout.

import Mixpanel from "mixpanel";

const [url, token, baseMs] = process.argv.slice(2);
const t0 = Number(baseMs);
const { host } = new URL(url);
// `key` (an API key in the query) is what lets mixpanel-node call /import over http: the
// secret and service-account modes refuse anything but https.
const config = { host, protocol: "http", path: "", key: "mp-node-key", logger: { ...console, warn: () => {} } };
const mp = Mixpanel.init(token, config);
const verbose = Mixpanel.init(token, { ...config, verbose: true });

const errors = [];
const call = (what, fn) =>
  new Promise((resolve) =>
    fn((err) => {
      const list = Array.isArray(err) ? err.filter(Boolean) : err ? [err] : [];
      for (const e of list) errors.push(`${what}: ${e.message || e}`);
      resolve();
    }),
  );

await call("track", (cb) => mp.track("node-track", { distinct_id: "mpn-1", plan: "pro" }, cb));
await call("alias", (cb) => mp.alias("mpn-1", "mpn-alias", cb));
await call("people.set", (cb) => mp.people.set("mpn-1", { name: "Node User", plan: "pro" }, cb));
await call("groups.set", (cb) => mp.groups.set("company", "node-co", { name: "Node Co", seats: 5 }, cb));
await call("import", (cb) => mp.import("node-import-single", new Date(t0), { distinct_id: "mpn-1" }, cb));
await call("import_batch", (cb) =>
  mp.import_batch(
    [
      { event: "node-import", properties: { distinct_id: "mpn-1", time: t0 + 1000, $insert_id: "imp-1" } },
      { event: "node-import", properties: { distinct_id: "mpn-1", time: t0 + 2000, $insert_id: "imp-2" } },
      // The same $insert_id again: Mixpanel deduplicates it, so must phlite.
      { event: "node-import", properties: { distinct_id: "mpn-1", time: t0 + 1000, $insert_id: "imp-1" } },
    ],
    cb,
  ),
);
await call("track_batch", (cb) =>
  mp.track_batch(
    [
      { event: "node-batch", properties: { distinct_id: "mpn-2", time: t0 + 3000, n: 1 } },
      { event: "node-batch", properties: { distinct_id: "mpn-2", time: t0 + 4000, n: 2 } },
    ],
    cb,
  ),
);
await call("verbose track", (cb) => verbose.track("node-verbose", { distinct_id: "mpn-1" }, cb));

process.stdout.write(JSON.stringify({ errors }) + "\n", () => process.exit(0));
