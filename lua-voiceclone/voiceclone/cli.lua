--- The voiceclone command: argument parsing, output and exit codes.
--
--   os.exit(require("voiceclone.cli").main(arg, extra_commands))
--
-- scripts/voiceclone is a thin entry: it adds the `sandbox` command (kept
-- there) and calls main. Every command is an entry of COMMANDS: a summary, a
-- usage text, its options ({ name = "string" | "number" | "integer" | "flag" |
-- "list" }), how many positional arguments it takes, and run(ctx, options,
-- args) -> exit status. Commands that talk to the service also take the
-- global options (credentials, endpoint, --json). voiceclone.core is loaded
-- only by those: `voiceclone --help` and `sandbox` work without it.
local cjson = require("cjson.safe").new()
local compat = require "voiceclone.compat"

local utf8 = compat.utf8

local cli = {}

local PROGRAM = "voiceclone"

--- Exit statuses scripts can rely on.
cli.EXIT = {
  OK = 0,        -- done; every job/line COMPLETED
  FAILED = 1,    -- a job ended ERROR/CANCELED, a batch line failed, the service refused
  USAGE = 2,     -- bad command line, missing credentials, a request breaking a documented rule
  NETWORK = 3,   -- network failure, timeout, or a retryable service error: try again later
  LOCAL = 4,     -- a local file could not be read or written
}
local EXIT = cli.EXIT

local SECRET_MIN_LENGTH = 6   -- shorter keys would match ordinary words (as the sandbox does)

----------------------------------------------------------------------------
-- JSON out: arrays marked, so an empty list is [] and not {}

local ARRAY = {}
local function array(t) return setmetatable(t or {}, ARRAY) end

local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    if getmetatable(v) == ARRAY or is_sequence(v) then
      for i = 1, #v do parts[i] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in ipairs(keys) do
      local value = v[k]
      if value == nil then value = v[tonumber(k)] end
      parts[i] = cjson.encode(k) .. ":" .. encode(value)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" or t == "number" or t == "boolean" then
    return cjson.encode(v) or "null"
  end
  return "null"
end
cli.encode = encode

----------------------------------------------------------------------------
-- Output: everything goes through ctx, which hides the secret key

local Context = {}
Context.__index = Context

