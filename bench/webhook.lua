-- wrk script for bench_webhooks: POST the same recorded Bitbucket delivery, each request with its own
-- X-Request-UUID (the endpoint dedupes deliveries by it, so a repeated id would skip the outbox insert).
-- Inputs (environment): BENCH_BODY_FILE, BENCH_HEADERS_FILE ("Name: value" lines), BENCH_RUN (digits).
local counter = 0
local threads = 0
local body, headers, run

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  body = slurp(os.getenv("BENCH_BODY_FILE"))
  headers = {}
  for line in slurp(os.getenv("BENCH_HEADERS_FILE")):gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  run = tonumber(os.getenv("BENCH_RUN") or "0")
end

function request()
  counter = counter + 1
  headers["X-Request-UUID"] = string.format("%08d-%04d-4000-8000-%012d", run, tid, counter)
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_s": %.6f, "non2xx": %d, "errors": %d, ' ..
    '"p50_s": %.6f, "p90_s": %.6f, "p99_s": %.6f, "max_s": %.6f, "mean_s": %.6f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e6, latency:percentile(90) / 1e6, latency:percentile(99) / 1e6,
    latency.max / 1e6, latency.mean / 1e6))
end
