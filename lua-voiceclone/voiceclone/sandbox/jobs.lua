-- Jobs and models: the store behind CreateJob, GetJob, ListJobs and
-- ListModels, the job lifecycle (timers), persistence and callbacks.
--
-- Persistence: DATA/jobs.jsonl gets one full job snapshot per line on every
-- change (append-only; on load the last line per id wins, then the file is
-- rewritten compacted); DATA/models.json is rewritten (temp + rename) when a
-- model is added. Jobs found unfinished on load resume.
local util = require "voiceclone.sandbox.util"
local work = require "voiceclone.sandbox.work"
local compat = require "voiceclone.compat"

local jobs = {}

local Store = {}
Store.__index = Store

local SUBMITTED, PROCESSING, COMPLETED, ERROR = 1, 2, 3, 4
jobs.SUBMITTED, jobs.PROCESSING, jobs.COMPLETED, jobs.ERROR, jobs.CANCELED = 1, 2, 3, 4, 5
local STATE_NAMES = { "SUBMITTED", "PROCESSING", "COMPLETED", "ERROR", "CANCELED" }

local POLL_SECONDS = 0.02   -- how often a running job's status file is looked for
-- Runs whose commands may work at once; more jobs wait their turn
-- (PROCESSING). Hundreds of sox and espeak-ng at once would starve the event
-- loop of CPU. A run frees its slot as soon as its commands are done.
local MAX_RUNS = 8

local function is_final(job) return job.state >= COMPLETED end

local function seconds(ms_string) return (tonumber(ms_string) or 0) / 1000 end

-- opts: data (absolute dir), queue_seconds, work_seconds, at(t, fn), clock(),
-- spawn(script, args, log) (background commands), log(line), audio ("speech"
-- or "tone": see sandbox/work.lua)
function jobs.new(opts)
  return setmetatable({
    data = opts.data,
    audio = opts.audio or "speech",
    repos = opts.data .. "/repos",
    workdir = opts.data .. "/work",
    journal_path = opts.data .. "/jobs.jsonl",
    models_path = opts.data .. "/models.json",
    queue_seconds = opts.queue_seconds,
    work_seconds = opts.work_seconds,
    at = opts.at,
    spawn = opts.spawn,
    clock = opts.clock,
    log = opts.log or function() end,
    by_id = {},
    order = {},          -- ids in creation order
    by_custom_id = {},   -- customId -> ids in creation order
    models = {},         -- name -> { name, createdAt, pitch }
    runs = {},           -- id -> work run of a PROCESSING job
    nruns = 0,           -- runs holding a slot
    waiting = { first = 1, last = 0 },   -- ids of PROCESSING jobs waiting for a run
    min_done = {},       -- id -> earliest time a PROCESSING job may finish
    journal_lines = 0,
  }, Store)
end

----------------------------------------------------------------------------
-- Persistence

function Store:_write_journal()
  local lines = {}
  for i, id in ipairs(self.order) do lines[i] = util.encode(self.by_id[id]) .. "\n" end
  local ok, err = util.write_file_atomic(self.journal_path, table.concat(lines))
  if not ok then return nil, err end
  self.journal_lines = #lines
  return true
end

function Store:_save(job)
  -- Compact once the journal holds many stale snapshots.
  if self.journal_lines > 1000 and self.journal_lines > 4 * #self.order then
    self:_write_journal()
    return
  end
  local f, err = io.open(self.journal_path, "ab")
  if not f then
    self.log("cannot append to " .. self.journal_path .. ": " .. tostring(err))
    return
  end
  f:write(util.encode(job), "\n")
  f:close()
  self.journal_lines = self.journal_lines + 1
end

