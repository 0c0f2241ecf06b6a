-- Row 3 of scripts/bench: synthesis jobs from create to COMPLETED through
-- the sandbox (started with --latency 20 --audio tone --queue-seconds 0
-- --work-seconds 0).
--   lua5.4 jobs.lua tasks|sequential N URL SANDBOX_PID MAX_IN_FLIGHT
-- tasks: N client:spawn tasks, each client:synthesize{...} then
-- job:wait{interval = 0.001}, driven by client:run(); sequential: the same
-- N jobs one after another with blocking calls. Prints seconds=, requests=
-- (API requests the sandbox saw, from /_sandbox/requests), failures=, and
-- the CPU seconds the client and the sandbox spent meanwhile.
local lib = dofile(((arg[0]:match("^(.*)/[^/]*$")) or ".") .. "/lib.lua")
local voiceclone = require "voiceclone"
local core = require "voiceclone.core"
local http = require "socket.http"
local cjson = require("cjson.safe").new()

local mode, n, url, sandbox_pid, max_in_flight =
  arg[1], tonumber(arg[2]), arg[3], arg[4], tonumber(arg[5] or 64)
local INTERVAL = 0.001   -- job:wait's first pause; it grows x1.5 a poll

-- The sequence number of the last API request the sandbox logged.
local function last_seq()
  local body, status = http.request(url .. "/_sandbox/requests?since=0")
  assert(status == 200, "GET /_sandbox/requests answered " .. tostring(status))
  local list = assert(cjson.decode(body))
  return #list > 0 and list[#list].seq or 0
end

local client = assert(voiceclone.new { endpoint = url, secret_id = lib.SECRET_ID,
                                       secret_key = lib.SECRET_KEY, timeout = 60,
                                       max_in_flight = max_in_flight })

local failures, first_error = 0, nil
local create_time, wait_time = 0, 0
local function one_job(i)
  local t0 = core.now()
  local job, err = client:synthesize { text = "Benchmark sentence number " .. i .. ".",
                                       content_id = "bench", destination = "/" .. mode }
  local t1 = core.now()
  if job then job, err = job:wait { interval = INTERVAL, timeout = 120 } end
  create_time, wait_time = create_time + (t1 - t0), wait_time + (core.now() - t1)
  if not job then
    failures = failures + 1
    first_error = first_error or tostring(err)
  end
end

-- warm-up: the connection and the sandbox's first job (not counted)
one_job(0)
failures, create_time, wait_time = 0, 0, 0

local seq0 = last_seq()
local cpu0, sandbox_cpu0 = os.clock(), lib.cpu_seconds(sandbox_pid)
local t0 = core.now()
if mode == "tasks" then
  for i = 1, n do client:spawn(one_job, i) end
  local ok, failed = client:run(300)
  if not ok then
    failures = failures + (failed and #failed or n)
    first_error = first_error or (type(failed) == "table" and tostring(failed[1] and failed[1].error)
      or tostring(failed))
  end
elseif mode == "sequential" then
  for i = 1, n do one_job(i) end
else
  error("unknown mode " .. tostring(mode))
end
local seconds = core.now() - t0
local cpu, sandbox_cpu = os.clock() - cpu0, lib.cpu_seconds(sandbox_pid)
sandbox_cpu = sandbox_cpu and sandbox_cpu0 and sandbox_cpu - sandbox_cpu0 or -1
local requests = last_seq() - seq0

lib.report {
  jobs = n, seconds = seconds, requests = requests, requests_per_job = requests / n,
  failures = failures, first_error = first_error and first_error:gsub("%s+", " ") or "",
  client_cpu = cpu, sandbox_cpu = sandbox_cpu, interval = INTERVAL,
  create_ms = 1000 * create_time / n, wait_ms = 1000 * wait_time / n,
}
