// posthog-node's flag calls against phlite: node node_flags.mjs <url> <token> <personal key>
// Reads {"flags": [keys], "cases": [{distinct_id, person_properties, groups, group_properties}]}
// on stdin; prints {"remote": [...], "local": [...], "definitions": [...]} where each result is
// {flags: {key: value}, payloads: {key: payload}, all, all_payloads (getAllFlagsAndPayloads),
// all_flags (getAllFlags)} and
// "definitions" lists the /flags/definitions requests seen (If-None-Match sent, status).
// Run by tests/test_flags_sdk.py.
import { PostHog } from 'posthog-node'

const [url, token, personalApiKey] = process.argv.slice(2)
const spec = JSON.parse(await new Promise((resolve) => {
  let data = ''
  process.stdin.on('data', (chunk) => { data += chunk })
  process.stdin.on('end', () => resolve(data))
}))

const definitions = []
async function spyingFetch (target, options) {
  const res = await fetch(target, options)
  if (String(target).includes('/flags/definitions')) {
    definitions.push({ if_none_match: options.headers?.['If-None-Match'] ?? null, status: res.status })
  }
  return res
}

const common = { host: url, flushAt: 100, flushInterval: 0, fetchRetryCount: 0, featureFlagsRequestTimeoutMs: 10000 }
const remote = new PostHog(token, common)
const local = new PostHog(token, { ...common, personalApiKey, fetch: spyingFetch, featureFlagsPollingInterval: 600000 })
for (const client of [remote, local]) {
  client.on('error', (err) => { console.error('posthog-node error:', err); process.exitCode = 1 })
}

if (!(await local.waitForLocalEvaluationReady(10000))) {
  console.error('local evaluation never became ready')
  process.exit(1)
}
// Reloads send the ETag back (304). The first may join the initial load still settling.
await local.reloadFeatureFlags()
await local.reloadFeatureFlags()

async function run (client, onlyEvaluateLocally) {
  const out = []
  for (const c of spec.cases) {
    const options = {
      groups: c.groups,
      personProperties: c.person_properties,
      groupProperties: c.group_properties,
      sendFeatureFlagEvents: false,
      onlyEvaluateLocally,
    }
    const flags = {}
    const payloads = {}
    for (const key of spec.flags) {
      flags[key] = (await client.getFeatureFlag(key, c.distinct_id, options)) ?? null
      payloads[key] = (await client.getFeatureFlagPayload(key, c.distinct_id, undefined, options)) ?? null
    }
    const all = await client.getAllFlagsAndPayloads(c.distinct_id, options)
    const allFlags = await client.getAllFlags(c.distinct_id, options)
    out.push({ flags, payloads, all: all.featureFlags, all_payloads: all.featureFlagPayloads, all_flags: allFlags })
  }
  return out
}

const result = { remote: await run(remote, false), local: await run(local, true), definitions }
await remote.shutdown()
await local.shutdown()
process.stdout.write(JSON.stringify(result))
