-- The table of scripts/bench, from the key=value lines its drivers printed.
--   lua5.4 report.lua RESULTS [PROFILE [PROFILE_LUAJIT]]
-- A row whose measurement failed says so ("n/a") instead of a number.
local results_file, profile_file, profile_file_jit = arg[1], arg[2], arg[3]

local r = {}
for line in io.lines(results_file) do
  local k, v = line:match("^([%w_]+)=(.*)$")
  if k then r[k] = tonumber(v) or v end
end

local function num(key) return type(r[key]) == "number" and r[key] or nil end

-- 12345.6 -> "12,346"
local function thousands(x, decimals)
  local s = string.format("%." .. (decimals or 0) .. "f", x)
  local int, frac = s:match("^(-?%d+)(.*)$")
  int = int:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(-?),", "%1")
  return int .. frac
end

local function fmt(x, pattern) return x and string.format(pattern, x) or "n/a" end
local function met(ok) if ok == nil then return "n/a" end return ok and "yes" or "**no**" end

local rows = {}
local function row(...) rows[#rows + 1] = { ... } end

-- 1 and 2, under each Lua: the client and its luasocket peer both run
-- under it (key prefix "" for lua5.4, "j" for LuaJIT)
local LUAS = { { tag = "", suffix = "", name = "Lua 5.4" }, { tag = "j", suffix = " LuaJIT", name = "LuaJIT" } }
local function rows_1_2(l)
  local vc, ls, wrk = num("r1" .. l.tag .. "_vc_rps"), num("r1" .. l.tag .. "_ls_rps"), num("r1_wrk_rps")
  local ir_vc, ir_ls = num("r2" .. l.tag .. "_vc_ir"), num("r2" .. l.tag .. "_luasocket_ir")
  if l.tag ~= "" and not (vc or ls or ir_vc or ir_ls) then return end   -- that Lua was not run
  local vc_ls = vc and ls and vc / ls
  local vc_wrk = vc and wrk and vc / wrk
  row("1a" .. l.suffix, string.format("sequential GetJob round trips/s vs a fixed-answer nginx, under %s; "
      .. "client and nginx both on core 0 (median of %s rounds)", l.name, r.rounds or "?"),
    vc and thousands(vc) .. " req/s" or "n/a",
    "socket.http + ltn12 + cjson (" .. l.name .. "): " .. (ls and thousands(ls) .. " req/s" or "n/a"),
    fmt(vc_ls, "%.2f"), "≥ 3", met(vc_ls and vc_ls >= 3))
  row("1b" .. l.suffix, "same, against wrk -t1 -c1 (same request, same core)",
    vc and thousands(vc) .. " req/s" or "n/a",
    "wrk: " .. (wrk and thousands(wrk) .. " req/s" or "n/a"),
    fmt(vc_wrk, "%.2f"), "≥ 0.5", met(vc_wrk and vc_wrk >= 0.5))
  local ir_ratio = ir_vc and ir_ls and ir_vc / ir_ls
  row("2" .. l.suffix, string.format("client instructions per GetJob under %s (callgrind: (I(N=%s) − I(N=0)) / %s)",
      l.name, r.cg_n or "?", r.cg_n or "?"),
    ir_vc and thousands(ir_vc) or "n/a",
    "socket.http + cjson loop (" .. l.name .. "): " .. (ir_ls and thousands(ir_ls) or "n/a"),
    fmt(ir_ratio, "%.2f"), "≤ 0.5", met(ir_ratio and ir_ratio <= 0.5))
end
for _, l in ipairs(LUAS) do rows_1_2(l) end

-- 3: jobs through the sandbox
local jobs = num("r3_tasks_jobs") or num("jobs")
local tasks_s = num("r3_tasks_seconds")
local per_job = num("r3_tasks_requests_per_job")
local in_flight = num("in_flight") or 64
local latency = (num("latency_ms") or 20) / 1000
local bound = jobs and per_job and math.ceil(jobs / in_flight) * per_job * latency
local seq_n, seq_s = num("r3_seq_jobs"), num("r3_seq_seconds")
local seq_total = seq_n and seq_s and jobs and seq_s * jobs / seq_n
local failed = (num("r3_tasks_failures") or 0) + (num("r3_seq_failures") or 0)
local r3_ratio = tasks_s and bound and tasks_s / bound
row("3", string.format("%s synthesis jobs create → COMPLETED, sandbox --latency %d --audio tone "
    .. "--queue-seconds 0 --work-seconds 0; tasks: max_in_flight %d, job:wait{interval = %s} "
    .. "(median of %s runs)%s",
    jobs and thousands(jobs) or "?", latency * 1000, in_flight, r.r3_tasks_interval or "?", r.rounds or "?",
    failed > 0 and string.format(" (**%d jobs failed**)", failed) or ""),
  tasks_s and string.format("tasks: %.2f s", tasks_s) or "n/a",
  string.format("blocking, one after another: %s (%s run, ×%s); latency bound: ⌈%s/%d⌉ × %s req/job × %d ms = %s",
    seq_total and string.format("%.1f s", seq_total) or "n/a",
    seq_n and thousands(seq_n) or "?", seq_n and jobs and fmt(jobs / seq_n, "%g") or "?",
    jobs and thousands(jobs) or "?", in_flight, fmt(per_job, "%.2f"), latency * 1000,
    bound and string.format("%.2f s", bound) or "n/a"),
  string.format("%s × bound; %s × faster than blocking", fmt(r3_ratio, "%.2f"),
    tasks_s and seq_total and fmt(seq_total / tasks_s, "%.0f") or "n/a"),
  "≤ 1.3 × bound", met(r3_ratio and failed == 0 and r3_ratio <= 1.3))

-- 4: step() and memory with many requests in flight
local worst_cpu, worst_wall = num("r4_worst_cpu_ms"), num("r4_worst_ms")
local threads = num("r4_max_threads")
-- BENCH_COLLECTOR=stop shows the collector's share; such a run meets nothing
local stopped = r.r4_collector == "stopped"
local function met4(ok) return stopped and "n/a (collector stopped)" or met(ok) end
row("4a", string.format("worst client:step(0.0005) in CPU time of the thread stepping (os.clock; the "
    .. "process had %s thread(s)), with %s get_job tasks in flight (max_in_flight %s; the median of %s runs)%s",
    threads and tostring(threads) or "?",
    num("r4_tasks") and thousands(r.r4_tasks) or "?", num("r4_tasks") and thousands(r.r4_tasks) or "?",
    r.rounds or "?", stopped and "; Lua's collector stopped (BENCH_COLLECTOR=stop)" or ""),
  worst_cpu and string.format("%.2f ms CPU (step %d of the run; %.2f ms wall)", worst_cpu,
    r.r4_worst_cpu_step, r.r4_worst_cpu_wall_ms) or "n/a",
  worst_wall and string.format(
    "CPU p99 %.3f ms, p99.9 %.3f ms over %s steps; wall: worst %.2f ms (step %d), after ramp-up (step %d on) "
    .. "%.2f ms wall / %.2f ms CPU, p99 %.3f ms, p99.9 %.2f ms",
    r.r4_cpu_p99_ms, r.r4_cpu_p999_ms, thousands(r.r4_steps), worst_wall, r.r4_worst_step,
    (r.r4_ramp_steps or 0) + 1, r.r4_steady_worst_ms, r.r4_steady_worst_cpu_ms, r.r4_p99_ms,
    r.r4_p999_ms) or "n/a",
  "—", "< 1 ms CPU", met4(worst_cpu and (threads or 1) == 1 and worst_cpu < 1))
local kib = num("r4_kib_per_job")
row("4b", "memory per in-flight job: RSS growth (/proc/self/statm) / requests in flight",
  kib and string.format("%.1f KiB", kib) or "n/a",
  num("r4_lua_kib_per_job") and string.format("of which Lua heap %.1f KiB (peak %s in flight)",
    r.r4_lua_kib_per_job, thousands(r.r4_peak_in_flight)) or "n/a",
  "—", "≤ 6 KiB", met4(kib and kib <= 6))

-- 4c: the embedding example, under each Lua
for _, l in ipairs(LUAS) do
  local overrun, budget = num("r4c" .. l.tag .. "_overrun_ms"), num("r4c" .. l.tag .. "_budget_ms")
  local completed, failed = num("r4c" .. l.tag .. "_completed"), num("r4c" .. l.tag .. "_failed")
  if overrun or l.tag == "" then
    row("4c" .. l.suffix, string.format("the embedding example under %s (a C host at 60 fps, step(budget) "
        .. "a frame, 200 jobs): worst frame's thread CPU time past the budget", l.name),
      overrun and string.format("%.3f ms past a %g ms budget", overrun, budget or 0) or "n/a",
      completed and string.format("%d jobs completed, %d failed", completed, failed or 0) or "n/a",
      "—", "≤ 1 ms", met(overrun and failed == 0 and overrun <= 1))
  end
end

local function cell(s) return (tostring(s):gsub("|", "\\|")) end
print()
print("| row | what | voiceclone | peer(s) | ratio | target | met? |")
print("|---|---|---|---|---|---|---|")
for _, cols in ipairs(rows) do
  local out = {}
  for i, c in ipairs(cols) do out[i] = cell(c) end
  print("| " .. table.concat(out, " | ") .. " |")
end

-- The details behind the rows, for whoever makes them better.
print()
print("Details")
for _, l in ipairs(LUAS) do
  local p = "r1" .. l.tag
  if num(p .. "_vc_requests") then
    print(string.format("  row 1 (%s): voiceclone %s requests in %.2f s; socket.http %s in %.2f s; wrk %s in its run.",
      l.name, thousands(r[p .. "_vc_requests"]), r[p .. "_vc_seconds"], thousands(num(p .. "_ls_requests") or 0),
      num(p .. "_ls_seconds") or 0, r.r1_wrk_requests and thousands(r.r1_wrk_requests) or "?"))
  end
end
for _, file in ipairs { profile_file, profile_file_jit } do
  local f = io.open(file, "r")
  if f then
    print("  row 2, " .. f:read("*a"):gsub("\n$", ""):gsub("\n", "\n  "))
    f:close()
  end
end
if tasks_s then
  print(string.format("  row 3: with %d requests in flight, each took %.1f ms on average (tasks' wall time × %d / "
    .. "requests); the sandbox delays every answer by %d ms.", in_flight,
    1000 * tasks_s * in_flight / r.r3_tasks_requests, in_flight, latency * 1000))
  print(string.format("         tasks made %s API requests (%.2f a job: create, then GetJob polls), "
    .. "client CPU %.2f s (%.0f µs a request), sandbox CPU %.2f s (%.0f µs a request, busy %.0f%% of "
    .. "the %.2f s); in a task, create took %.0f ms and wait %.0f ms on average (both include waiting "
    .. "for one of the %d places). Blocking: %.1f ms a job. %s",
    thousands(r.r3_tasks_requests), per_job, r.r3_tasks_client_cpu,
    1e6 * r.r3_tasks_client_cpu / r.r3_tasks_requests, r.r3_tasks_sandbox_cpu,
    1e6 * r.r3_tasks_sandbox_cpu / r.r3_tasks_requests, 100 * r.r3_tasks_sandbox_cpu / tasks_s, tasks_s,
    r.r3_tasks_create_ms, r.r3_tasks_wait_ms, in_flight, seq_s and seq_s * 1000 / seq_n or 0,
    r.r3_tasks_first_error and r.r3_tasks_first_error ~= "" and ("first error: " .. r.r3_tasks_first_error) or ""))
end
if worst_wall then
  print(string.format("  row 4: ramp-up: step 1 %.1f ms (the %s tasks start their requests; RSS +%.1f KiB/job), "
    .. "step 2 %.1f ms (%.1f ms in core.drive: connects; RSS +%.1f KiB/job), step 3 %.1f ms (%.1f ms in "
    .. "core.drive: requests written). Worst step in CPU: step %d, %.2f ms CPU, %.2f ms wall, %.2f ms of it "
    .. "in core.drive. Worst step after ramp-up: %.2f ms, %.2f ms of it in core.drive, %d answers. "
    .. "Median step %.3f ms; %s steps in %.2f s; at most %s thread(s).",
    r.r4_step1_ms, thousands(r.r4_tasks), r.r4_step1_kib_per_job, r.r4_step2_ms, r.r4_step2_drive_ms,
    r.r4_step2_kib_per_job, r.r4_step3_ms, r.r4_step3_drive_ms, r.r4_worst_cpu_step, r.r4_worst_cpu_ms,
    r.r4_worst_cpu_wall_ms, r.r4_worst_cpu_drive_ms, r.r4_steady_worst_ms,
    r.r4_steady_worst_drive_ms, r.r4_steady_worst_finished, r.r4_p50_ms, thousands(r.r4_steps),
    r.r4_seconds, tostring(r.r4_max_threads)))
end
print(string.format("  bench: %.0f s", (num("bench_ms") or 0) / 1000))
