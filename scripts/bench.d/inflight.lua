-- Row 4 of scripts/bench: client:step() with many requests in flight.
--   lua5.4 inflight.lua N ENDPOINT
-- N tasks, each one client:get_job against an endpoint that answers slowly
-- (nginx's limit_req spreads the answers: the k-th after k/2000 s), on a
-- client with max_in_flight = N; the host loop calls client:step() until
-- every task is done, timing each call in wall time and in CPU time.
-- Memory per in-flight job: the growth of RSS (/proc/self/statm) from
-- before the tasks to its peak, divided by the most requests in flight at
-- once.
--
-- CPU time is os.clock(): the CPU time of the whole process. Here that is
-- the CPU time of the thread calling step() (what CLOCK_THREAD_CPUTIME_ID
-- gives in C): the endpoint is a numeric loopback address, so libcurl
-- starts no resolver thread and the process has one thread. The driver
-- checks that rather than assume it: it reads Threads: from
-- /proc/self/status after every step and reports the most it saw
-- (max_threads=); above 1, the CPU times would include other threads.
local lib = dofile(((arg[0]:match("^(.*)/[^/]*$")) or ".") .. "/lib.lua")
local voiceclone = require "voiceclone"
local core = require "voiceclone.core"

local n, url = tonumber(arg[1]), arg[2]
local now = core.now
-- What a host's frame loop gives step(): the time it can spare for resuming
-- tasks (BENCH_STEP_BUDGET seconds; "none" for no limit).
local budget = tonumber(os.getenv("BENCH_STEP_BUDGET") or "0.0005")
-- BENCH_COLLECTOR=stop: no garbage collection during the run, to see what
-- of the worst step is the collector's (its atomic phase cannot be split)
local collector_stopped = os.getenv("BENCH_COLLECTOR") == "stop"
if collector_stopped then collectgarbage("stop") end

local client = assert(voiceclone.new { endpoint = url, secret_id = lib.SECRET_ID,
                                       secret_key = lib.SECRET_KEY, timeout = 60,
                                       max_in_flight = n })

-- Where a step's time goes: the bench wraps the scheduler's calls into the
-- C core's loop (core.drive: poll + libcurl; core.finished: the Requests
-- that ended) and core.get_job (to count the requests started); the rest of
-- step() is resuming tasks (their API calls start requests, or decode
-- answers) and the scheduler's own Lua. tasks.lua and client.lua look these
-- up in the core's table at each call, so the wrappers are what they call.
local drive, finished, get_job = core.drive, core.finished, core.get_job
local drive_time, finished_count, started, ended = 0, 0, 0, 0
function core.drive(c, wait)
  local t = now()
  drive(c, wait)
  drive_time = drive_time + (now() - t)
end
function core.finished(c)
  local list = finished(c)
  finished_count = finished_count + #list
  ended = ended + #list
  return list
end
function core.get_job(c, id)
  local request, err = get_job(c, id)
  if request then started = started + 1 end
  return request, err
end

-- warm-up: libcurl's first use, one connection (not counted); a blocking
-- call never asks for core.finished, so its Request is taken here
assert(client:get_job(lib.JOB_ID))
finished(client)
started, ended = 0, 0

local done, failures = 0, 0
local function task()
  local job, err = client:get_job(lib.JOB_ID)
  if job then done = done + 1 else failures = failures + 1; io.stderr:write(tostring(err), "\n") end
end

collectgarbage("collect")
local rss0, lua0 = lib.rss_kib(), collectgarbage("count")
for _ = 1, n do client:spawn(task) end

