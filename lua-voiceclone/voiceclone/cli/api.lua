--- What the commands that talk to the service share: the client made from
-- the options, a job shown as a line or in full, waiting and downloading,
-- and sending a job (say, convert, train).
local compat = require "voiceclone.compat"
local output = require "voiceclone.cli.output"
local options = require "voiceclone.cli.options"

local utf8 = compat.utf8
local EXIT, PROGRAM, array = output.EXIT, output.PROGRAM, output.array

local api = {}

local function env(name)
  local value = os.getenv(name)
  if value ~= nil and value ~= "" then return value end
end

api.NO_REPOSITORIES = "downloads need --repositories TEMPLATE or $VOICECLONE_REPOSITORIES "
  .. "(e.g. http://127.0.0.1:8600/repos/{contentId}/{path})"

function api.repositories_of(o)
  return o.repositories or env "VOICECLONE_REPOSITORIES"
end

-- The client's own options, in flag terms.
local CLIENT_FLAGS = { timeout = "--http-timeout", endpoint = "--endpoint",
                       repositories = "--repositories" }

--- The client for the global options, or nil and the exit status (the
-- error reported). extra: more client settings (max_in_flight).
function api.client(ctx, o, extra)
  local voiceclone = require "voiceclone"
  local settings = {
    secret_id = o["secret-id"], secret_key = o["secret-key"], endpoint = o.endpoint,
    timeout = o["http-timeout"], repositories = api.repositories_of(o),
  }
  if o.verbose then
    settings.on_request = function(info)
      ctx:err(("%s: %s attempt %d: %s %.3f s%s%s\n"):format(PROGRAM, tostring(info.action),
        info.attempt, info.status and info.status ~= 0 and ("HTTP " .. info.status) or "no answer",
        info.duration or 0, info.request_id and (" request " .. info.request_id) or "",
        info.error_kind and (" error " .. info.error_kind) or ""))
    end
  end
  for k, v in pairs(extra or {}) do settings[k] = v end
  if o["http-timeout"] == 0 then return nil, ctx:usage("--http-timeout must be positive") end
  local client, err = voiceclone.new(settings)
  if not client then
    if err.field == "secret_id" or err.field == "secret_key" then
      return nil, ctx:usage("no credentials: set VOICECLONE_SECRET_ID and VOICECLONE_SECRET_KEY "
        .. "(or give --secret-id and --secret-key)")
    end
    local flags = ctx.flags
    ctx.flags = CLIENT_FLAGS
    local status = ctx:fail(err)
    ctx.flags = flags
    return nil, status
  end
  return client
end

----------------------------------------------------------------------------
-- A job, shown

--- The job as the API shows it (the Job's data is the service's own), its
-- arrays kept JSON arrays when printed.
function api.job(job)
  local data = job:totable()
  for _, out in ipairs(type(data.outputs) == "table" and data.outputs or {}) do
    if type(out) == "table" and type(out.inputSelectors) == "table" then
      local selectors = array()
      for i, n in ipairs(out.inputSelectors) do selectors[i] = n end
      out.inputSelectors = selectors
    end
  end
  return data
end

function api.iso_time(ms)
  local n = tonumber(ms)
  if not n or n <= 0 then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(n / 1000))
end

function api.output_of(job)
  local result = job:result()
  if not result then return nil end
  if result.modelName then return "model " .. result.modelName end
  if result.path then return (result.contentId and (result.contentId .. ":") or "") .. result.path end
end

