-- Shared by the wrk scripts: thread ids, counting non-200 answers, and one machine-readable
-- summary line ("WRKJSON {...}") that bench.py reads.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

n503, nother = 0, 0

function response(status, headers, body)
  if status == 503 then
    n503 = n503 + 1
  elseif status ~= 200 then
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local s503, sother = 0, 0
  for _, t in ipairs(threads) do
    s503 = s503 + t:get("n503")
    sother = sother + t:get("nother")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"status_503":%d,"status_other":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, s503, sother,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
