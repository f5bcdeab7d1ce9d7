-- wrk script for the admission bench: binary KServe v2 requests, one connection per thread.
--
-- Run with `-t N -c N` so each thread owns one connection: response() and delay() then see that
-- connection's own answers, which is what lets a thread honour Retry-After like a real client.
-- Arguments (after `--`): honour|immediate, the request body file, the v2 JSON header length.
-- done() prints one line, `WRK_RESULT {json}`: answers by status and every accepted latency (s), so
-- percentiles are computed by the bench with the same definition as its own client's.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } deploylab_timespec;
  int clock_gettime(int clock_id, deploylab_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("deploylab_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  honour = args[1] == "honour"
  local file = assert(io.open(args[2], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = args[3]
  prepared = wrk.format()
  statuses = {}
  accepted = {}
  wait_ms = 0
  started = 0
end

function request()
  started = now()
  return prepared
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status == 200 then
    accepted[#accepted + 1] = now() - started
  elseif honour and (status == 429 or status == 503) then
    local seconds = tonumber(headers["Retry-After"] or headers["retry-after"]) or 1
    wait_ms = math.min(seconds, 1) * 1000
  end
end

function delay()
  local wait = wait_ms
  wait_ms = 0
  return wait
end

function done(summary, latency, requests)
  local counts, samples = {}, {}
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("statuses")) do
      counts[key] = (counts[key] or 0) + n
    end
    for _, seconds in ipairs(thread:get("accepted")) do
      samples[#samples + 1] = string.format("%.6f", seconds)
    end
  end
  local parts = {}
  for key, n in pairs(counts) do
    parts[#parts + 1] = string.format('"%s": %d', key, n)
  end
  io.write(string.format(
    'WRK_RESULT {"statuses": {%s}, "accepted_s": [%s], "socket_errors": %d, "duration_s": %.3f}\n',
    table.concat(parts, ", "), table.concat(samples, ", "),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6))
end