-- The forms a secret may take in what is printed: raw; JSON-escaped (as
-- --json writes it, "/" as "\/", and with "/" plain) or quoted with %q;
-- URL-encoded (upper- and lowercase hex); HTML-escaped. Longest first.
local function forms_of(secret)
  local list, seen = {}, {}
  local function add(form)
    if not seen[form] then
      seen[form] = true
      list[#list + 1] = form
    end
  end
  add(secret)
  local json = (cjson.encode(secret) or '""'):sub(2, -2)
  add(json)
  add((json:gsub("\\/", "/")))
  add((("%q"):format(secret):sub(2, -2)))
  add((secret:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)))
  add((secret:gsub("[^%w%-%._~]", function(c) return ("%%%02x"):format(c:byte()) end)))
  add((secret:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                                  ["'"] = "&#39;" })))
  table.sort(list, function(a, b) return #a > #b end)
  return list
end

local function replace_plain(text, form, by)
  local out, at = {}, 1
  while true do
    local s, e = text:find(form, at, true)
    if not s then break end
    out[#out + 1] = text:sub(at, s - 1)
    out[#out + 1] = by
    at = e + 1
  end
  if at == 1 then return text end
  out[#out + 1] = text:sub(at)
  return table.concat(out)
end

function Context:redact(text)
  text = tostring(text)
  for _, secret in ipairs(self.secrets) do
    self.forms[secret] = self.forms[secret] or forms_of(secret)
    for _, form in ipairs(self.forms[secret]) do text = replace_plain(text, form, "***") end
  end
  return text
end

-- value with every string in it redacted, before it is encoded: a secret
-- that an escaping doubles (a %q quote inside JSON) is caught as plain text.
local function redacted(ctx, value, depth)
  if type(value) == "string" then return ctx:redact(value) end
  if type(value) ~= "table" or depth > 32 then return value end
  local copy = {}
  for k, v in pairs(value) do copy[redacted(ctx, k, depth + 1)] = redacted(ctx, v, depth + 1) end
  return setmetatable(copy, getmetatable(value))
end

function Context:out(...)
  local parts = compat.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  io.stdout:write(self:redact(table.concat(parts, "", 1, parts.n)))
  io.stdout:flush()
end

function Context:err(...)
  local parts = compat.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  io.stderr:write(self:redact(table.concat(parts, "", 1, parts.n)))
  io.stderr:flush()
end

function Context:json(value)
  self:out(encode(redacted(self, value, 0)), "\n")
end

-- The secret keys this run may know of: from the command line and the
-- environment. Found before parsing, so even a usage error hides them.
local function secrets_in(args)
  local found = {}
  local function add(s)
    if type(s) == "string" and #s >= SECRET_MIN_LENGTH then found[#found + 1] = s end
  end
  add(os.getenv("VOICECLONE_SECRET_KEY"))
  for i, a in ipairs(args) do
    if a == "--secret-key" then add(args[i + 1]) end
    add(a:match("^%-%-secret%-key=(.*)$"))
  end
  return found
end

----------------------------------------------------------------------------
-- Parsing

-- Parses options ("--name value", "--name=value", "--flag"; "--" ends them)
-- and positional arguments against spec[name] = kind. Returns options,
-- positionals; or nil, message.
local function parse(args, spec, max_positional)
  local options, positional, i, only_positional = {}, {}, 1, false
  while i <= #args do
    local a = args[i]
    if not only_positional and a == "--" then
      only_positional = true
    elseif not only_positional and a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([%w-]+)=(.*)$")
      name = name or a:match("^%-%-([%w-]+)$")
      if not name then return nil, "unexpected argument " .. a end
      local kind = spec[name]
      if not kind then return nil, "unknown option --" .. name end
      if kind == "flag" then
        if value then return nil, "--" .. name .. " takes no value" end
        options[name] = true
      else
        if not value then
          local following = args[i + 1]
          -- the next word is another option: this one was given no value
          if following and spec[following:match("^%-%-([%w-]+)") or ""] then following = nil end
          i = i + 1
          value = following
          if not value then return nil, "--" .. name .. " needs a value" end
        end
        if kind == "number" or kind == "integer" then
          local n = tonumber(value)
          if not n or n < 0 or (kind == "integer" and not compat.tointeger(n)) then
            return nil, string.format("--%s needs a %s number (got %q)",
              name, kind == "integer" and "whole" or "non-negative", value)
          end
          value = kind == "integer" and compat.tointeger(n) or n
        end
        if kind == "list" then
          options[name] = options[name] or {}
          table.insert(options[name], value)
        else
          options[name] = value
        end
      end
    else
      positional[#positional + 1] = a
      if #positional > (max_positional or 0) then return nil, "unexpected argument " .. a end
    end
    i = i + 1
  end
  return options, positional
end
cli.parse = parse

----------------------------------------------------------------------------
-- Shared pieces of the API commands

local GLOBAL_OPTIONS = {
  json = "flag", ["secret-id"] = "string", ["secret-key"] = "string", endpoint = "string",
  repositories = "string", ["http-timeout"] = "number", verbose = "flag",
}

local GLOBAL_USAGE = [[
global options (every command but sandbox; also before the command):
  --json                one JSON document on stdout (the job as the API gives it)
  --endpoint URL        the service (default $VOICECLONE_ENDPOINT, else the published one)
  --secret-id ID        default $VOICECLONE_SECRET_ID
  --secret-key KEY      default $VOICECLONE_SECRET_KEY; prefer the variable: arguments
                        are visible in ps. The key is never printed.
  --repositories TPL    where outputs are downloaded from (default $VOICECLONE_REPOSITORIES):
                        a URL template with {contentId} and {path}, e.g.
                        http://127.0.0.1:8600/repos/{contentId}/{path}
  --http-timeout S      seconds for one HTTP request (default 30)
  --verbose             one line on stderr per HTTP attempt: action, attempt,
                        status, seconds, request id, error kind (never a body
                        or a key)
  -h, --help            this help
]]

local function env(name)
  local value = os.getenv(name)
  if value ~= nil and value ~= "" then return value end
end

local NO_REPOSITORIES = "downloads need --repositories TEMPLATE or $VOICECLONE_REPOSITORIES "
  .. "(e.g. http://127.0.0.1:8600/repos/{contentId}/{path})"

local function repositories_of(o)
  return o.repositories or env "VOICECLONE_REPOSITORIES"
end

-- Exit status for an error table from the library.
local function status_for(err)
  if type(err) ~= "table" then return EXIT.FAILED end
  local kind = err.kind
  -- a file that cannot be written (download's dest) is a local failure
  if kind == "local" or (kind == "invalid" and err.field == "dest") then return EXIT.LOCAL end
  if kind == "invalid" then return EXIT.USAGE end
  if kind == "network" or kind == "timeout" or err.retryable then return EXIT.NETWORK end
  return EXIT.FAILED
end
cli.status_for = status_for

-- One readable line: the library's errors have __tostring; the command's
-- own are plain { kind =, message = } tables.
local function message_of(err)
  if type(err) ~= "table" then return tostring(err) end
  local meta = getmetatable(err)
  if meta and meta.__tostring then return tostring(err) end
  return tostring(err.message)
end

local function error_fields(err)
  if type(err) ~= "table" then return { kind = "error", message = tostring(err) } end
  return { kind = err.kind, message = message_of(err), field = err.field, status = err.status,
           code = err.code, request_id = err.request_id, retryable = err.retryable }
end

-- The job as the API shows it (the Job's data is the service's own); its
-- arrays stay JSON arrays when printed.
local function api_job(job)
  local data = job:totable()
  if type(data.outputs) == "table" then
    for _, output in ipairs(data.outputs) do
      if type(output) == "table" and type(output.inputSelectors) == "table" then
        local selectors = array()
        for i, n in ipairs(output.inputSelectors) do selectors[i] = n end
        output.inputSelectors = selectors
      end
    end
  end
  return data
end
cli.api_job = api_job

local function iso_time(ms)
  local n = tonumber(ms)
  if not n or n <= 0 then return "-" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(n / 1000))
end

local function output_of(job)
  local result = job:result()
  if not result then return nil end
  if result.modelName then return "model " .. result.modelName end
  if result.path then return (result.contentId and (result.contentId .. ":") or "") .. result.path end
end

-- One line per job: ID STATE [customId=..] [output]
local function job_line(job)
  local parts = { job.id, job:status() }
  if job.customId then parts[#parts + 1] = "customId=" .. job.customId end
  local output = output_of(job)
  if output then parts[#parts + 1] = output end
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

local function job_details(job)
  local lines = {
    ("id         %s"):format(job.id),
    ("state      %s"):format(job:status()),
  }
  if job.customId then lines[#lines + 1] = ("customId   %s"):format(job.customId) end
  if job.callback then lines[#lines + 1] = ("callback   %s"):format(job.callback) end
  local timing = job.timing or {}
  lines[#lines + 1] = ("created    %s"):format(iso_time(timing.createdAt))
  lines[#lines + 1] = ("started    %s"):format(iso_time(timing.startedAt))
  lines[#lines + 1] = ("completed  %s"):format(iso_time(timing.completedAt))
  for _, input in ipairs(job.inputs or {}) do
    lines[#lines + 1] = "input      " .. describe_input(input)
  end
  for _, output in ipairs(job.outputs or {}) do
    local vc = output.smartContentDescriptor and output.smartContentDescriptor.voiceCloning or {}
    local what = vc.type == 2 and ("train model %s"):format(tostring(vc.modelName))
      or ("speak with model %s into %s:%s"):format(tostring(vc.modelName), tostring(output.contentId),
        output.destination or "/")
    lines[#lines + 1] = "output     " .. what
  end
  local output = output_of(job)
  if output then lines[#lines + 1] = "result     " .. output end
  local reason = job:reason()
  if reason then lines[#lines + 1] = "reason     " .. reason end
  return table.concat(lines, "\n") .. "\n"
end

-- Reports err (stderr; and as {"error": ...} with --json) and returns its status.
function Context:fail(err, extra)
  local status = status_for(err)
  self:err(PROGRAM, " ", self.command, ": ", message_of(err), "\n")
  if self.json_output then
    local doc = { error = error_fields(err) }
    for k, v in pairs(extra or {}) do doc[k] = v end
    self:json(doc)
  end
  return status
end

-- A usage error: the message, a pointer to --help, status 2.
function Context:usage(message)
  self:err(PROGRAM, " ", self.command, ": ", message, "\n",
    "Run 'voiceclone ", self.command, " --help' for its options.\n")
  if self.json_output then self:json { error = { kind = "usage", message = message } } end
  return EXIT.USAGE
end

function Context:client(o, extra)
  local voiceclone = require "voiceclone"
  local settings = {
    secret_id = o["secret-id"], secret_key = o["secret-key"], endpoint = o.endpoint,
    timeout = o["http-timeout"],
  }
  local repositories = repositories_of(o)
  if repositories then settings.repositories = repositories end
  if o.verbose then
    settings.on_request = function(info)
      self:err(("%s: %s attempt %d: %s %.3f s%s%s\n"):format(PROGRAM, tostring(info.action),
        info.attempt, info.status and info.status ~= 0 and ("HTTP " .. info.status) or "no answer",
        info.duration or 0, info.request_id and (" request " .. info.request_id) or "",
        info.error_kind and (" error " .. info.error_kind) or ""))
    end
  end
  for k, v in pairs(extra or {}) do settings[k] = v end
  if o["http-timeout"] == 0 then return nil, self:usage("--http-timeout must be positive") end
  local client, err = voiceclone.new(settings)
  if not client then
    if err.field == "secret_id" or err.field == "secret_key" then
      return nil, self:usage("no credentials: set VOICECLONE_SECRET_ID and VOICECLONE_SECRET_KEY "
        .. "(or give --secret-id and --secret-key)")
    end
    return nil, self:fail(err)
  end
  return client
end

-- "CONTENT_ID:PATH" -> { contentId =, path = }
local function parse_source(text)
  local content_id, path = text:match("^([^:]+):(.+)$")
  if not content_id then return nil end
  return { contentId = content_id, path = path }
end

-- Waits for a job, printing each state as it comes (human output). Returns
-- the job or nil, err; `states` collects { state =, at = }.
local function wait_for(ctx, job, o, states)
  local function note(j)
    states[#states + 1] = { state = j:status(), at = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    if not ctx.json_output then ctx:out(os.date("%H:%M:%S "), j.id, " ", j:status(), "\n") end
  end
  note(job)
  if job.state == 3 then return job end
  if job:is_final() then return job:wait() end
  return job:wait { timeout = o.timeout or 600, interval = o.interval or 1, on_update = note }
end

local function download(job, dest)
  local file, err = job:download(dest)
  if not file then
    if type(err) == "table" and err.kind == "invalid" and err.field == "repositories" then
      err = { kind = "invalid", field = "repositories", message = NO_REPOSITORIES }
    end
    return nil, err
  end
  return file
end

----------------------------------------------------------------------------
-- Commands

local COMMANDS = {}
cli.COMMANDS = COMMANDS

local function with_global(options)
  for k, v in pairs(GLOBAL_OPTIONS) do options[k] = options[k] or v end
  return options
end

-- models -------------------------------------------------------------------

COMMANDS.models = {
  summary = "list the voice models (default and trained ones)",
  usage = [[
usage: voiceclone models [--json]

Lists every model the account can speak with: name and creation time.
--json: {"models": [{"name": .., "createdAt": ..}, ...], "total": N}
]],
  options = with_global {},
  run = function(ctx, o)
    local client, status = ctx:client(o)
    if not client then return status end
    local list = array()
    for model, err in client:models() do
      if model == false then return ctx:fail(err) end
      list[#list + 1] = { name = model.name, createdAt = model.createdAt }
    end
    if ctx.json_output then
      ctx:json { models = list, total = #list }
    elseif #list == 0 then
      ctx:out("no models\n")
    else
      for _, m in ipairs(list) do ctx:out(("%-40s %s\n"):format(m.name, iso_time(m.createdAt))) end
    end
    return EXIT.OK
  end,
}

-- say, convert, train ------------------------------------------------------

local JOB_OPTIONS_USAGE = [[
  --custom-id ID        your own id for the job (under 64 characters; see 'jobs')
  --callback URL        the service POSTs the finished job there ('callbacks' receives it)
  --job-timeout S       seconds the service gives the job before setting it ERROR
  --wait                wait until the job is final, printing each state
  --wait-timeout S      how long --wait waits (default 600)
  --poll-interval S     first pause between polls while waiting (default 1, growing to 10)
]]

local function common_job_options(options)
  options["custom-id"] = "string"
  options.callback = "string"
  options["job-timeout"] = "integer"
  options.wait = "flag"
  options["wait-timeout"] = "number"
  options["poll-interval"] = "number"
  return with_global(options)
end

-- Sends a job (submit(client) -> job, err), optionally waits and downloads,
-- and reports. Status 0 when sent (or COMPLETED with --wait).
local function run_job(ctx, o, submit, download_to)
  for _, key in ipairs { "wait-timeout", "poll-interval" } do
    if o[key] == 0 then return ctx:usage("--" .. key .. " must be positive") end
  end
  if download_to and not repositories_of(o) then return ctx:usage(NO_REPOSITORIES) end
  local client, status = ctx:client(o)
  if not client then return status end
  local job, err = submit(client)
  if not job then return ctx:fail(err) end
  if not (o.wait or download_to) then
    if ctx.json_output then ctx:json { job = api_job(job), status = job:status() }
    else ctx:out(job_line(job), "\n") end
    return EXIT.OK
  end
  local states = array()
  local done, werr = wait_for(ctx, job, { timeout = o["wait-timeout"], interval = o["poll-interval"] },
                              states)
  if not done then return ctx:fail(werr, { job = api_job(job), states = states }) end
  local file
  if download_to then
    local derr
    file, derr = download(job, download_to)
    if not file then return ctx:fail(derr, { job = api_job(job), states = states }) end
  end
  if ctx.json_output then
    ctx:json { job = api_job(job), status = job:status(), result = job:result(), states = states,
               file = file }
  else
    ctx:out(job_line(job), "\n")
    if file then ctx:out("downloaded ", file, "\n") end
  end
  return EXIT.OK
end

local function recording(ctx, o)
  if (o.url == nil) == (o.source == nil) then
    return nil, ctx:usage("give exactly one of --url and --source")
  end
  if o.url then return { url = o.url } end
  local source = parse_source(o.source)
  if not source then return nil, ctx:usage("--source needs CONTENT_ID:PATH (got " .. o.source .. ")") end
  return { source = source }
end

local function read_text(ctx, args, o)
  local text = o.text or args[1]
  if o.text and args[1] then return nil, ctx:usage("give the text once: as TEXT or with --text") end
  if not text then return nil, ctx:usage("no TEXT to say") end
  if text == "-" and not o.text then
    text = io.stdin:read("*a") or ""   -- "*a": 5.1 and 5.2 need the star
    text = text:gsub("\r?\n$", "")
  end
  return text
end

COMMANDS.say = {
  summary = "speak text in a model's voice (synthesize)",
  usage = [[
usage: voiceclone say TEXT --content-id ID [options]
       voiceclone say - ...          (the text from stdin)

Creates a text-to-speech job: TEXT (at most 512 characters) spoken in the
model's voice, written to the repository CONTENT_ID. Prints "JOB_ID STATE".

options:
  --text TEXT           the text, instead of the TEXT argument
  --model NAME          the voice (default "default")
  --content-id ID       the storage repository that receives the audio (required)
  --destination DIR     folder in that repository (default /)
  --prefix P            prefix of the output file name (under 20 characters)
]] .. JOB_OPTIONS_USAGE .. [[
  --download FILE       wait, then download the audio to FILE (needs --repositories)

]] .. GLOBAL_USAGE,
  options = common_job_options {
    text = "string", model = "string", ["content-id"] = "string", destination = "string",
    prefix = "string", download = "string",
  },
  max_args = 1,
  run = function(ctx, o, args)
    local text, status = read_text(ctx, args, o)
    if not text then return status end
    return run_job(ctx, o, function(client)
      return client:synthesize {
        text = text, model = o.model, content_id = o["content-id"], destination = o.destination,
        prefix = o.prefix, custom_id = o["custom-id"], callback = o.callback, timeout = o["job-timeout"],
      }
    end, o.download)
  end,
}

COMMANDS.convert = {
  summary = "convert a recording into a model's voice",
  usage = [[
usage: voiceclone convert (--url URL | --source CONTENT_ID:PATH) --content-id ID [--model NAME] [options]

Creates a conversion job: the recording, spoken again in the model's voice,
written to the repository CONTENT_ID. Prints "JOB_ID STATE".

options:
  --url URL             the recording, by URL
  --source C:P          the recording, as file P in storage repository C
  --model NAME          the voice (default "default")
  --content-id ID       the storage repository that receives the audio (required)
  --destination DIR     folder in that repository (default /)
  --prefix P            prefix of the output file name (under 20 characters)
]] .. JOB_OPTIONS_USAGE .. [[
  --download FILE       wait, then download the audio to FILE (needs --repositories)

]] .. GLOBAL_USAGE,
  options = common_job_options {
    url = "string", source = "string", model = "string", ["content-id"] = "string",
    destination = "string", prefix = "string", download = "string",
  },
  run = function(ctx, o)
    local input, status = recording(ctx, o)
    if not input then return status end
    return run_job(ctx, o, function(client)
      return client:convert {
        url = input.url, source = input.source, model = o.model, content_id = o["content-id"],
        destination = o.destination, prefix = o.prefix, custom_id = o["custom-id"],
        callback = o.callback, timeout = o["job-timeout"],
      }
    end, o.download)
  end,
}

COMMANDS.train = {
  summary = "train a voice model from a recording",
  usage = [[
usage: voiceclone train (--url URL | --source CONTENT_ID:PATH) --model NAME [options]

Creates a training job: a new model NAME (letters, digits and _, unique)
with the voice of the recording. Prints "JOB_ID STATE".

options:
  --url URL             the recording, by URL
  --source C:P          the recording, as file P in storage repository C
  --model NAME          the new model's name (required)
  --epochs N            training epochs, 1 to 50 (default 30)
]] .. JOB_OPTIONS_USAGE .. "\n" .. GLOBAL_USAGE,
  options = common_job_options {
    url = "string", source = "string", model = "string", epochs = "integer",
  },
  run = function(ctx, o)
    local input, status = recording(ctx, o)
    if not input then return status end
    if not o.model then return ctx:usage("--model NAME is required") end
    return run_job(ctx, o, function(client)
      return client:train {
        url = input.url, source = input.source, model = o.model, epochs = o.epochs,
        custom_id = o["custom-id"], callback = o.callback, timeout = o["job-timeout"],
      }
    end)
  end,
}

-- job, jobs, wait, download -----------------------------------------------

COMMANDS.job = {
  summary = "show a job (GetJob)",
  usage = [[
usage: voiceclone job ID [--json]

Shows the job: state, times, inputs, outputs, result (or why it failed).
--json: {"job": Job, "status": "COMPLETED", "result": {...}}

]] .. GLOBAL_USAGE,
  options = with_global {},
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    local client, status = ctx:client(o)
    if not client then return status end
    local job, err = client:get_job(args[1])
    if not job then return ctx:fail(err) end
    if ctx.json_output then
      ctx:json { job = api_job(job), status = job:status(), result = job:result() }
    else
      ctx:out(job_details(job))
    end
    return EXIT.OK
  end,
}

COMMANDS.jobs = {
  summary = "list the jobs that carry a customId (ListJobs)",
  usage = [[
usage: voiceclone jobs --custom-id ID [--json]

Lists the jobs created with that customId (several jobs may share one), one
line each: "JOB_ID STATE customId=.. [output]".
--json: {"jobs": [Job, ...], "total": N}

]] .. GLOBAL_USAGE,
  options = with_global { ["custom-id"] = "string" },
  run = function(ctx, o)
    if not o["custom-id"] then return ctx:usage("--custom-id ID is required") end
    local client, status = ctx:client(o)
    if not client then return status end
    local jobs, total = client:list_jobs(o["custom-id"])
    if not jobs then return ctx:fail(total) end
    if ctx.json_output then
      local list = array()
      for i, job in ipairs(jobs) do list[i] = api_job(job) end
      ctx:json { jobs = list, total = total }
    else
      for _, job in ipairs(jobs) do ctx:out(job_line(job), "\n") end
      if #jobs == 0 then ctx:out("no jobs with customId ", o["custom-id"], "\n") end
    end
    return EXIT.OK
  end,
}

COMMANDS.wait = {
  summary = "wait until a job is final, printing its state changes",
  usage = [[
usage: voiceclone wait ID [--timeout S] [--interval S] [--json]

Polls the job until it is final, printing "HH:MM:SS JOB_ID STATE" as its
state changes. Exit status: 0 COMPLETED, 1 ERROR or CANCELED, 3 not final
after --timeout (or the network failed).

options:
  --timeout S           give up after S seconds (default 600)
  --interval S          first pause between polls (default 1, growing to 10)
--json: {"job": Job, "status": .., "states": [{"state": .., "at": ..}, ...]}

]] .. GLOBAL_USAGE,
  options = with_global { timeout = "number", interval = "number" },
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    if o.timeout == 0 or o.interval == 0 then return ctx:usage("--timeout and --interval must be positive") end
    local client, status = ctx:client(o)
    if not client then return status end
    local job, err = client:get_job(args[1])
    if not job then return ctx:fail(err) end
    local states = array()
    local done, werr = wait_for(ctx, job, o, states)
    if not done then
      return ctx:fail(werr, { job = api_job(job), status = job:status(), states = states })
    end
    if ctx.json_output then
      ctx:json { job = api_job(job), status = job:status(), result = job:result(), states = states }
    else
      local output = output_of(job)
      if output then ctx:out("result ", output, "\n") end
    end
    return EXIT.OK
  end,
}

COMMANDS.download = {
  summary = "download a COMPLETED job's audio",
  usage = [[
usage: voiceclone download ID --out FILE [--wait] [--json]

Downloads the job's output into FILE (written under a temporary name and
renamed when complete). The repositories' address comes from --repositories
or $VOICECLONE_REPOSITORIES. A job not COMPLETED yet is an error, unless
--wait is given.

options:
  --out FILE            where to write the audio (required)
  --wait                wait for the job first
  --timeout S           how long --wait waits (default 600)
--json: {"job": Job, "file": FILE}

]] .. GLOBAL_USAGE,
  options = with_global { out = "string", wait = "flag", timeout = "number" },
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    if not o.out then return ctx:usage("--out FILE is required") end
    if not repositories_of(o) then return ctx:usage(NO_REPOSITORIES) end
    local client, status = ctx:client(o)
    if not client then return status end
    local job, err = client:get_job(args[1])
    if not job then return ctx:fail(err) end
    if job.state ~= 3 then
      if not o.wait or job:is_final() then
        local message = ("job %s is %s, not COMPLETED%s"):format(job.id, job:status(),
          job:is_final() and "" or " (yet: add --wait)")
        return ctx:fail({ kind = "job", message = message }, { job = api_job(job) })
      end
      local done, werr = job:wait { timeout = o.timeout or 600 }
      if not done then return ctx:fail(werr, { job = api_job(job) }) end
    end
    local file, derr = download(job, o.out)
    if not file then return ctx:fail(derr, { job = api_job(job) }) end
    if ctx.json_output then ctx:json { job = api_job(job), status = job:status(), file = file }
    else ctx:out(file, "\n") end
    return EXIT.OK
  end,
}

-- batch --------------------------------------------------------------------

local function stderr_is_terminal()
  local ok = compat.execute("test -t 2")
  return ok == true
end

COMMANDS.batch = {
  summary = "voice every line of a CSV or JSON Lines file, resumably",
  usage = [[
usage: voiceclone batch LINES --content-id ID [options]

Speaks every line of LINES: CSV with a header naming the columns id and text
(RFC 4180 quoting: "a, ""quoted"" text" may hold commas, quotes, newlines),
or JSON Lines ({"id": .., "text": ..} a line); the format comes from the
extension (.csv, .jsonl/.ndjson/.json) or else the content. Ids are unique.

Each line's job carries a customId made from the batch id and the line id
("vcb-<hash>-<line id>"). A journal (JSON Lines, fsynced per record) records
line -> customId -> job -> state. Stopped at any moment (even kill -9) and
run again, it asks the journal and the service (ListJobs by customId) before
creating anything: no line is voiced twice, none is lost. Lines whose jobs
all failed are tried again on the next run.

options:
  --model NAME          the voice (default "default")
  --content-id ID       the storage repository that receives the audio (required)
  --destination DIR     folder in that repository (default /)
  --prefix P            prefix of the output file names
  --concurrency N       lines in flight at once (default 16)
  --journal PATH        the journal (default LINES.journal); one run at a time
                        uses it: another run of the same batch refuses at once
  --wait-for-journal    wait for that other run to end instead
  --download DIR        download each line's audio to DIR/<line id>.wav
                        (needs --repositories; an id that is no safe file
                        name uses the hash in its customId)
  --batch-id ID         the batch's id (default: a hash of LINES' absolute
                        path, the model and the content id)
  --format F            csv or jsonl (default: detected)
  --poll-interval S     first pause between polls of a job (default 1)
  --wait-timeout S      how long one line's job may take (default 3600)
  --progress MODE       auto (a live bar when stderr is a terminal, else a
                        plain line every 5 s), bar, plain or none; on stderr

Ends with a summary on stdout; failed lines are listed with the reason.
Exit status: 0 every line COMPLETED, 1 a line failed, 3 every failure was a
network failure or timeout (run again), 2 bad options or LINES, or another
run holds the journal, 4 the journal or a download directory cannot be
written.
--json: {"batch": .., "total": N, "completed": N, "failed": N, "lines": [...]}

]] .. GLOBAL_USAGE,
  options = with_global {
    model = "string", ["content-id"] = "string", destination = "string", prefix = "string",
    concurrency = "integer", journal = "string", download = "string", ["batch-id"] = "string",
    format = "string", ["poll-interval"] = "number", ["wait-timeout"] = "number",
    progress = "string", ["wait-for-journal"] = "flag",
  },
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    local batch = require "voiceclone.batch"
    local path = args[1]
    if not o["content-id"] then return ctx:usage("--content-id ID is required") end
    local concurrency = o.concurrency or batch.DEFAULT_CONCURRENCY
    if concurrency < 1 or concurrency > batch.MAX_CONCURRENCY then
      return ctx:usage(("--concurrency must be 1 to %d"):format(batch.MAX_CONCURRENCY))
    end
    if o.format and o.format ~= "csv" and o.format ~= "jsonl" then
      return ctx:usage("--format must be csv or jsonl")
    end
    for _, key in ipairs { "poll-interval", "wait-timeout" } do
      if o[key] == 0 then return ctx:usage("--" .. key .. " must be positive") end
    end
    if o.download and not repositories_of(o) then return ctx:usage(NO_REPOSITORIES) end
    local mode = o.progress or "auto"
    if mode == "auto" then mode = stderr_is_terminal() and "bar" or "plain" end
    if mode ~= "bar" and mode ~= "plain" and mode ~= "none" then
      return ctx:usage("--progress must be auto, bar, plain or none")
    end
    local lines, lerr = batch.read_lines(path, o.format)
    if not lines then
      local f = io.open(path, "rb")
      if f then f:close() end
      return ctx:usage((f and "" or "cannot read ") .. lerr)
    end
    local client, status = ctx:client(o, { max_in_flight = concurrency })
    if not client then return status end

    local progress
    if mode ~= "none" then
      progress = batch.progress_printer { mode = mode, write = function(s) ctx:err(s) end }
    end
    local summary, err = batch.run {
      client = client, lines = lines, model = o.model, content_id = o["content-id"],
      destination = o.destination, prefix = o.prefix, concurrency = concurrency,
      journal = o.journal or (path .. ".journal"), download = o.download,
      batch_id = o["batch-id"] or batch.default_id(path, o.model, o["content-id"]),
      poll_interval = o["poll-interval"], wait_timeout = o["wait-timeout"],
      on_progress = progress, wait_for_journal = o["wait-for-journal"] or nil,
    }
    if not summary then
      if err.kind == "locked" then
        return ctx:usage(tostring(err.message) .. ": another run of this batch is using it "
          .. "(--wait-for-journal waits for it)")
      end
      if err.field == "journal" or err.field == "download" then
        err = { kind = "local", message = tostring(err) }
      end
      return ctx:fail(err)
    end
    local failed, only_network = {}, true
    for _, line in ipairs(summary.lines) do
      if line.status ~= "completed" then
        failed[#failed + 1] = line
        local kind = line.error and line.error.kind
        if kind ~= "network" and kind ~= "timeout" then only_network = false end
      end
    end
    if ctx.json_output then
      local list = array()
      for i, line in ipairs(summary.lines) do
        list[i] = { id = line.id, customId = line.custom_id, status = line.status, job = line.job_id,
                    state = line.state, output = line.output, file = line.file, error = line.error }
      end
      ctx:json {
        batch = summary.batch_id, total = summary.total, completed = summary.completed,
        failed = summary.failed, resumed = summary.resumed, created = summary.created,
        adopted = summary.adopted, duplicates = summary.duplicates, elapsed = summary.elapsed,
        journal = summary.journal, lines = list,
      }
    else
      ctx:out(("batch %s: %d lines, %d completed, %d failed (%d done before this run, "
        .. "%d jobs created, %d found on the service) in %.1f s\n"):format(summary.batch_id,
        summary.total, summary.completed, summary.failed, summary.resumed, summary.created,
        summary.adopted, summary.elapsed))
      if summary.duplicates > 0 then
        ctx:out(("warning: %d lines have more than one COMPLETED job on the service\n")
          :format(summary.duplicates))
      end
      for _, line in ipairs(failed) do
        ctx:out(("failed: line %s (customId %s%s): %s\n"):format(line.id, line.custom_id,
          line.job_id and (", job " .. line.job_id) or "",
          line.error and line.error.message or line.state or "?"))
      end
    end
    if #failed == 0 then return EXIT.OK end
    return only_network and EXIT.NETWORK or EXIT.FAILED
  end,
}

-- callbacks ----------------------------------------------------------------

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  if ok then
    local core = require "voiceclone.core"
    if core.fsync then ok, werr = core.fsync(f) else ok, werr = f:flush() end
  end
  f:close()
  if not ok then
    os.remove(tmp)
    return nil, werr
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

COMMANDS.callbacks = {
  summary = "receive the service's callbacks; act on each confirmed job",
  usage = [[
usage: voiceclone callbacks [--listen HOST:PORT] [--exec CMD] [--out DIR] [options]

Listens for the jobs the service POSTs to a job's callback URL. A callback
is not signed: each is confirmed with GetJob, and only the confirmed, final
job is acted on, once. Prints "listening on URL" when ready, then one line
per job ("JOB_ID STATE [output]"); with --json, one JSON document per line
({"listening": URL}, then {"job": Job, "status": .., "file": ..}).

options:
  --listen HOST:PORT    where to listen (default 127.0.0.1:0, port 0: a free one,
                        printed); 0.0.0.0:PORT to be reachable from other machines,
                        such as the service
  --host H, --port N    the same, separately
  --out DIR             write DIR/<job id>.json, the confirmed job as GetJob gives it
  --exec CMD            run CMD (with sh -c) for each job, the job given as
                        arguments ($1 the id, $2 the state) and in the environment
                        (VOICECLONE_JOB_ID, VOICECLONE_JOB_STATE, VOICECLONE_JOB_FILE
                        with --out); nothing of the job is ever put into CMD itself.
                        One at a time: the next job waits for CMD to end; a CMD
                        that fails is reported on stderr (exit status 1 at the end)
  --once                stop after the first job
  --max-jobs N          stop after N jobs
  --duration S          stop after S seconds
  --max-body N          largest callback body accepted, in bytes (default 1 MiB)

]] .. GLOBAL_USAGE,
  options = with_global {
    listen = "string", host = "string", port = "integer", out = "string", exec = "string",
    once = "flag",
    ["max-jobs"] = "integer", duration = "number", ["max-body"] = "integer",
  },
  run = function(ctx, o)
    if o.listen then
      local host, port = o.listen:match("^%[?([^%]]*)%]?:(%d+)$")
      if not host then return ctx:usage("--listen takes HOST:PORT, e.g. 127.0.0.1:8700") end
      o.host, o.port = host ~= "" and host or nil, tonumber(port)
    end
    if o.port and o.port > 65535 then return ctx:usage("--port must be 0..65535") end
    if o.duration == 0 then return ctx:usage("--duration must be positive") end
    if o["max-jobs"] == 0 then return ctx:usage("--max-jobs must be positive") end
    local ok_callbacks, callbacks = pcall(require, "voiceclone.callbacks")
    if not ok_callbacks then
      return ctx:fail({ kind = "invalid", message = "voiceclone.callbacks is not available: "
        .. tostring(callbacks) })
    end
    if o.out and not require("voiceclone.fs").mkdir_p(o.out) then
      return ctx:fail { kind = "local", message = "cannot create the directory " .. o.out }
    end
    local client, status = ctx:client(o)
    if not client then return status end
    local failures = 0

    local function on_job(job)
      local id, state = job.id, job:status()
      local file
      if not id:match("^[%w_.-]+$") or id:sub(1, 1) == "." then
        ctx:err(PROGRAM, " callbacks: job id ", ("%q"):format(id), " is not safe as a file name or",
          " argument: not acted on\n")
        failures = failures + 1
        return
      end
      if o.out then
        file = o.out:gsub("/+$", "") .. "/" .. id .. ".json"
        local ok, err = write_atomic(file, encode(api_job(job)) .. "\n")
        if not ok then
          ctx:err(PROGRAM, " callbacks: cannot write ", file, ": ", tostring(err), "\n")
          failures = failures + 1
          file = nil
        end
      end
      if ctx.json_output then
        ctx:json { job = api_job(job), status = state, result = job:result(), file = file }
      else
        ctx:out(job_line(job), "\n")
      end
      if o.exec then
        -- CMD is the user's own; the job's id and state go in as quoted
        -- arguments and variables, never into the command text.
        local command = ("env VOICECLONE_JOB_ID=%s VOICECLONE_JOB_STATE=%s%s sh -c %s voiceclone-callback %s %s")
          :format(shell_quote(id), shell_quote(state),
            file and (" VOICECLONE_JOB_FILE=" .. shell_quote(file)) or "",
            shell_quote(o.exec), shell_quote(id), shell_quote(state))
        local ok, how, code = compat.execute(command)
        if not ok then
          failures = failures + 1
          ctx:err(PROGRAM, " callbacks: --exec for job ", id, " ended with ", tostring(how), " ",
            tostring(code), "\n")
        end
      end
    end

    -- Ctrl-C stops the listener (through libuv's signal watcher: Lua's own
    -- SIGINT hook would fire inside a luv callback and end the process there).
    local uv = require "luv"
    local sigint, listener, interrupted = uv.new_signal(), nil, false
    sigint:start("sigint", function()
      interrupted = true
      if listener then listener.stop() end
    end)
    local count, why = callbacks.listen {
      client = client, host = o.host, port = o.port, max_body = o["max-body"], once = o.once or nil,
      max_jobs = o["max-jobs"], duration = o.duration, on_job = on_job,
      on_listen = function(url, server)
        listener = server
        if interrupted then server.stop() end
        if ctx.json_output then ctx:json { listening = url } else ctx:out("listening on ", url, "\n") end
      end,
    }
    sigint:close()
    uv.run("nowait")
    if interrupted then
      ctx:err(PROGRAM, " callbacks: interrupted\n")
      return 130
    end
    if not count then return ctx:fail(why) end
    if not ctx.json_output then
      ctx:err(PROGRAM, " callbacks: stopped (", tostring(why), ") after ", count, " jobs\n")
    end
    return failures > 0 and EXIT.FAILED or EXIT.OK
  end,
}

----------------------------------------------------------------------------
-- main

local function main_usage(commands)
  local names = {}
  for name in pairs(commands) do names[#names + 1] = name end
  table.sort(names)
  local lines = { "usage: voiceclone <command> [options]", "", "commands:" }
  for _, name in ipairs(names) do
    lines[#lines + 1] = string.format("  %-12s %s", name, commands[name].summary)
  end
  return table.concat(lines, "\n") .. [[


Run 'voiceclone <command> --help' for a command's options.

Credentials and endpoint come from the environment (VOICECLONE_SECRET_ID,
VOICECLONE_SECRET_KEY, VOICECLONE_ENDPOINT, VOICECLONE_REPOSITORIES) or from
the global options below; the secret key is never printed.

exit status:
  0  done (every job or line COMPLETED)
  1  failed: a job ended ERROR or CANCELED, a batch line failed, or the
     service refused the request
  2  usage: a bad command line, no credentials, or a request breaking a
     documented rule (nothing was sent)
  3  network failure or timeout (or a retryable service error): try again
  4  a local file could not be read or written

]] .. GLOBAL_USAGE
end

--- Runs the command line args (arg); extra commands (the sandbox) may be
-- given as name = { summary =, usage =, options =, run = fn(options) }.
-- Returns the exit status.
function cli.main(args, extra)
  local commands = {}
  for name, command in pairs(COMMANDS) do commands[name] = command end
  for name, command in pairs(extra or {}) do commands[name] = command end
  local ctx = setmetatable({ secrets = secrets_in(args), forms = {}, command = "" }, Context)

  -- global options may come before the command
  local i, pre = 1, {}
  while args[i] and args[i]:sub(1, 2) == "--" and args[i] ~= "--help" and args[i] ~= "--"
    and args[i] ~= "--version" do
    local name = args[i]:match("^%-%-([%w-]+)")
    pre[#pre + 1] = args[i]
    if GLOBAL_OPTIONS[name] and GLOBAL_OPTIONS[name] ~= "flag" and not args[i]:find("=", 1, true) then
      i = i + 1
      pre[#pre + 1] = args[i]
    end
    i = i + 1
  end
  local name = args[i]
  if name == "--version" then
    ctx:out(PROGRAM, " ", require("voiceclone")._VERSION, "\n")
    return EXIT.OK
  end
  if not name or name == "-h" or name == "--help" or name == "help" then
    local topic = name == "help" and commands[args[i + 1] or ""]
    ctx:out(topic and topic.usage or main_usage(commands))
    return name and EXIT.OK or EXIT.USAGE
  end
  local command = commands[name]
  if not command then
    ctx:err(PROGRAM, ": unknown command ", name, "\n", main_usage(commands))
    return EXIT.USAGE
  end
  ctx.command = name
  local rest = pre
  for j = i + 1, #args do rest[#rest + 1] = args[j] end
  for _, a in ipairs(rest) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      ctx:out(command.usage)
      return EXIT.OK
    end
  end
  local builtin = not (extra and extra[name])
  if builtin then   -- a usage error found while parsing is JSON too under --json
    for _, a in ipairs(rest) do
      if a == "--" then break end
      if a == "--json" then ctx.json_output = true end
    end
  end
  local options, positional = parse(rest, command.options, command.max_args)
  if not options then
    if builtin then return ctx:usage(positional) end
    ctx:err(PROGRAM, " ", name, ": ", positional, "\n", command.usage)
    return EXIT.USAGE
  end
  if #positional < (command.min_args or 0) then
    return ctx:usage("missing argument: " .. command.usage:match("^usage: (%C+)"))
  end
  ctx.json_output = builtin and options.json
  if not builtin then return command.run(options, positional) end
  local ok, status = compat.xpcall(command.run, debug.traceback, ctx, options, positional)
  if not ok then
    if tostring(status):find("interrupted!", 1, true) then   -- Ctrl-C (lua's own SIGINT hook)
      ctx:err(PROGRAM, " ", name, ": interrupted\n")
      return 130
    end
    ctx:err(PROGRAM, " ", name, ": internal error: ", status, "\n")
    return EXIT.FAILED
  end
  return status
end

return cli
