--- Callbacks: receiving the jobs the service POSTs when they finish.
--
-- A callback carries no signature, so its content is never trusted: the
-- job's id is taken from it, the job is fetched again with GetJob, and only
-- that confirmed job, once final, reaches on_job.
--
--   callbacks.handler(client, on_job [, options])   for a host's own HTTP server:
--       a function(body) -> status, reason [, job]
--   callbacks.listen{ client =, on_job =, ... }     a small HTTP server of its own
--
-- What the handler answers:
--   200  the job is final on the service: on_job(job) was called (or had
--        been already, for this id: a repeated delivery is not acted on twice)
--   400  the body is not a job (not JSON, no id or state)
--   409  the service says the job is not final: not acted on (a forged or
--        early callback); a sender that retries will be heard again
--   413  the body is larger than max_body (1 MiB)
--   500  on_job raised: not marked handled, so a retry acts again
--   502  GetJob failed for good (an unknown id, say): not acted on
--   503  GetJob failed for now (network, timeout, 5xx), or the same job is
--        being confirmed by another request: retry later
local core = require "voiceclone.core"
require "voiceclone.job"      -- refresh, is_final
require "voiceclone.tasks"    -- spawn, step, sockets, timeout
-- compat.pcall/xpcall: GetJob and on_job may yield inside a task, and Lua
-- 5.1 cannot yield through its own pcall
local compat = require "voiceclone.compat"

local callbacks = {}

callbacks.MAX_BODY = 1024 * 1024
local REMEMBERED = 4096        -- job ids remembered as handled, the latest ones

callbacks.REASONS = {
  [100] = "Continue", [200] = "OK", [400] = "Bad Request", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
}

local function is_client(value)
  local meta = type(value) == "userdata" and getmetatable(value)
  return type(meta) == "table" and meta.__name == "voiceclone.Client"
end

local function check_type(fname, name, value, expected)
  if value ~= nil and type(value) ~= expected then
    error(("bad option '%s' to '%s' (%s expected, got %s)"):format(name, fname, expected,
      type(value)), 3)
  end
end

local function default_on_error(err, job)
  io.stderr:write(("voiceclone callbacks: %s%s\n")
    :format(job and ("on_job failed for job " .. tostring(job.id) .. ": ") or "", tostring(err)))
end

-- The confirmation shared by handler and listen: check(body) -> status,
-- reason [, job]; a job comes back only with 200, when it is to be acted
-- on, and is then marked handled (forget(id) undoes that).
local function confirmer(client, max_body)
  local handled, order = {}, {}   -- id -> when it was acted on; when -> id
  local count, first = 0, 1         -- order[first..count]: the ids remembered
  local confirming = {}             -- ids being confirmed right now

  local function remember(id)
    count = count + 1
    handled[id], order[count] = count, id
    if count - first + 1 > REMEMBERED then
      local old = order[first]
      if handled[old] == first then handled[old] = nil end   -- not remembered again since
      order[first], first = nil, first + 1
    end
  end

  local function check(body)
    if #body > max_body then
      return 413, ("the body is larger than %d bytes"):format(max_body)
    end
    local claimed, err = core.job_from_json(body, client)
    if not claimed then return 400, "not a job: " .. err.message end
    local id = claimed.id
    if handled[id] then return 200, "already handled" end
    if confirming[id] then return 503, "this job is being confirmed already" end
    confirming[id] = true
    -- GetJob: the body's own state and outputs are replaced by the service's.
    local ok, job, ferr = compat.pcall(claimed.refresh, claimed)
    confirming[id] = nil
    if not ok then error(job, 0) end
    if not job then
      return ferr.retryable and 503 or 502, "GetJob failed: " .. tostring(ferr)
    end
    if job.id ~= id then return 502, "GetJob answered for another job" end
    if not job:is_final() then
      return 409, ("the job is %s on the service"):format(job:status())
    end
    if handled[id] then return 200, "already handled" end
    remember(id)
    return 200, "ok", job
  end

  local function forget(id)
    handled[id] = nil   -- its entry in `order` ages out by itself
  end

  return check, forget
end

