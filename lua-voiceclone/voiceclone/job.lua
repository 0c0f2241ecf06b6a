--- voiceclone.Job: every public method of a job, defined here. Its fields
-- are the service's own data, read as the service names them (job.id,
-- job.state, job.outputs ...: C, record.c); fields never hide a method.
local core = require "voiceclone.core"
local retry = require "voiceclone.retry"
local audio = require "voiceclone.audio"

local Job = core.Job             -- the method table of voiceclone.Job
local COMPLETED = core.state.COMPLETED
local MAX_INTERVAL = 10      -- seconds between polls, at the most
local GROWTH = 1.5

--- "SUBMITTED", "PROCESSING", "COMPLETED", "ERROR", "CANCELED" (or "UNKNOWN").
Job.status = core.job_status
--- True once COMPLETED, ERROR or CANCELED.
Job.is_final = core.job_is_final
--- What the first output produced, once COMPLETED: { contentId, destination,
-- voiceName, path } for a generate job, { modelName } for a training job.
Job.result = core.job_result
--- The client the job came from (nil for a callback's job read without one).
Job.client = core.job_client
--- A copy of the job's data as the service sent it, to keep or change.
Job.totable = core.totable

-- The client, or a clear error: a job read from a callback body without one
-- cannot ask the service anything.
local function client_of(job, method)
  local client = job:client()
  if not client then
    error(("job:%s needs a client: pass yours to voiceclone.job_from_callback"):format(method), 3)
  end
  return client
end

--- GetJob: the job's fields updated in place. Returns the job, or nil and an error.
function Job:refresh()
  return retry.call(client_of(self, "refresh"), core.refresh, self)
end

-- Fields the contract defines; anything else on a failed job is its reason.
local JOB_FIELDS = { id = true, state = true, customId = true, callback = true, inputs = true,
                     outputs = true, timing = true, timeout = true }
local OUTPUT_FIELDS = { contentId = true, destination = true, inputSelectors = true,
                        smartContentDescriptor = true, smartContentResult = true }

local function describe(value, depth)
  if type(value) ~= "table" then return tostring(value) end
  if depth > 3 then return "{...}" end
  local parts = {}
  for k, v in pairs(value) do parts[#parts + 1] = tostring(k) .. "=" .. describe(v, depth + 1) end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function unknown_fields(data, known, prefix, into)
  for key, value in pairs(data) do
    if not known[key] then into[#into + 1] = prefix .. tostring(key) .. "=" .. describe(value, 1) end
  end
end

--- Why the job failed, in the job's own words: every field it carries that the
-- contract does not define (the service does not document their names).
function Job:reason()
  local data, parts = self:totable(), {}
  unknown_fields(data, JOB_FIELDS, "", parts)
  for i, output in ipairs(type(data.outputs) == "table" and data.outputs or {}) do
    if type(output) == "table" then
      unknown_fields(output, OUTPUT_FIELDS, ("outputs[%d]."):format(i), parts)
    end
  end
  table.sort(parts)
  return #parts > 0 and table.concat(parts, ", ") or nil
end

local function failed(job)
  local reason = job:reason()
  return core.error("job", ("job %s ended %s%s"):format(job.id, job:status(),
    reason and (": " .. reason) or ""), { job = job })
end

local function positive(options, key, default)
  local value = options[key]
  if value == nil then return default end
  if type(value) ~= "number" then
    error(("bad option '%s' to 'wait' (number expected, got %s)"):format(key, type(value)), 3)
  end
  return value
end

--- Polls until the job is final, with an interval growing from
-- options.interval (1 s) to 10 s. Returns the job once COMPLETED; nil and a
-- "job" error (err.job) for ERROR or CANCELED; nil and a "timeout" error
-- after options.timeout (600 s). on_update(job) is called on each change of
-- state. Transient network failures are polled through.
function Job:wait(options)
  options = options or {}
  if type(options) ~= "table" then
    error(("bad argument #1 to 'wait' (table expected, got %s)"):format(type(options)), 2)
  end
  local timeout = positive(options, "timeout", 600)
  local interval = positive(options, "interval", 1)
  local on_update = options.on_update
  if timeout <= 0 or interval <= 0 then
    local field = timeout <= 0 and "timeout" or "interval"
    return nil, core.error("invalid", field .. ": must be positive", { field = field })
  end
  local client = client_of(self, "wait")
  local deadline = core.now() + timeout
  local state, last_error = self.state, nil
  while true do
    if self.state ~= state then
      state = self.state
      if on_update then on_update(self) end
    end
    if state == COMPLETED then return self end
    if self:is_final() then return nil, failed(self) end
    local left = deadline - core.now()
    if left <= 0 then
      return nil, core.error("timeout", ("job %s still %s after %g s%s"):format(self.id,
        self:status(), timeout, last_error and ("; last error: " .. tostring(last_error)) or ""),
        { job = self, retryable = true })
    end
    client:sleep(math.min(interval, left))
    interval = math.min(interval * GROWTH, MAX_INTERVAL)
    local ok, err = self:refresh()
    if not ok then
      if not err.retryable then return nil, err end
      last_error = err
    end
  end
end

--- Downloads the first output's file (see job:result()) into dest, through
-- the client's repositories option; options.format converts it (see
-- client:download). Returns dest, or nil and an error.
function Job:download(dest, options)
  if type(dest) ~= "string" then
    error(("bad argument #1 to 'download' (string expected, got %s)"):format(type(dest)), 2)
  end
  local _, ferr = audio.option(options, "download")   -- an unknown format: before anything else
  if ferr then return nil, ferr end
  local result = self:result()
  if not (result and result.contentId and result.path) then
    return nil, core.error("invalid", ("job %s has no file to download (it is %s)"):format(
      self.id, self:status()), { field = "job", job = self })
  end
  local client = client_of(self, "download")
  local url, err = client:repository_url(result.contentId, result.path)
  if not url then return nil, err end
  return client:download(url, dest, options)
end

return Job
