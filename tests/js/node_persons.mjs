// posthog-node's person and group calls against phlite: node node_persons.mjs <url> <token>
// Run by tests/test_persons_sdk.py, which reads the results back through the API.
import { PostHog } from 'posthog-node'

const [url, token] = process.argv.slice(2)
const client = new PostHog(token, { host: url, flushAt: 100, flushInterval: 0, fetchRetryCount: 0 })
client.on('error', (err) => { console.error('posthog-node error:', err); process.exitCode = 1 })

// An anonymous visitor browses, then signs up and is identified.
client.capture({ distinctId: 'node-anon', event: 'pageview', properties: { $current_url: 'https://shop.example/' } })
client.identify({
  distinctId: 'node-user',
  properties: {
    $set: { email: 'node@example.com', plan: 'pro' },
    $set_once: { first_plan: 'pro' },
    $anon_distinct_id: 'node-anon',
  },
})
// identify without $set: the other properties are the $set
client.identify({ distinctId: 'node-user', properties: { name: 'Node User' } })
client.alias({ distinctId: 'node-user', alias: 'node-legacy-id' })
client.capture({ distinctId: 'node-user', event: 'purchase', groups: { company: 'acme' } })
client.groupIdentify({ groupType: 'company', groupKey: 'acme', properties: { name: 'Acme', employees: 11 } })
await client.shutdown()
