// posthog-node's captureLog against phlite: node node_logs.mjs <url> <token>
// Run by tests/test_capture_compat.py, which reads the `$log` events back through the API.
import { PostHog } from 'posthog-node'

const [url, token] = process.argv.slice(2)
const client = new PostHog(token, { host: url, flushAt: 100, flushInterval: 0, fetchRetryCount: 0,
  logs: { serviceName: 'checkout-api', environment: 'test' } })
client.on('error', (err) => { console.error('posthog-node error:', err); process.exitCode = 1 })
client.captureLog({ body: 'payment failed', level: 'error', attributes: { code: 'E001', amount: 12 } })
client.withContext({ distinctId: 'log-user' }, () => {
  client.logger.info('order placed', { attributes: { order_id: 'ord_1' } })
})
await client.shutdown()
