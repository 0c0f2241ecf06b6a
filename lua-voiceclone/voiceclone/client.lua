--- voiceclone.Client: every public method of a client, defined here.
--
-- The four API calls start a Request in the C core (voiceclone.core) and
-- wait for it (voiceclone/tasks.lua): they yield inside a task and block
-- outside one. The helpers synthesize, convert and train each build one
-- createJobRequest from snake_case options and send it with create_job, so
-- every rule is checked in one place (the C core); an "invalid" error names
-- the option the caller wrote, not the wire field.
local core = require "voiceclone.core"
local tasks = require "voiceclone.tasks"
local retry = require "voiceclone.retry"
local audio = require "voiceclone.audio"

local Client = core.Client       -- the method table of voiceclone.Client
local GENERATE, TRAIN = core.type.GENERATE, core.type.TRAIN
local MODELS_PAGE = 100
local unpack = require("voiceclone.compat").unpack

--- Closes the client: its requests in flight are abandoned, the key wiped.
-- Closing twice does nothing; any other use of a closed client raises.
Client.close = core.close
--- True until closed.
Client.is_open = core.is_open
--- The endpoint, without a trailing slash.
Client.endpoint = core.endpoint

--- CreateJob: request is a createJobRequest exactly as the service
-- documents it (inputSelectors count from 0). Returns the Job, or nil and
-- an error; nothing is sent when a documented rule fails ("invalid"). The
-- job is created once, retries or not (voiceclone/retry.lua): without a
-- customId the request gets one of its own.
function Client:create_job(request)
  return retry.create(self, request)
end

--- GetJob: the Job with this id.
function Client:get_job(id)
  return retry.call(self, core.get_job, self, id)
end

--- ListJobs: the Jobs with this customId (several may share one), and their total.
function Client:list_jobs(custom_id)
  return retry.call(self, core.list_jobs, self, custom_id)
end

--- ListModels: a page of Models (offset 0, limit 10, at most 100), and the total.
function Client:list_models(offset, limit)
  return retry.call(self, core.list_models, self, offset, limit)
end

-- Wire field (as create_job names it) -> the helper option it came from.
local option_of = {
  ["inputs[1].sourceData"] = "text",
  ["inputs[1].url"] = "url",
  ["inputs[1].source"] = "source",
  ["inputs[1].source.contentId"] = "source.contentId",
  ["inputs[1].source.path"] = "source.path",
  ["outputs[1].contentId"] = "content_id",
  ["outputs[1].destination"] = "destination",
  ["outputs[1].smartContentDescriptor.outputPrefix"] = "prefix",
  ["outputs[1].smartContentDescriptor.voiceCloning.modelName"] = "model",
  ["outputs[1].smartContentDescriptor.voiceCloning.totalEpoch"] = "epochs",
  customId = "custom_id",
}

local function invalid(field, message)
  return core.error("invalid", field .. ": " .. message, { field = field })
end

local function in_option_terms(err)
  local option = err.kind == "invalid" and option_of[err.field]
  if option then
    err.message = option .. err.message:sub(#err.field + 1)
    err.field = option
  end
  return err
end

local function submit(client, request)
  local job, err = client:create_job(request)
  if not job then return nil, in_option_terms(err) end
  return job
end

local function check_options(method, options, allowed)
  if type(options) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(method, type(options)), 3)
  end
  for key in pairs(options) do
    if not allowed[key] then
      return invalid(tostring(key), "is not an option of " .. method)
    end
  end
end

local function set(...)
  local s = {}
  for _, key in ipairs { ... } do s[key] = true end
  return s
end

local COMMON = { "custom_id", "callback", "timeout" }
local SYNTHESIZE = set("text", "model", "content_id", "destination", "prefix", unpack(COMMON))
local CONVERT = set("url", "source", "model", "content_id", "destination", "prefix",
                    unpack(COMMON))
local TRAIN_OPTIONS = set("url", "source", "model", "epochs", unpack(COMMON))

-- The one input of convert and train: a recording, by url or in a repository.
local function recording(options)
  if (options.url == nil) == (options.source == nil) then
    return nil, invalid("url", "give exactly one of url and source")
  end
  if options.url ~= nil then return { url = options.url } end
  return { source = options.source }
end

local function generate_request(options, input)
  return {
    inputs = { input },
    outputs = { {
      contentId = options.content_id,
      destination = options.destination,
      inputSelectors = { 0 },
      smartContentDescriptor = {
        outputPrefix = options.prefix,
        voiceCloning = { type = GENERATE, modelName = options.model or "default" },
      },
    } },
    customId = options.custom_id,
    callback = options.callback,
    timeout = options.timeout,
  }
end

--- Speaks text in a model's voice ("default" unless model is given).
-- Options: text, model, content_id, destination, prefix, custom_id, callback, timeout.
function Client:synthesize(options)
  local err = check_options("synthesize", options, SYNTHESIZE)
  if err then return nil, err end
  if options.text == nil then return nil, invalid("text", "is required") end
  return submit(self, generate_request(options, { sourceData = options.text }))