--- A callback handler for a host's own HTTP server: returns a
-- function(body) -> status, reason [, job] to answer the POST with (job:
-- the confirmed job when on_job was called). on_job(job) runs after the
-- confirmation, before the answer; if it raises, the answer is 500 and
-- options.on_error(err, job) is told (default: a line on stderr).
-- Options: max_body (bytes, default 1 MiB), on_error. Inside a task of
-- the client the GetJob yields, like every API call.
function callbacks.handler(client, on_job, options)
  if not is_client(client) then
    error(("bad argument #1 to 'handler' (voiceclone.Client expected, got %s)"):format(type(client)), 2)
  end
  if type(on_job) ~= "function" then
    error(("bad argument #2 to 'handler' (function expected, got %s)"):format(type(on_job)), 2)
  end
  if options ~= nil and type(options) ~= "table" then
    error(("bad argument #3 to 'handler' (table expected, got %s)"):format(type(options)), 2)
  end
  options = options or {}
  check_type("handler", "max_body", options.max_body, "number")
  check_type("handler", "on_error", options.on_error, "function")
  local on_error = options.on_error or default_on_error
  local check, forget = confirmer(client, options.max_body or callbacks.MAX_BODY)
  return function(body)
    if type(body) ~= "string" then
      error(("bad argument #1 to callback handler (string expected, got %s)"):format(type(body)), 2)
    end
    local status, reason, job = check(body)
    if not job then return status, reason end
    local ok, err = compat.xpcall(on_job, debug.traceback, job)
    if not ok then
      forget(job.id)
      on_error(err, job)
      return 500, "on_job failed"
    end
    return 200, reason, job
  end
end

----------------------------------------------------------------------------
-- listen: callbacks over voiceclone.httpd (luv)

local MAX_HEAD = 16 * 1024      -- request line and headers
local MAX_WAIT = 1              -- seconds a loop iteration waits when nothing is due

-- What the listener itself answers (its own wording, for each status).
local OWN_ANSWERS = {
  [400] = "not an HTTP/1.x request", [408] = "the request took too long",
  [411] = "a Content-Length is required", [431] = "the request head is too large",
  [505] = "not an HTTP/1.x request",
}

local function text(status, message)
  return { status = status, body = message .. "\n",
           headers = { ["Content-Type"] = "text/plain; charset=utf-8" } }
end

-- The client's transfers in libuv's loop: a poll per socket the client
-- names, and a timer at client:timeout(). Whenever the client has run,
-- every poll is made again: curl may have closed a socket and opened
-- another with the same number, which an old poll would not see.
local function client_driver(client, guard)
  local uv = require "luv"
  local polls, timer = {}, uv.new_timer()
  local driver = {}
  local sync

  local function wake()
    client:step()
    sync()
  end
  local on_ready = guard(wake)

  function sync()
    for fd, poll in pairs(polls) do
      poll:close()
      polls[fd] = nil
    end
    for fd, events in pairs(client:sockets()) do   -- "r", "w" or "rw": luv's own words
      local poll = uv.new_socket_poll(fd)
      poll:start(events, on_ready)
      polls[fd] = poll
    end
    local wait = client:timeout()
    if wait then timer:start(math.max(0, math.ceil(wait * 1000)), 0, on_ready) else timer:stop() end
  end
  driver.sync = sync

  function driver.close()
    for fd, poll in pairs(polls) do
      poll:close()
      polls[fd] = nil
    end
    timer:close()
  end
  return driver
end

local LISTEN_OPTIONS = {
  client = true, on_job = true, host = true, port = true, max_body = true, on_listen = true,
  once = true, max_jobs = true, duration = true, conn_timeout = true, on_error = true,
}

