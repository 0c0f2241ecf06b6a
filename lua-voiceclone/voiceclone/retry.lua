--- The retry policy, one for every request of a client, and each job
-- created exactly once.
--
--   voiceclone.new{ retry = { attempts = 4, base_delay = 0.5, max_delay = 20,
--                             max_retry_after = 120 } }     -- the defaults
--   voiceclone.new{ retry = false }                          -- each request once
--
-- Retried: connection failures, timeouts, and HTTP 408, 429, 500, 502, 503
-- and 504, after a pause drawn from exponential backoff with full jitter, or
-- the server's Retry-After (up to max_retry_after; beyond it the error comes
-- back at once). Not retried: any other HTTP error, "invalid", and an answer
-- that cannot be read ("decode", "api"). Every error says err.attempts.
-- Inside a task the pauses yield.
--
-- A CreateJob always carries a customId (the caller's, or one made here). It
-- goes on a connection of its own, so libcurl never sends it twice; when its
-- outcome is unknown (sent, then no answer, a timeout or a 5xx), ListJobs for
-- that customId tells whether the service has it: a job with the inputs and
-- outputs sent is adopted, and only when none exists is the request sent again.
local core = require "voiceclone.core"
local compat = require "voiceclone.compat"
local tasks = require "voiceclone.tasks"

local retry = {}

local unpack, pack = compat.unpack, compat.pack

local DEFAULTS = { attempts = 4, base_delay = 0.5, max_delay = 20, max_retry_after = 120 }
local RETRIED_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
                         [504] = true }
-- libcurl could not even reach the server: the request was never sent.
local NOT_SENT = { [5] = true, [6] = true, [7] = true }   -- resolve proxy, resolve host, connect

local function invalid(field, message)
  return nil, core.error("invalid", field .. ": " .. message, { field = field })
end

--- The policy from new's `retry` option (nil: the defaults; false: none),
-- or nil and an "invalid" error.
function retry.policy(option)
  if option == false then option = { attempts = 1 } end
  if option == nil or option == true then option = {} end
  if type(option) ~= "table" then return invalid("retry", "must be a table or false") end
  local policy = {}
  for key, value in pairs(option) do
    if DEFAULTS[key] == nil then return invalid("retry." .. tostring(key), "is not an option of retry") end
    if type(value) ~= "number" or value ~= value then
      return invalid("retry." .. key, "must be a number")
    end
    policy[key] = value
  end
  for key, value in pairs(DEFAULTS) do
    if policy[key] == nil then policy[key] = value end
  end
  if policy.attempts < 1 or policy.attempts ~= math.floor(policy.attempts) or policy.attempts > 100 then
    return invalid("retry.attempts", "must be a whole number from 1 to 100")
  end
  for _, key in ipairs { "base_delay", "max_delay", "max_retry_after" } do
    if policy[key] < 0 or policy[key] > 86400 then
      return invalid("retry." .. key, "must be from 0 to 86400 seconds")
    end
  end
  return policy
end

--- Whether a retry may succeed where this attempt failed.
function retry.retryable(err)
  if err.kind == "http" then return RETRIED_STATUS[err.status] == true end
  return (err.kind == "network" or err.kind == "timeout") and err.retryable == true
end

-- The pause before attempt+1, or nil when the server asks for longer than
-- the policy waits.
local function pause(policy, attempt, err)
  if err.retry_after then
    if err.retry_after > policy.max_retry_after then return nil end
    return err.retry_after
  end
  local cap = math.min(policy.max_delay, policy.base_delay * 2 ^ (attempt - 1))
  return math.random() * cap   -- full jitter: many clients do not retry in step
end

local function settings(client)
  local state = core.client_table(client)
  return state.retry or DEFAULTS, state.on_request
end

-- Tells on_request about one attempt: never the body, never a key.
local function report(on_request, request, attempt, ok, err)
  if not on_request then return end
  local info = request and request:info() or { action = "?" }
  on_request {
    action = info.action, attempt = attempt, status = info.status or (err and err.status),
    duration = info.seconds, request_id = info.request_id or (err and err.request_id),
    error_kind = not ok and err and err.kind or nil,
  }
end

-- One attempt: start(...) gives a Request (or nil, err), awaited. Returns
-- the results packed.
local function attempt_once(client, on_request, n, start, ...)
  local request, err = start(...)
  if not request then
    report(on_request, nil, n, false, err)
    return pack(nil, err)
  end
  local results = pack(tasks.await(client, request))
  report(on_request, request, n, results[1] ~= nil, results[2])
  return results
end

--- Sends the request that start(...) makes until it succeeds, fails for
-- good, or the policy's attempts are spent; returns its results.
function retry.call(client, start, ...)
  local policy, on_request = settings(client)
  local n = 0
  while true do
    n = n + 1
    local results = attempt_once(client, on_request, n, start, ...)
    if results[1] ~= nil then return unpack(results, 1, results.n) end
    local err = results[2]
    if type(err) ~= "table" then return nil, err end
    err.attempts = n
    local wait = n < policy.attempts and retry.retryable(err) and pause(policy, n, err)
    if not wait then return nil, err end
    tasks.sleep(client, wait)
  end
end

-- A customId no other client makes: 16 random bytes, in hex.
local function new_custom_id()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if not bytes or #bytes ~= 16 then   -- no /dev/urandom: time, clock and an address
    bytes = tostring(os.time()) .. tostring(os.clock()) .. tostring({}) .. tostring(math.random())
  end
  return "vc-" .. bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end):sub(1, 32)
end

-- True when got holds everything sent has (a job echoes its inputs and
-- outputs, and adds results of its own).
local function holds(got, sent)
  if type(sent) ~= "table" then return got == sent end
  if type(got) ~= "table" then return false end
  for key, value in pairs(sent) do
    if not holds(got[key], value) then return false end
  end
  return #got == #sent
end

-- The job the service already has for this request, false if none, or nil
-- and the error that kept us from knowing.
local function created_before(client, request)
  local jobs, err = retry.call(client, core.list_jobs, client, request.customId)
  if not jobs then return nil, err end
  for _, job in ipairs(jobs) do
    if holds(job.inputs, request.inputs) and holds(job.outputs, request.outputs) then return job end
  end
  return false
end

--- CreateJob, each job created once (see the top of this file).
function retry.create(client, request)
  if type(request) ~= "table" then
    error(("bad argument #1 to 'create_job' (table expected, got %s)"):format(type(request)), 3)
  end
  local sent = {}
  for key, value in pairs(request) do sent[key] = value end
  if sent.customId == nil then sent.customId = new_custom_id() end
  local policy, on_request = settings(client)
  local n = 0
  while true do
    n = n + 1
    local results = attempt_once(client, on_request, n, core.create_job, client, sent)
    local job, err = results[1], results[2]
    if job then return job end
    if type(err) ~= "table" then return nil, err end
    err.attempts = n
    if not retry.retryable(err) then return nil, err end
    if not NOT_SENT[err.curl_code] then
      local found, unknown = created_before(client, sent)
      if found then return found end
      if found == nil then   -- cannot tell whether it exists: sending again might bill twice
        err.custom_id = sent.customId
        err.message = ("%s; whether the service created the job is unknown (customId %s): %s")
          :format(err.message, sent.customId, tostring(unknown.message))
        return nil, err
      end
    end
    local wait = n < policy.attempts and pause(policy, n, err)
    if not wait then return nil, err end
    tasks.sleep(client, wait)
  end
end

return retry