--- One line per job: ID STATE [customId=..] [output] [(reason)]
function api.job_line(job)
  local parts = { job.id, job:status() }
  if job.customId then parts[#parts + 1] = "customId=" .. job.customId end
  local out = api.output_of(job)
  if out then parts[#parts + 1] = out end
  if job.state == 4 or job.state == 5 then
    local reason = job:reason()
    if reason then parts[#parts + 1] = "(" .. reason .. ")" end
  end
  return table.concat(parts, " ")
end

local function describe_input(input)
  if input.sourceData then
    local text = input.sourceData
    if utf8.len(text) and utf8.len(text) > 60 then text = text:sub(1, utf8.offset(text, 58) - 1) .. "..." end
    return ("text %q"):format(text)
  end
  if input.url then return "url " .. input.url end
  if input.source then return ("source %s:%s"):format(input.source.contentId, input.source.path) end
  return "?"
end

--- The job in full, one "name  value" line per field.
function api.job_details(job)
  local lines = {
    ("id         %s"):format(job.id),
    ("state      %s"):format(job:status()),
  }
  if job.customId then lines[#lines + 1] = ("customId   %s"):format(job.customId) end
  if job.callback then lines[#lines + 1] = ("callback   %s"):format(job.callback) end
  local timing = job.timing or {}
  lines[#lines + 1] = ("created    %s"):format(api.iso_time(timing.createdAt))
  lines[#lines + 1] = ("started    %s"):format(api.iso_time(timing.startedAt))
  lines[#lines + 1] = ("completed  %s"):format(api.iso_time(timing.completedAt))
  for _, input in ipairs(job.inputs or {}) do
    lines[#lines + 1] = "input      " .. describe_input(input)
  end
  for _, out in ipairs(job.outputs or {}) do
    local vc = out.smartContentDescriptor and out.smartContentDescriptor.voiceCloning or {}
    local what = vc.type == 2 and ("train model %s"):format(tostring(vc.modelName))
      or ("speak with model %s into %s:%s"):format(tostring(vc.modelName), tostring(out.contentId),
        out.destination or "/")
    lines[#lines + 1] = "output     " .. what
  end
  local out = api.output_of(job)
  if out then lines[#lines + 1] = "result     " .. out end
  local reason = job:reason()
  if reason then lines[#lines + 1] = "reason     " .. reason end
  return table.concat(lines, "\n") .. "\n"
end

----------------------------------------------------------------------------
-- Waiting and downloading

-- How long a wait waits and how often it polls, in every command.
api.WAIT_USAGE = [[
  --wait-timeout S      how long to wait for the job (default 600; old spelling
                        in wait and download: --timeout)
  --poll-interval S     first pause between polls (default 1, growing to 10; old
                        spelling in wait: --interval)
]]

--- Waits for a job, printing each state as it comes (human output).
-- Returns the job or nil, err; `states` collects { state =, at = }.
function api.wait_for(ctx, job, o, states)
  local function note(j)
    states[#states + 1] = { state = j:status(), at = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    if not ctx.json_output then ctx:out(os.date("%H:%M:%S "), j.id, " ", j:status(), "\n") end
  end
  note(job)
  if job.state == 3 then return job end
  if job:is_final() then return job:wait() end
  return job:wait { timeout = o["wait-timeout"] or 600, interval = o["poll-interval"] or 1,
                    on_update = note }
end

-- --format, in say, convert, download and batch.
api.FORMAT_USAGE = [[
  --format F            convert the download with sox: wav, ogg (Ogg Vorbis) or ulaw8k
                        (8 kHz mono u-law WAV); the file keeps its name
]]

--- nil when o.format (if any) can be made; else the exit status, reported
-- before anything is sent: a usage error, or no sox (4).
function api.check_format(ctx, o, missing_download)
  if o.format == nil then return nil end
  if missing_download then return ctx:usage("--format converts the download: give " .. missing_download) end
  local err = require("voiceclone.audio").check(o.format)
  if err then return ctx:fail(err) end
end

--- Downloads a COMPLETED job's output to dest (the option `flag` named it),
-- converted to format if given.
function api.download(ctx, job, dest, flag, format)
  ctx.flags.dest = flag
  local file, err = job:download(dest, { format = format })
  if not file and type(err) == "table" and err.kind == "invalid" and err.field == "repositories" then
    err = { kind = "invalid", field = "repositories", message = api.NO_REPOSITORIES }
  end
  return file, err
end

----------------------------------------------------------------------------
-- Sending a job: say, convert, train

api.JOB_OPTIONS_USAGE = [[
  --custom-id ID        your own id for the job (under 64 characters; see 'jobs')
  --callback URL        the service POSTs the finished job there ('callbacks' receives it)
  --job-timeout S       seconds the service gives the job before setting it ERROR
  --wait                wait until the job is final, printing each state
]] .. api.WAIT_USAGE

--- The options of a command that sends a job, plus its own.
function api.job_options(own)
  own["custom-id"] = "string"
  own.callback = "string"
  own["job-timeout"] = "integer"
  own.wait = "flag"
  own["wait-timeout"] = "number"
  own["poll-interval"] = "number"
  return options.with_global(own)
end

-- The helpers' option names, in flag terms, where they differ.
api.JOB_FLAGS = { timeout = "--job-timeout" }

--- The options shared by synthesize, convert and train.
function api.job_settings(o)
  return { custom_id = o["custom-id"], callback = o.callback, timeout = o["job-timeout"] }
end

--- Sends a job (submit(client) -> job, err), optionally waits and downloads
-- it (to o.download), and reports. Status 0 when sent (or COMPLETED with
-- --wait).
function api.run_job(ctx, o, submit)
  local problem = options.zero(o, { "wait-timeout", "poll-interval" })
  if problem then return ctx:usage(problem) end
  local download_to = o.download
  if download_to and not api.repositories_of(o) then return ctx:usage(api.NO_REPOSITORIES) end
  problem = api.check_format(ctx, o, not download_to and "--download")
  if problem then return problem end
  local client, status = api.client(ctx, o)
  if not client then return status end
  for field, flag in pairs(api.JOB_FLAGS) do ctx.flags[field] = ctx.flags[field] or flag end
  local job, err = submit(client)
  if not job then return ctx:fail(err) end
  if not (o.wait or download_to) then
    if ctx.json_output then ctx:json { job = api.job(job), status = job:status() }
    else ctx:out(api.job_line(job), "\n") end
    return EXIT.OK
  end
  local states = array()
  local done, werr = api.wait_for(ctx, job, o, states)
  if not done then return ctx:fail(werr, { job = api.job(job), states = states }) end
  local file
  if download_to then
    local derr
    file, derr = api.download(ctx, job, download_to, "--download", o.format)
    if not file then return ctx:fail(derr, { job = api.job(job), states = states }) end
  end
  if ctx.json_output then
    ctx:json { job = api.job(job), status = job:status(), result = job:result(), states = states,
               file = file }
  else
    ctx:out(api.job_line(job), "\n")
    if file then ctx:out("downloaded ", file, "\n") end
  end
  return EXIT.OK
end

--- The recording of convert and train: { url = } or { source = }, from
-- --url or --source CONTENT_ID:PATH; or nil and the exit status.
function api.recording(ctx, o)
  if (o.url == nil) == (o.source == nil) then
    return nil, ctx:usage("give exactly one of --url and --source")
  end
  if o.url then return { url = o.url } end
  local content_id, path = o.source:match("^([^:]+):(.+)$")
  if not content_id then
    return nil, ctx:usage("--source needs CONTENT_ID:PATH (got " .. o.source .. ")")
  end
  return { source = { contentId = content_id, path = path } }
end

return api
