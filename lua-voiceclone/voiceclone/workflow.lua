--- Workflows: the everyday sequences of API calls, as one call each.
--
--   local workflow = require "voiceclone.workflow"
--   local results, summary = workflow.train_then_synthesize(client, {
--     sample = "https://example.com/me.wav", model = "my_voice",
--     content_id = "my-repo", destination = "/lines", download = "out",
--     lines = { { id = "intro", text = "Hello" }, { id = "outro", text = "Bye" } },
--   })
--
-- Only the public API calls (ListModels, CreateJob, GetJob and the
-- downloads), so a workflow runs unchanged against the real service.
local core = require "voiceclone.core"
require "voiceclone.client"   -- train, synthesize, models
require "voiceclone.job"      -- wait, download
require "voiceclone.tasks"    -- spawn, run, sleep
local compat = require "voiceclone.compat"
local fs = require "voiceclone.fs"          -- mkdir -p through luv
local audio = require "voiceclone.audio"    -- the downloads' format (sox)

local workflow = {}

workflow.DEFAULT_CONCURRENCY = 8   -- lines in flight at once
local TASK_POLL = 0.02             -- seconds between checks while a task waits for its lines
local DEFAULT_MODEL = "default"    -- always exists on the service: never trained

local function invalid(field, message)
  return core.error("invalid", field .. ": " .. message, { field = field })
end

local function is_client(value)
  local meta = type(value) == "userdata" and getmetatable(value)
  return type(meta) == "table" and meta.__name == "voiceclone.Client"
end

