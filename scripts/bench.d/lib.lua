-- Shared by the bench drivers (scripts/bench): the in-tree module paths, the
-- fixed GetJob exchange, clocks and memory.
local lib = {}

lib.DIR = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
lib.ROOT = lib.DIR .. "/../.."
package.path = lib.DIR .. "/?.lua;" .. lib.ROOT .. "/lua-voiceclone/?.lua;"
  .. lib.ROOT .. "/lua-voiceclone/?/init.lua;" .. package.path
-- scripts/bench runs a copy of the builds ($BENCH_BUILDS/<lua>/, one per Lua),
-- which a rebuild cannot change mid-run; else $VOICECLONE_CPATH, else the
-- in-tree build of the Lua running this
lib.BUILD = type(jit) == "table" and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
local builds = os.getenv("BENCH_BUILDS")
package.cpath = (builds and (builds .. "/" .. lib.BUILD .. "/?.so") or os.getenv("VOICECLONE_CPATH")
  or (lib.ROOT .. "/build/" .. lib.BUILD .. "/?.so")) .. ";" .. package.cpath

local compat = require "voiceclone.compat"

lib.SECRET_ID = os.getenv("BENCH_SECRET_ID") or "bench-id"
lib.SECRET_KEY = os.getenv("BENCH_SECRET_KEY") or "bench-key"
lib.JOB_ID = "3f2b8c1e-5d4a-4e6f-9a7b-0c1d2e3f4a5b"

-- What the fixed-answer nginx returns for every POST /release/job: a valid
-- getJobResponse for a COMPLETED generate job.
lib.GET_JOB_RESPONSE = '{"requestId":"5e0c7d2a-1b3c-4d5e-8f90-a1b2c3d4e5f6","getJobResponse":'
  .. '{"job":{"id":"' .. lib.JOB_ID .. '","state":3,"customId":"bench",'
  .. '"inputs":[{"sourceData":"Hello from the benchmark."}],'
  .. '"outputs":[{"contentId":"bench","destination":"/out","inputSelectors":[0],'
  .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}},'
  .. '"smartContentResult":{"voiceCloning":{"voiceName":"' .. lib.JOB_ID .. '.wav"}}}],'
  .. '"timing":{"createdAt":"1700000000000","startedAt":"1700000000200",'
  .. '"completedAt":"1700000000700"}}}}'

-- The body voiceclone sends for client:get_job(JOB_ID), byte for byte.
lib.GET_JOB_BODY = '{"action":"GetJob","secretId":"' .. lib.SECRET_ID .. '","secretKey":"'
  .. lib.SECRET_KEY .. '","getJobRequest":{"id":"' .. lib.JOB_ID .. '"}}'

local function getconf(name, default)
  local p = io.popen("getconf " .. name .. " 2>/dev/null")
  local value = p and tonumber(p:read("*l"))   -- "*l", "*a": 5.1 and 5.2 need the star
  if p then p:close() end
  return value or default
end
local PAGE_KIB = getconf("PAGESIZE", 4096) / 1024
local CLOCK_TICKS = getconf("CLK_TCK", 100)

-- Resident set size of this process, KiB (/proc/self/statm).
function lib.rss_kib()
  local f = io.open("/proc/self/statm", "r")
  local text = f:read("*l")
  f:close()
  return tonumber(text:match("^%d+%s+(%d+)")) * PAGE_KIB
end

-- How many threads this process has now (/proc/self/status).
function lib.threads()
  local f = io.open("/proc/self/status", "r")
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("\nThreads:%s*(%d+)"))
end

-- CPU seconds (user + system) a process has used, from /proc/PID/stat.
function lib.cpu_seconds(pid)
  local f = io.open("/proc/" .. tostring(pid) .. "/stat", "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  local rest = text:match("%) (.*)$")
  local fields = {}
  for v in rest:gmatch("%S+") do fields[#fields + 1] = v end
  -- after "pid (comm) ": state is field 1; utime, stime are fields 12, 13
  return (tonumber(fields[12]) + tonumber(fields[13])) / CLOCK_TICKS
end

-- key=value lines on stdout, read back by scripts/bench.
function lib.report(values)
  local keys = {}
  for k in pairs(values) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = values[k]
    if compat.math_type(v) == "float" then v = string.format("%.6g", v) end
    io.stdout:write(k, "=", tostring(v), "\n")
  end
  io.stdout:flush()
end

-- Run as a script, for scripts/bench:
--   lua5.4 lib.lua response|body|ports N|median KEY FILE...
if arg and arg[0] and arg[0]:match("lib%.lua$") and arg[1] then
  local what = arg[1]
  if what == "response" then
    io.write(lib.GET_JOB_RESPONSE)
  elseif what == "body" then
    io.write(lib.GET_JOB_BODY)
  elseif what == "ports" then   -- free loopback ports
    local socket = require "socket"
    local held, ports = {}, {}
    for i = 1, tonumber(arg[2]) do
      held[i] = assert(socket.bind("127.0.0.1", 0))
      ports[i] = select(2, held[i]:getsockname())
    end
    for _, s in ipairs(held) do s:close() end
    print(table.concat(ports, " "))
  elseif what == "median" then   -- median KEY FILE...: the file whose KEY is the median
    local key, runs = arg[2], {}
    for i = 3, #arg do
      for line in io.lines(arg[i]) do
        local v = tonumber(line:match("^" .. key .. "=(.*)$"))
        if v then runs[#runs + 1] = { file = arg[i], value = v } end
      end
    end
    table.sort(runs, function(a, b) return a.value < b.value end)
    if #runs > 0 then print(runs[math.floor((#runs + 1) / 2)].file) end
  else
    error("unknown command " .. what)
  end
end

return lib