end

--- Converts a recording (url, or source = {contentId=, path=}) into a model's voice.
function Client:convert(options)
  local err = check_options("convert", options, CONVERT)
  if err then return nil, err end
  local input, input_err = recording(options)
  if not input then return nil, input_err end
  return submit(self, generate_request(options, input))
end

--- Trains a model named options.model from a recording (url or source).
function Client:train(options)
  local err = check_options("train", options, TRAIN_OPTIONS)
  if err then return nil, err end
  local input, input_err = recording(options)
  if not input then return nil, input_err end
  return submit(self, {
    inputs = { input },
    outputs = { {
      inputSelectors = { 0 },
      smartContentDescriptor = {
        voiceCloning = { type = TRAIN, modelName = options.model, totalEpoch = options.epochs },
      },
    } },
    customId = options.custom_id,
    callback = options.callback,
    timeout = options.timeout,
  })
end

--- Iterates over every model, fetching 100 a page:
--   for model, err in client:models() do ... end
-- A failed page gives (false, err) once, then the loop ends.
function Client:models()
  local page, index, offset, total = {}, 0, 0, nil
  local finished = false
  return function()
    if finished then return nil end
    index = index + 1
    if index > #page then
      if total and offset >= total then return nil end
      local models, count = self:list_models(offset, MODELS_PAGE)
      if not models then
        finished = true
        return false, count
      end
      if #models == 0 then return nil end
      page, index, total = models, 1, count
      offset = offset + #models
    end
    return page[index]
  end
end

-- Escapes a URL component; a path keeps its slashes.
local function escape(s, keep)
  return (s:gsub("[^%w%-%._~" .. (keep or "") .. "]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

--- Where a file of a storage repository can be downloaded, from the client's
-- repositories option: a template with {contentId} and {path}, or a
-- function(contentId, path) -> url.
function Client:repository_url(content_id, path)
  if type(content_id) ~= "string" or type(path) ~= "string" then
    error("bad arguments to 'repository_url' (two strings expected)", 2)
  end
  local repositories = core.client_table(self).repositories
  if repositories == nil then
    return nil, invalid("repositories", "is not set: pass repositories = template or function to new")
  end
  path = path:gsub("^/+", "")
  if type(repositories) == "function" then
    local url = repositories(content_id, path)
    if type(url) ~= "string" then
      return nil, invalid("repositories", "the function gave no URL for " .. content_id .. ":" .. path)
    end
    return url
  end
  return (repositories:gsub("{(%w+)}", {
    contentId = escape(content_id),
    path = escape(path, "/"),
  }))
end

--- Downloads url into the file dest. The C core streams it to a temporary
-- file of its own beside dest and renames it to dest once whole: a file at
-- dest is always whole, and a download that fails, is canceled or cut short
-- leaves nothing behind. Yields inside a task. Returns dest, or nil and an error.
-- options.format ("wav", "ogg", "ulaw8k") converts the file with sox before
-- it becomes dest, as atomically (voiceclone/audio.lua); without it dest
-- holds the bytes as served.
function Client:download(url, dest, options)
  if type(url) ~= "string" or type(dest) ~= "string" then
    error("bad arguments to 'download' (url and destination strings expected)", 2)
  end
  local format, err = audio.option(options, "download")
  if err then return nil, err end
  if not format then return retry.call(self, core.download, self, url, dest) end
  return audio.download(self, dest, format, function(path)
    return retry.call(self, core.download, self, url, path)
  end)
end

--- Tasks (voiceclone/tasks.lua): many calls in flight on one thread.
--   client:spawn(fn, ...)   runs fn(...) as a task: inside it every API call
--                           (and job:wait's pauses) yields instead of blocking;
--                           returns the task (task.done, ok, results, error,
--                           traceback; task:cancel())
--   client:step([budget])   never blocks: advances transfers and timers and
--                           resumes the tasks whose work is ready, spending at
--                           most `budget` seconds resuming them; returns the
--                           number of unfinished tasks
--   client:run([timeout])   drives until every task is done: true; or false
--                           and the failed tasks (without on_error); or nil
--                           and a "timeout" error
--   client:on_error(fn)     fn(err, task) for each task that raises
--   client:in_task()        true inside one of this client's tasks
--   client:sleep(seconds)   yields inside a task, blocks outside one
--   client:sockets(), client:timeout()   what an outside event loop waits
--                           on: { [fd] = "r" | "w" | "rw" }, and seconds until
--                           step() has something to do (0: now; nil: only a
--                           socket can bring news)
function Client:spawn(fn, ...) return tasks.spawn(self, fn, ...) end
function Client:step(budget) return tasks.step(self, budget) end
function Client:run(timeout) return tasks.run(self, timeout) end
function Client:on_error(handler) return tasks.on_error(self, handler) end
function Client:in_task() return tasks.in_task(self) end
function Client:sleep(seconds) return tasks.sleep(self, seconds) end
function Client:timeout() return tasks.timeout(self) end
Client.sockets = core.sockets

return Client