function Store:_save_models()
  local list = {}
  for _, m in ipairs(self:_model_list()) do list[#list + 1] = util.encode(m) end
  local ok, err = util.write_file_atomic(self.models_path, util.encode_array(list) .. "\n")
  if not ok then self.log("cannot write " .. self.models_path .. ": " .. tostring(err)) end
end

-- The sample recording the sandbox ships, so that `train --source
-- samples:me.wav` works on a fresh data directory: a tone at SAMPLE_HZ
-- standing in for a voice (what training measures is its pitch). A file the
-- user put there is kept.
local SAMPLE_PATH, SAMPLE_HZ, SAMPLE_SEGMENTS = "/samples/me.wav", 220, 6

function Store:_ship_sample()
  local path = self.repos .. SAMPLE_PATH
  if util.exists(path) then return true end
  local ok, err = util.mkdir_p(path:match("^(.*)/"))
  if ok then ok, err = util.write_file_atomic(path, work.tone_wav(SAMPLE_HZ, SAMPLE_SEGMENTS)) end
  if not ok then return nil, "cannot write the sample recording " .. path .. ": " .. tostring(err) end
  return true
end

-- Read what a previous run left, compact the journal, and resume unfinished
-- jobs. Returns true or nil, err.
function Store:load()
  for _, dir in ipairs({ self.data, self.repos }) do
    local ok, err = util.mkdir_p(dir)
    if not ok then return nil, err end
  end
  local ok, err = self:_ship_sample()
  if not ok then return nil, err end
  -- Work directories of a previous run are stale: their jobs restart.
  util.remove_tree(self.workdir)
  ok, err = util.mkdir_p(self.workdir)
  if not ok then return nil, err end

  local text = util.read_file(self.models_path)
  local list = text and util.decode(text)
  if type(list) == "table" then
    for _, m in ipairs(list) do
      if type(m) == "table" and type(m.name) == "string" then self.models[m.name] = m end
    end
  end

  text = util.read_file(self.journal_path) or ""
  for line in text:gmatch("[^\n]+") do
    local job = util.decode(line)   -- a torn last line (crash mid-write) is skipped
    if type(job) == "table" and type(job.id) == "string" and compat.math_type(job.state) == "integer"
        and type(job.timing) == "table" then
      if not self.by_id[job.id] then self:_add(job) end
      self.by_id[job.id] = job
    end
  end
  ok, err = self:_write_journal()
  if not ok then return nil, "cannot write " .. self.journal_path .. ": " .. tostring(err) end

  for _, id in ipairs(self.order) do
    local job = self.by_id[id]
    if not is_final(job) then
      self.log(string.format("job %s resumes in state %s", id, STATE_NAMES[job.state]))
      self:_schedule(job)
    end
  end
  return true
end

----------------------------------------------------------------------------
-- Lifecycle

function Store:_set_state(job, state, fields)
  job.state = state
  for k, v in pairs(fields or {}) do job[k] = v end
  self:_save(job)
  self.log(string.format("job %s %s%s", job.id, STATE_NAMES[state],
    job.errorCode and state == ERROR and (" " .. job.errorCode .. ": " .. tostring(job.errorMessage)) or ""))
end

-- Arm the timers of an unfinished job (at creation, and after a restart).
function Store:_schedule(job)
  local id = job.id
  local created = seconds(job.timing.createdAt)
  if job.timeout then
    self.at(created + job.timeout, function() self:_expire(id) end)
  end
  if job.state == SUBMITTED then
    self.at(created + self.queue_seconds, function() self:_start(id) end)
  elseif job.state == PROCESSING then
    self:_begin_work(job)
  end
end

function Store:_start(id)
  local job = self.by_id[id]
  if not job or job.state ~= SUBMITTED then return end
  job.timing.startedAt = util.ms_string(self.clock())
  self:_set_state(job, PROCESSING)
  self:_begin_work(job)
end

local function is_training(job)
  for _, out in ipairs(job.outputs) do
    if out.smartContentDescriptor.voiceCloning.type == 2 then return true end
  end
  return false
end

function Store:_begin_work(job)
  -- However quick the commands, a job stays PROCESSING at least this long.
  self.min_done[job.id] = self.clock() + self.work_seconds * (is_training(job) and 2 or 1)
  if self.nruns < MAX_RUNS then
    self:_run(job)
  else
    local w = self.waiting
    w.last = w.last + 1
    w[w.last] = job.id
  end
end

function Store:_run(job)
  self.nruns = self.nruns + 1
  local run = work.start(job, {
    repos = self.repos, workdir = self.workdir, clock = self.clock, spawn = self.spawn,
    audio = self.audio, model = function(name) return self:model(name) end,
  })
  run.slot = true
  self.runs[job.id] = run
  self:_poll(job.id)
end

-- A run's commands are done (or its job timed out): its slot goes to the
-- next waiting job that still needs one.
function Store:_free_slot(run)
  if not run.slot then return end
  run.slot = false
  self.nruns = self.nruns - 1
  local w = self.waiting
  while self.nruns < MAX_RUNS and w.first <= w.last do
    local next_id = w[w.first]
    w[w.first] = nil
    w.first = w.first + 1
    local job = self.by_id[next_id]
    if job and job.state == PROCESSING and not self.runs[next_id] then self:_run(job) end
  end
end

function Store:_poll(id)
  local job, run = self.by_id[id], self.runs[id]
  if not job or not run or is_final(job) then return end
  local result = run:poll()
  local now = self.clock()
  if result then self:_free_slot(run) end
  if not result then
    self.at(now + POLL_SECONDS, function() self:_poll(id) end)
  elseif now < self.min_done[id] then
    self.at(self.min_done[id], function() self:_poll(id) end)
  else
    self:_finish(job, result)
  end
end

function Store:_fail(job, code, message)
  job.timing.completedAt = util.ms_string(self.clock())
  self:_set_state(job, ERROR, { errorCode = code, errorMessage = message })
end

-- Apply a run's result: files into the repositories, models into the list.
-- Forget a job's run and remove its work files.
function Store:_drop_run(id)
  local run = self.runs[id]
  self.runs[id] = nil
  self.min_done[id] = nil
  if run then
    self:_free_slot(run)
    run:cleanup()
  end
end

function Store:_finish(job, result)
  if result.ok then
    -- A model trained meanwhile by another job takes the name first.
    for i, r in ipairs(result.outputs) do
      if r.model and self:model(r.model.name) then
        result = { ok = false, code = "ModelExists",
          message = string.format("output %d: a model named %q already exists", i - 1, r.model.name) }
        break
      end
    end
  end
  if result.ok then
    for i, r in ipairs(result.outputs) do
      if r.file then
        local ok, err = os.rename(r.file, r.dir .. "/" .. r.name)
        if not ok then
          result = { ok = false, code = "InvalidOutput",
            message = string.format("output %d: cannot write %s: %s", i - 1, r.name, tostring(err)) }
          break
        end
      end
    end
  end
  if result.ok then
    local now = util.ms_string(self.clock())
    local trained = false
    for i, r in ipairs(result.outputs) do
      local out = job.outputs[i]
      if r.model then
        self.models[r.model.name] = { name = r.model.name, createdAt = now, pitch = r.model.pitch }
        out.smartContentResult = { voiceCloning = { modelName = r.model.name } }
        trained = true
      else
        out.smartContentResult = { voiceCloning = { voiceName = r.name } }
      end
    end
    if trained then self:_save_models() end
    job.timing.completedAt = now
    self:_set_state(job, COMPLETED)
  else
    self:_fail(job, result.code, result.message)
  end
  self:_drop_run(job.id)
  self:_callback(job)
end

function Store:_expire(id)
  local job = self.by_id[id]
  if not job or is_final(job) then return end
  self:_fail(job, "Timeout", string.format("the job did not finish within its timeout of %d seconds",
    job.timeout))
  self:_drop_run(id)
  self:_callback(job)
end

-- POST the finished job to its callback URL, in the background; only
-- loopback receivers are called.
function Store:_callback(job)
  local url = job.callback
  if not url then return end
  local ok, why = util.loopback_url(url)
  if not ok then
    self.log(string.format("job %s: callback skipped (%s)", job.id, why))
    return
  end
  local file = string.format("%s/callback-%s-%s.json", self.workdir, job.id, util.token())
  local wok, err = util.write_file(file, self:encode(job))
  if not wok then
    self.log(string.format("job %s: callback skipped (%s)", job.id, tostring(err)))
    return
  end
  self.log(string.format("job %s: callback POST %s", job.id, url))
  self.spawn([[curl -s -o /dev/null --globoff --proto =http,https --max-time 10 ]]
    .. [[-H 'Content-Type: application/json' --data-binary @"$1" "$2"; rm -f -- "$1"]],
    { file, url })
end

----------------------------------------------------------------------------
-- The API's operations

function Store:_add(job)
  self.by_id[job.id] = job
  self.order[#self.order + 1] = job.id
  if type(job.customId) == "string" then
    local ids = self.by_custom_id[job.customId]
    if not ids then
      ids = {}
      self.by_custom_id[job.customId] = ids
    end
    ids[#ids + 1] = job.id
  end
end

-- req: a validated createJobRequest.
function Store:create(req)
  local job = {
    id = util.uuid(),
    state = SUBMITTED,
    customId = req.customId,
    callback = req.callback,
    timeout = req.timeout,
    inputs = req.inputs,
    outputs = req.outputs,
    timing = { createdAt = util.ms_string(self.clock()), startedAt = "0", completedAt = "0" },
  }
  self:_add(job)
  self:_save(job)
  self.log(string.format("job %s SUBMITTED", job.id))
  self:_schedule(job)
  return job
end

function Store:get(id)
  return self.by_id[id]
end

-- Jobs with this customId, in creation order.
function Store:list_by_custom_id(custom_id)
  local found = {}
  for i, id in ipairs(self.by_custom_id[custom_id] or {}) do found[i] = self.by_id[id] end
  return found
end

-- A model by name; `default` always exists.
function Store:model(name)
  if name == work.DEFAULT_MODEL.name then return work.DEFAULT_MODEL end
  return self.models[name]
end

-- Trained models sorted by createdAt, then name.
function Store:_model_list()
  local list = {}
  for _, m in pairs(self.models) do list[#list + 1] = m end
  table.sort(list, function(a, b)
    local ta, tb = tonumber(a.createdAt) or 0, tonumber(b.createdAt) or 0
    if ta ~= tb then return ta < tb end
    return a.name < b.name
  end)
  return list
end

-- total, page of models ({name, createdAt} as the contract lists them).
function Store:list_models(offset, limit)
  local all = self:_model_list()
  local page = {}
  for i = offset + 1, math.min(#all, offset + limit) do
    page[#page + 1] = { name = all[i].name, createdAt = all[i].createdAt }
  end
  return #all, page
end

-- The job as JSON, exactly what GetJob, ListJobs and callbacks carry.
function Store:encode(job)
  return util.encode(job)
end

return jobs