--- Serves callbacks until stopped: every POST is confirmed (GetJob) and
-- answered, and a final job is then given to on_job(job), once per job.
-- Options:
--   client, on_job        required; on_job returning false stops the server
--   host, port            where to listen (127.0.0.1, 0 = a free port)
--   on_listen(url, server) called once listening; server:stop() ends the loop
--   once, max_jobs        stop after the first / after max_jobs jobs
--   duration              stop after this many seconds
--   max_body              bytes (1 MiB); conn_timeout: seconds a connection
--                         gets to send its request (10)
--   on_error(err, job)    told when on_job raises (default: a line on stderr)
-- The answer goes out once the job is confirmed, before on_job runs (a slow
-- on_job delays other requests, never the answer to its own). Confirmations
-- run as tasks of the client, driven by this loop (libuv's, through luv):
-- call listen outside the client's tasks; on_job runs inside one (API calls
-- in it yield as usual).
-- Returns the number of jobs acted on and why it stopped ("once",
-- "max_jobs", "on_job", "stopped", "duration"), or nil and a "network"
-- error when it cannot listen.
function callbacks.listen(options)
  if type(options) ~= "table" then
    error(("bad argument #1 to 'listen' (table expected, got %s)"):format(type(options)), 2)
  end
  local o = options
  if not is_client(o.client) then
    error(("bad option 'client' to 'listen' (voiceclone.Client expected, got %s)"):format(type(o.client)), 2)
  end
  if type(o.on_job) ~= "function" then
    error(("bad option 'on_job' to 'listen' (function expected, got %s)"):format(type(o.on_job)), 2)
  end
  check_type("listen", "host", o.host, "string")
  check_type("listen", "port", o.port, "number")
  check_type("listen", "max_body", o.max_body, "number")
  check_type("listen", "on_listen", o.on_listen, "function")
  check_type("listen", "once", o.once, "boolean")
  check_type("listen", "max_jobs", o.max_jobs, "number")
  check_type("listen", "duration", o.duration, "number")
  check_type("listen", "conn_timeout", o.conn_timeout, "number")
  check_type("listen", "on_error", o.on_error, "function")
  for key in pairs(o) do
    if not LISTEN_OPTIONS[key] then
      return nil, core.error("invalid", tostring(key) .. ": is not an option of listen",
                             { field = tostring(key) })
    end
  end

  local httpd = require "voiceclone.httpd"
  local client, on_job = o.client, o.on_job
  local host, max_body = o.host or "127.0.0.1", o.max_body or callbacks.MAX_BODY
  local conn_timeout = o.conn_timeout or 10
  local max_jobs = o.once and 1 or o.max_jobs
  local on_error = o.on_error or default_on_error
  local check, forget = confirmer(client, max_body)

  local acted, why, stopping = 0, nil, false
  local confirmations = 0   -- tasks still confirming or acting
  local driver

  local function act(job)
    if stopping then return false end
    local ok, result = compat.xpcall(on_job, debug.traceback, job)
    acted = acted + 1
    if not ok then
      on_error(result, job)
    elseif result == false then
      why = why or "on_job"; stopping = true
    end
    if max_jobs and acted >= max_jobs then why = why or (o.once and "once" or "max_jobs"); stopping = true end
  end

  local function confirm(reply, body)
    local answered = false
    local ok, err = compat.xpcall(function()
      local status, reason, job = check(body)
      if job and stopping then
        forget(job.id)
        status, reason, job = 503, "the receiver is stopping", nil
      end
      answered = true
      reply(text(status, reason))
      if job then act(job) end
    end, debug.traceback)
    confirmations = confirmations - 1
    if not ok then
      if not answered then reply(text(500, "the receiver failed")) end
      on_error(err, nil)
    end
  end

  local server = httpd.new {
    host = host, port = o.port or 0,
    keep_alive = false, require_length = true, max_header = MAX_HEAD, max_body = max_body,
    request_timeout = conn_timeout, idle_timeout = conn_timeout, write_timeout = conn_timeout,
    error_response = function(status, _, message)
      if status == 413 then message = ("the body is larger than %d bytes"):format(max_body) end
      return text(status, OWN_ANSWERS[status] or message)
    end,
    -- A whole request: to a confirmation task, answered when it is done.
    handler = function(req, reply)
      if req.method ~= "POST" then return text(405, "callbacks are POSTed") end
      confirmations = confirmations + 1
      client:spawn(confirm, reply, req.body)
      driver.sync()   -- the task may have started its GetJob
      return nil
    end,
  }
  local ok, lerr = server:listen()
  if not ok then
    return nil, core.error("network", ("cannot listen on %s:%s: %s"):format(host, o.port or 0, lerr))
  end
  driver = client_driver(client, function(fn) return server:guard(fn) end)
  local url = ("http://%s:%d/"):format(host:find(":", 1, true) and "[" .. host .. "]" or host,
    server.port)
  local listener = { url = url, port = server.port }
  function listener.stop() why = why or "stopped"; stopping = true end

  local finished, ferr = compat.pcall(function()
    if o.on_listen then o.on_listen(url, listener) end
    driver.sync()
    local ends = o.duration and httpd.now() + o.duration
    while true do
      local now = httpd.now()
      if ends and now >= ends and not stopping then why, stopping = "duration", true end
      if stopping then server:stop_listening() end
      if stopping and confirmations == 0 then break end
      local wait = MAX_WAIT
      if ends and not stopping then wait = math.min(wait, math.max(0, ends - now)) end
      server:step(wait)
    end
  end)
  -- Answers already on their way go out if they can at once; then close
  -- (the server last: it lets libuv finish closing every handle).
  driver.close()
  server:close()
  if not finished then error(ferr, 0) end
  return acted, why
end

return callbacks
