-- One phase of make soak, in a process of its own (a crash is counted, not
-- fatal to the soak): voices COUNT jobs through the fault-injecting sandbox
-- at ENDPOINT, with customIds PREFIX-1 .. PREFIX-COUNT, in one of three ways:
--   direct   blocking calls, one job after another (create, then wait)
--   tasks    IN_FLIGHT tasks of one client taking jobs from a shared queue
--   batch    voiceclone.batch.run over COUNT lines, IN_FLIGHT at once
-- Prints "phase MODE: jobs J, failed F, retries R" (F: lines that ended in
-- an error after every retry; they are checked, not lost, by the soak).
--   lua scripts/soak.d/phase.lua MODE ENDPOINT PREFIX COUNT IN_FLIGHT WORKDIR
local mode, endpoint, prefix, count, in_flight, workdir = ...
count, in_flight = tonumber(count), tonumber(in_flight)
local voiceclone = require "voiceclone"

local retries, failed, done = 0, 0, 0
local client = assert(voiceclone.new {
  endpoint = endpoint, secret_id = os.getenv("SOAK_SECRET_ID"), secret_key = os.getenv("SOAK_SECRET_KEY"),
  timeout = 2, max_in_flight = in_flight,
  retry = { attempts = 10, base_delay = 0.05, max_delay = 1 },
  on_request = function(info) if info.attempt > 1 then retries = retries + 1 end end,
})

local function voice(i)
  local job, err = client:synthesize { text = ("Soak line %d."):format(i), content_id = "soak",
                                       custom_id = ("%s-%d"):format(prefix, i) }
  if job then job, err = job:wait { interval = 0.05, timeout = 120 } end
  if job then done = done + 1 else
    failed = failed + 1
    io.stderr:write(("phase %s: line %d: %s\n"):format(mode, i, tostring(err)))
  end
end

if mode == "direct" then
  for i = 1, count do voice(i) end
elseif mode == "tasks" then
  local next_line = 0
  for _ = 1, in_flight do
    client:spawn(function()
      while next_line < count do
        next_line = next_line + 1
        voice(next_line)
      end
    end)
  end
  local ok, failures = client:run()
  if ok == false then error("a task raised: " .. tostring(failures[1].error)) end
  assert(ok, failures)
elseif mode == "batch" then
  local batch = require "voiceclone.batch"
  local lines = {}
  for i = 1, count do lines[i] = { id = tostring(i), text = ("Soak batch line %d."):format(i) } end
  local summary = assert(batch.run { client = client, lines = lines, content_id = "soak",
    concurrency = in_flight, journal = workdir .. "/batch.journal", batch_id = prefix,
    poll_interval = 0.05 })
  done, failed = summary.completed, summary.failed
else
  error("unknown mode " .. tostring(mode))
end
client:close()
print(("phase %s: jobs %d, failed %d, retries %d"):format(mode, done, failed, retries))
