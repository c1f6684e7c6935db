-- wrk script of the benchmark: POSTs a JSON body to one path, or spreads the requests over
-- KEYS virtual-object keys, and prints the result as one JSON line.
--   wrk ... -s bench/wrk.lua URL -- PATH_PREFIX PATH_SUFFIX KEYS BODY
-- KEYS=0: every request goes to PATH_PREFIX; otherwise to PATH_PREFIX k<random 1..KEYS> PATH_SUFFIX.
local prefix, suffix, keys

function init(args)
  prefix, suffix, keys = args[1], args[2], tonumber(args[3])
  wrk.method = "POST"
  if args[4] ~= "" then
    wrk.body = args[4]
    wrk.headers["content-type"] = "application/json"
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

function request()
  if keys == 0 then
    return wrk.format(nil, prefix)
  end
  return wrk.format(nil, prefix .. "k" .. math.random(keys) .. suffix)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