local steps, worst, worst_at, total = 0, 0, 0, 0
-- CPU time of a step: what preemption cannot inflate (row 4a's measure)
local worst_cpu, worst_cpu_at, worst_cpu_wall, worst_cpu_drive, steady_worst_cpu = 0, 0, 0, 0, 0
local cpu_durations = {}
local worst_drive, worst_finished, worst_in_flight = 0, 0, 0
local durations = {}
local log = os.getenv("BENCH_STEPLOG") and {}   -- per step, for a closer look
local peak_rss, peak_in_flight, rss_at_peak_in_flight = rss0, 0, rss0
local ramp_steps, ramp = nil, {}
local steady_worst, steady_worst_at, steady_drive, steady_finished = 0, 0, 0, 0
local lua_at_peak = 0
local max_threads = lib.threads()
local t_start = now()
local left = n
while left > 0 do
  drive_time, finished_count = 0, 0
  local t, c = now(), os.clock()
  left = client:step(budget)
  local dt, cpu = now() - t, os.clock() - c
  steps = steps + 1
  durations[steps] = dt
  cpu_durations[steps] = cpu
  if log then
    log[steps] = { dt = dt, cpu = cpu, drive = drive_time, finished = finished_count, left = left }
  end
  total = total + dt
  -- requests started and not yet ended after this step
  local in_flight = started - ended
  local threads = lib.threads()
  if threads > max_threads then max_threads = threads end
  if cpu > worst_cpu then
    worst_cpu, worst_cpu_at, worst_cpu_wall, worst_cpu_drive = cpu, steps, dt, drive_time
  end
  if dt > worst then
    worst, worst_at, worst_drive, worst_finished, worst_in_flight =
      dt, steps, drive_time, finished_count, in_flight
  end
  local rss = lib.rss_kib()
  if rss > peak_rss then peak_rss = rss end
  if in_flight >= peak_in_flight then
    peak_in_flight, rss_at_peak_in_flight = in_flight, math.max(rss, rss_at_peak_in_flight)
    lua_at_peak = math.max(lua_at_peak, collectgarbage("count"))
  end
  if not ramp_steps then
    -- ramp-up: until every request in flight has its connection and has
    -- been written (libcurl then watches each socket for reading only)
    if steps <= 3 then ramp[steps] = { rss = rss, dt = dt, drive = drive_time } end
    local sockets, writing = 0, 0
    for _, what in pairs(client:sockets()) do
      sockets = sockets + 1
      if what:find("w") then writing = writing + 1 end
    end
    if left > 0 and writing == 0 and sockets >= left then ramp_steps = steps end
  else
    if cpu > steady_worst_cpu then steady_worst_cpu = cpu end
  end
  if ramp_steps and steps > ramp_steps and dt > steady_worst then
    steady_worst, steady_worst_at, steady_drive, steady_finished = dt, steps, drive_time, finished_count
  end
  if now() - t_start > 60 or (ramp_steps and os.getenv("BENCH_RAMP_ONLY")) then break end
end
local elapsed = now() - t_start

if log then   -- step, ms, CPU ms, ms in core.drive, answers, unfinished tasks
  local f = assert(io.open(os.getenv("BENCH_STEPLOG"), "w"))
  for i, e in ipairs(log) do
    f:write(string.format("%d %.3f %.3f %.3f %d %d\n", i, e.dt * 1000, e.cpu * 1000, e.drive * 1000,
      e.finished, e.left))
  end
  f:close()
end
table.sort(durations)
table.sort(cpu_durations)
local function pct(p, list)
  list = list or durations
  return list[math.max(1, math.ceil(p * #list))]
end

local results = {
  tasks = n, done = done, failures = failures, steps = steps, seconds = elapsed,
  worst_ms = worst * 1000, worst_step = worst_at, worst_drive_ms = worst_drive * 1000,
  worst_finished = worst_finished, worst_in_flight = worst_in_flight,
  p50_ms = pct(0.5) * 1000, p99_ms = pct(0.99) * 1000, p999_ms = pct(0.999) * 1000,
  mean_ms = total / steps * 1000,
  second_worst_ms = (durations[#durations - 1] or 0) * 1000,
  peak_in_flight = peak_in_flight, rss0_kib = rss0, peak_rss_kib = peak_rss,
  kib_per_job = (rss_at_peak_in_flight - rss0) / math.max(1, peak_in_flight),
  lua_kib_per_job = (lua_at_peak - lua0) / math.max(1, peak_in_flight),
  ramp_steps = ramp_steps or -1,

  steady_worst_ms = steady_worst * 1000, steady_worst_step = steady_worst_at,
  worst_cpu_ms = worst_cpu * 1000, steady_worst_cpu_ms = steady_worst_cpu * 1000,
  worst_cpu_step = worst_cpu_at, worst_cpu_wall_ms = worst_cpu_wall * 1000,
  worst_cpu_drive_ms = worst_cpu_drive * 1000,
  cpu_p99_ms = pct(0.99, cpu_durations) * 1000, cpu_p999_ms = pct(0.999, cpu_durations) * 1000,
  max_threads = max_threads, collector = collector_stopped and "stopped" or "running",
  steady_worst_drive_ms = steady_drive * 1000, steady_worst_finished = steady_finished,
}
local before = rss0
for i = 1, 3 do
  local r = ramp[i] or { rss = before, dt = 0, drive = 0 }
  results["step" .. i .. "_ms"] = r.dt * 1000
  results["step" .. i .. "_drive_ms"] = r.drive * 1000
  results["step" .. i .. "_kib_per_job"] = (r.rss - before) / n
  before = r.rss
end
lib.report(results)