-- Raises for a wrong Lua type, as luaL_check* does (called from check_tts:
-- the error points at the workflow's caller); nil is left to the value
-- checks ("is required").
local function check_type(fname, name, value, ...)
  local actual = type(value)
  if actual == "nil" then return end
  for i = 1, select("#", ...) do
    if actual == select(i, ...) then return end
  end
  error(("bad option '%s' to '%s' (%s expected, got %s)"):format(name, fname,
    table.concat({ ... }, " or "), actual), 4)
end


----------------------------------------------------------------------------
-- train_then_synthesize

local TTS = "train_then_synthesize"
local TTS_OPTIONS = {
  sample = true, model = true, epochs = true, lines = true, content_id = true,
  destination = true, prefix = true, custom_id = true, download = true, format = true,
  concurrency = true, on_progress = true, poll_interval = true, wait_timeout = true,
}

-- client:train's option -> this workflow's, in "invalid" errors.
local SAMPLE_FIELDS = {
  url = "sample", source = "sample",
  ["source.contentId"] = "sample.contentId", ["source.path"] = "sample.path",
}

local function in_workflow_terms(err)
  local field = err.kind == "invalid" and SAMPLE_FIELDS[err.field]
  if field then
    err.message = field .. err.message:sub(#err.field + 1)
    err.field = field
  end
  return err
end

-- A file name from a line's id: no path separators, no hidden files.
local function safe_name(id)
  return tostring(id):match("^[%w_%-][%w_.%-]*$") ~= nil
end

-- The directory takes files: a probe file is written and removed.
local function writable_dir(dir)
  local probe = ("%s/.voiceclone-probe-%d-%d"):format(dir, os.time(), math.random(1, 1e9))
  local f, err = io.open(probe, "wb")
  if not f then return nil, err end
  f:close()
  os.remove(probe)
  return true
end

-- Checks the options; raises for wrong types. Returns the lines' ids, or
-- nil and an "invalid" error.
local function check_tts(client, o)
  if not is_client(client) then
    error(("bad argument #1 to '%s' (voiceclone.Client expected, got %s)")
      :format(TTS, type(client)), 3)
  end
  if type(o) ~= "table" then
    error(("bad argument #2 to '%s' (table expected, got %s)"):format(TTS, type(o)), 3)
  end
  check_type(TTS, "sample", o.sample, "string", "table")
  check_type(TTS, "model", o.model, "string")
  check_type(TTS, "epochs", o.epochs, "number")
  check_type(TTS, "lines", o.lines, "table")
  check_type(TTS, "content_id", o.content_id, "string")
  check_type(TTS, "destination", o.destination, "string")
  check_type(TTS, "prefix", o.prefix, "string")
  check_type(TTS, "custom_id", o.custom_id, "string")
  check_type(TTS, "download", o.download, "string")
  check_type(TTS, "format", o.format, "string")
  check_type(TTS, "concurrency", o.concurrency, "number")
  check_type(TTS, "on_progress", o.on_progress, "function")
  check_type(TTS, "poll_interval", o.poll_interval, "number")
  check_type(TTS, "wait_timeout", o.wait_timeout, "number")
  for key in pairs(o) do
    if not TTS_OPTIONS[key] then return nil, invalid(tostring(key), "is not an option of " .. TTS) end
  end
  if o.model == nil or o.model == "" then return nil, invalid("model", "is required") end
  if o.content_id == nil then return nil, invalid("content_id", "is required") end
  if o.lines == nil then return nil, invalid("lines", "is required") end
  if o.format ~= nil then
    if o.download == nil then return nil, invalid("format", "converts the downloads: give download too") end
    local err = audio.check(o.format)   -- an unknown format, or no sox: before any job
    if err then return nil, err end
  end
  local c = o.concurrency
  if c ~= nil and (compat.math_type(c) ~= "integer" and c ~= math.huge or c < 1) then
    return nil, invalid("concurrency", "must be a whole number, at least 1")
  end
  local ids, seen = {}, {}
  for i, line in ipairs(o.lines) do
    local field = ("lines[%d]"):format(i)
    if type(line) ~= "table" then
      error(("bad option '%s' to '%s' (table expected, got %s)"):format(field, TTS, type(line)), 3)
    end
    check_type(TTS, field .. ".text", line.text, "string")
    check_type(TTS, field .. ".id", line.id, "string", "number")
    if line.text == nil then return nil, invalid(field .. ".text", "is required") end
    local id = line.id
    if id == nil then id = i end
    local key = tostring(id)   -- 7 and "7" would name the same file
    if seen[key] then
      return nil, invalid(field .. ".id", ("%s is also lines[%d]'s id"):format(key, seen[key]))
    end
    if o.download and not safe_name(id) then
      return nil, invalid(field .. ".id", "names a file: letters, digits, '_', '-' and '.' only")
    end
    seen[key], ids[i] = i, id
  end
  local count = 0
  for _ in pairs(o.lines) do count = count + 1 end
  if count ~= #ids then return nil, invalid("lines", "must be a list: keys 1 to n, no holes") end
  if o.download then
    -- Found out now rather than after every line: where files come from...
    local url, err = client:repository_url(o.content_id, "line.wav")
    if not url then return nil, err end
    -- ...and that they can be written (the directory is made if missing).
    local ok, why = writable_dir(o.download)
    if not ok then
      fs.mkdir_p(o.download)
      ok, why = writable_dir(o.download)
    end
    if not ok then return nil, invalid("download", "cannot write files there: " .. tostring(why)) end
  end
  return ids
end

-- The model named name, false when there is none, nil and err when the
-- list cannot be read.
local function find_model(client, name)
  -- the iterator called by hand, not by a generic for: on Lua 5.1 a for's
  -- iterator cannot yield, and inside a task each page yields
  local next_model = client:models()
  local model, err = next_model()
  while model ~= nil do
    if model == false then return nil, err end
    if model.name == name then return model end
    model, err = next_model()
  end
  return false
end

-- Trains o.model from o.sample unless a model of that name exists already.
-- Returns trained (boolean) and the training job, or nil and err.
local function ensure_model(client, o, progress, wait_options)
  if o.model == DEFAULT_MODEL then
    progress { type = "reused", model = o.model }
    return false
  end
  local found, err = find_model(client, o.model)
  if found == nil then return nil, err end
  if found then
    progress { type = "reused", model = o.model }
    return false
  end
  if o.sample == nil then
    return nil, invalid("sample", ("is required: there is no model %q to reuse"):format(o.model))
  end
  local input = type(o.sample) == "string" and "url" or "source"
  local training
  training, err = client:train { [input] = o.sample, model = o.model, epochs = o.epochs,
                                 custom_id = o.custom_id }
  if training then
    progress { type = "training", job = training }
    local options = { on_update = function(job) progress { type = "training", job = job } end }
    for k, v in pairs(wait_options) do options[k] = v end
    local done
    done, err = training:wait(options)
    if done then
      progress { type = "trained", model = o.model, job = training }
      return true, training
    end
  end
  if err.kind == "invalid" then return nil, in_workflow_terms(err) end
  -- Another caller may have trained the same name meanwhile: use theirs.
  if find_model(client, o.model) then
    progress { type = "reused", model = o.model }
    return false, training
  end
  return nil, err
end

--- Trains a voice (unless a model of that name exists) and speaks every line
-- in it, several lines at once; optionally downloads each line's audio.
--
-- Options:
--   sample        the recording to train from: a URL string, or {contentId=, path=}
--                 (needed only when the model does not exist yet)
--   model         the model's name (required); "default" is never trained
--   epochs        training epochs (the service's default when nil)
--   lines         { {id =, text =}, ... } (id defaults to the line's index)
--   content_id    the repository receiving the audio (required)
--   destination, prefix, custom_id   passed to every job
--   download      a directory: each line's audio is saved there as <id>.wav
--   format        "wav", "ogg" (saved as <id>.ogg) or "ulaw8k": the downloads
--                 converted with sox (see client:download)
--   concurrency   lines in flight at once (default 8)
--   on_progress   fn(event), see README
--   poll_interval, wait_timeout      job:wait's interval and timeout
--
-- Returns results, summary: results[i] = { id, text, job_id, job, state,
-- path, file, error } for lines[i] (error is nil on success), and summary =
-- { model, trained, training_job, total, completed, failed }. A failed line
-- does not stop the others. Returns nil, err when the model cannot be had
-- (invalid options, listing or training failed).
--
-- Outside a task, the lines run as tasks driven by client:run() (which also
-- runs any other task spawned on the client). Inside a task of the client,
-- the lines are spawned as tasks too, and this task waits for them,
-- yielding: the caller's own client:run() or client:step() drives them.
function workflow.train_then_synthesize(client, options)
  local ids, err = check_tts(client, options)
  if not ids then return nil, err end
  local o = options
  local on_progress = o.on_progress or function() end
  local wait_options = { interval = o.poll_interval, timeout = o.wait_timeout }

  local trained, training = ensure_model(client, o, on_progress, wait_options)
  if trained == nil then return nil, training end

  local results = {}
  for i, line in ipairs(o.lines) do results[i] = { id = ids[i], text = line.text } end

  local function fail(result, failure)
    result.error = failure
    on_progress { type = "failed", line = result, error = failure }
  end

  local function speak(r)
    local job, serr = client:synthesize { text = r.text, model = o.model, content_id = o.content_id,
                                          destination = o.destination, prefix = o.prefix,
                                          custom_id = o.custom_id }
    if not job then return fail(r, serr) end
    r.job, r.job_id, r.state = job, job.id, job:status()
    on_progress { type = "line", line = r, job = job }
    local line_wait = { on_update = function(j)
      r.state = j:status()
      on_progress { type = "line", line = r, job = j }
    end }
    for k, v in pairs(wait_options) do line_wait[k] = v end
    local done, werr = job:wait(line_wait)
    r.state = job:status()
    if not done then return fail(r, werr) end
    r.path = job:result().path
    if o.download then
      local file, derr = job:download(("%s/%s.%s"):format(o.download, tostring(r.id),
        o.format and audio.extension(o.format) or "wav"), { format = o.format })
      if not file then return fail(r, derr) end
      r.file = file
      on_progress { type = "downloaded", line = r, file = file }
    end
  end

  -- Workers take the next line until none is left; a Lua error (from
  -- on_progress, say) stops them taking more, and is raised again below.
  local next_line, raised, running = 0, nil, 0
  local function worker()
    while raised == nil and next_line < #results do
      next_line = next_line + 1
      local ok, problem = compat.pcall(speak, results[next_line])   -- speak yields: 5.1's pcall cannot
      if not ok then raised = problem end
    end
    running = running - 1
  end

  local workers = math.min(o.concurrency or workflow.DEFAULT_CONCURRENCY, #results)
  running = workers
  for _ = 1, workers do client:spawn(worker) end
  if client:in_task() then
    while running > 0 do client:sleep(TASK_POLL) end
  else
    while running > 0 do client:run() end
  end
  if raised ~= nil then error(raised, 0) end

  local summary = { model = o.model, trained = trained, training_job = training,
                    total = #results, completed = 0, failed = 0 }
  for _, r in ipairs(results) do
    if r.error then summary.failed = summary.failed + 1 else summary.completed = summary.completed + 1 end
  end
  return results, summary
end

return workflow
