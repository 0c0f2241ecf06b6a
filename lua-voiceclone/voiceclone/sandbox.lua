-- voiceclone.sandbox: a local emulator of the voice cloning service
-- (shared/voice-cloning-api.md), for the demo, the specs, benchmarks and
-- offline development. Pure Lua over luv and lua-cjson; the audio is
-- real, made by espeak-ng and sox in the background (or, with audio = "tone",
-- for load tests: a short tone at the model's pitch, written from Lua).
--
--   local sandbox = require "voiceclone.sandbox"
--   local server = assert(sandbox.new{ port = 0, data = "/tmp/vc" })
--   assert(server:start())
--   print(server.url)
--   server:run()            -- or server:step(max_wait) from a loop of your own
--   server:close()
--
-- Parts: voiceclone.httpd (event loop, HTTP), sandbox/validate.lua (request
-- rules), sandbox/jobs.lua (jobs, models, persistence, callbacks),
-- sandbox/work.lua (audio commands), sandbox/faults.lua (fault injection),
-- sandbox/gateway.lua (the API gateway's key-pair signature, with
-- gateway_keys), sandbox/util.lua (helpers).
local util = require "voiceclone.sandbox.util"
local httpd = require "voiceclone.httpd"
local jobs = require "voiceclone.sandbox.jobs"
local validate = require "voiceclone.sandbox.validate"
local faults = require "voiceclone.sandbox.faults"
local gateway = require "voiceclone.sandbox.gateway"
local compat = require "voiceclone.compat"

local utf8 = compat.utf8

local sandbox = {}

local Sandbox = {}
Sandbox.__index = Sandbox
Sandbox.__name = "voiceclone.Sandbox"

sandbox.DEFAULT_HOST = "127.0.0.1"
sandbox.DEFAULT_PORT = 8600
sandbox.DEFAULT_DATA = "./sandbox-data"
sandbox.DEFAULT_SECRET_ID = "sandbox-id"
sandbox.DEFAULT_SECRET_KEY = "sandbox-key"

local REQUEST_LOG_SIZE = 1000
local FAULT_LOG_SIZE = 10000        -- /_sandbox/faults keeps the latest this many
local LOGGED_BODY_MAX = 64 * 1024   -- the request log keeps at most this much of a body

-- Each action: the path that serves it, and the names of its request and
-- response members.
local ACTIONS = {
  CreateJob = { path = "/release/job", request = "createJobRequest", response = "createJobResponse" },
  GetJob = { path = "/release/job", request = "getJobRequest", response = "getJobResponse" },
  ListJobs = { path = "/release/job", request = "listJobsRequest", response = "listJobsResponse" },
  ListModels = { path = "/release/music_model", request = "listModelsRequest",
                 response = "listModelsResponse", optional = true },
}
local API_PATHS = { ["/release/job"] = true, ["/release/music_model"] = true }

local CONTENT_TYPES = {
  wav = "audio/wav", json = "application/json", txt = "text/plain; charset=utf-8",
  mp3 = "audio/mpeg", flac = "audio/flac", ogg = "audio/ogg",
}

----------------------------------------------------------------------------
-- Options

local OPTION_CHECKS = {
  host = function(v) return type(v) == "string" and v ~= "" end,
  port = function(v) return compat.math_type(v) == "integer" and v >= 0 and v <= 65535 end,
  data = function(v) return type(v) == "string" and v ~= "" end,
  latency_ms = function(v) return type(v) == "number" and v >= 0 end,
  queue_seconds = function(v) return type(v) == "number" and v >= 0 end,
  work_seconds = function(v) return type(v) == "number" and v >= 0 end,
  secret_id = function(v) return type(v) == "string" and v ~= "" end,
  secret_key = function(v) return type(v) == "string" and v ~= "" end,
  any_credentials = function(v) return type(v) == "boolean" end,
  audio = function(v) return v == "speech" or v == "tone" end,
  log = function(v) return type(v) == "function" end,
  faults = function(v) return type(v) == "string" or type(v) == "table" end,
  fault_seed = function(v) return compat.math_type(v) == "integer" and v >= 0 end,
  slow_seconds = function(v) return type(v) == "number" and v >= 0 end,
  fault_log = function(v) return type(v) == "function" end,
  gateway_keys = function(v)
    if type(v) ~= "table" then return false end
    for id, key in pairs(v) do
      if type(id) ~= "string" or id == "" or type(key) ~= "string" or key == "" then return false end
    end
    return true
  end,
}

local function env_or(name, default)
  local v = os.getenv(name)
  if v and v ~= "" then return v end
  return default
end

-- Returns a sandbox (not yet listening) or nil, err for bad options.
function sandbox.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then return nil, "sandbox.new: options must be a table" end
  for k, v in pairs(opts) do
    local check = OPTION_CHECKS[k]
    if not check then return nil, "sandbox.new: unknown option " .. tostring(k) end
    if not check(v) then
      return nil, string.format("sandbox.new: bad value for option %s", k)
    end
  end
  local rates = opts.faults or {}
  if type(rates) == "string" then
    local err
    rates, err = faults.parse(rates)
    if not rates then return nil, "sandbox.new: " .. err end
  end
  local fault_seed = opts.fault_seed or util.random_int(faults.MAX_SEED)
  -- Behind a gateway: its signature is checked with the C core's HMAC.
  local gateway_keys, hmac = nil, nil
  if opts.gateway_keys and next(opts.gateway_keys) then
    local ok, core = pcall(require, "voiceclone.core")
    if not ok then
      return nil, "sandbox.new: gateway_keys need the C core (voiceclone.core): " .. tostring(core)
    end
    gateway_keys, hmac = opts.gateway_keys, core.hmac_sha1_base64
  end
  local self = setmetatable({
    host = opts.host or sandbox.DEFAULT_HOST,
    port = opts.port or sandbox.DEFAULT_PORT,
    data = util.absolute(opts.data or sandbox.DEFAULT_DATA),
    latency = (opts.latency_ms or 0) / 1000,
    queue_seconds = opts.queue_seconds or 0.2,
    work_seconds = opts.work_seconds or 0.5,
    secret_id = opts.secret_id or env_or("VOICECLONE_SECRET_ID", sandbox.DEFAULT_SECRET_ID),
    secret_key = opts.secret_key or env_or("VOICECLONE_SECRET_KEY", sandbox.DEFAULT_SECRET_KEY),
    any_credentials = opts.any_credentials or false,
    audio = opts.audio or "speech",
    log = opts.log,
    requests = {},     -- ring of { seq, json } for /_sandbox/requests
    seq = 0,
    fault_rates = rates,
    fault_seed = fault_seed,
    injector = faults.new(rates, fault_seed),
    slow_seconds = opts.slow_seconds or faults.DEFAULT_SLOW_SECONDS,
    fault_log = opts.fault_log or opts.log,
    fault_counts = {},
    fault_entries = {},  -- ring of encoded { seq, action, fault } for /_sandbox/faults
    gateway_keys = gateway_keys,   -- { [id] = key }, or nil: requests need no signature
    hmac = hmac,
    pid = util.pid(),
  }, Sandbox)
  for _, kind in ipairs(faults.KINDS) do self.fault_counts[kind] = 0 end
  self.data = self.data:gsub("/+$", "")
  if self.data == "" then self.data = "/" end
  return self
end

----------------------------------------------------------------------------
-- Responses

local function error_body(_status, code, message)
  return util.encode({ requestId = util.uuid(), error = { code = code, message = message } })
end

local function json_response(status, body, note, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  return { status = status, body = body, note = note, headers = headers }
end

function Sandbox:_error(status, code, message, note, headers)
  return json_response(status, error_body(status, code, self:_mask_text(message)), note, headers)
end

-- {"requestId":..,"<member>":<inner JSON>}
local function success(member, inner_json, note)
  return json_response(200, '{"requestId":' .. util.encode(util.uuid()) .. ',"'
    .. member .. '":' .. inner_json .. "}", note)
end

----------------------------------------------------------------------------
-- Hiding the secret key

-- Plain occurrences of the configured key (and of `extra`, the key a
-- request sent) in free text. A key shorter than MASK_MIN_LENGTH would match
-- ordinary words: it is hidden only where it is a whole JSON string (below).
local MASK_MIN_LENGTH = 6

function Sandbox:_mask_text(text, extra)
  local secrets = { self.secret_key, extra or false }
  for _, key in pairs(self.gateway_keys or {}) do secrets[#secrets + 1] = key end
  for _, secret in ipairs(secrets) do
    if type(secret) == "string" and #secret >= MASK_MIN_LENGTH then
      text = util.replace_plain(text, secret, "***")
    end
  end
  return text
end

-- In raw JSON text, replace by "***" every string token that is the value of
-- a "secretKey" member or equals a secret, then mask free-text occurrences.
-- Works token by token, so escapes in the raw text do not hide the key.
function Sandbox:_mask_json(text, body_key)
  local secrets = { [self.secret_key] = true }
  if type(body_key) == "string" and body_key ~= "" then secrets[body_key] = true end
  local out, pos, i = {}, 1, 1
  local after_secret_key = false
  while true do
    local s = text:find('"', i, true)
    if not s then break end
    local j, e = s + 1, nil
    while true do
      local k = text:find('["\\]', j)
      if not k then break end
      if text:byte(k) == 92 then j = k + 2 else e = k; break end   -- 92 = backslash
    end
    if not e then break end
    local value = util.json.decode(text:sub(s, e))
    if text:find("^%s*:", e + 1) then
      after_secret_key = (value == "secretKey")
    else
      if after_secret_key or (value ~= nil and secrets[value]) then
        out[#out + 1] = text:sub(pos, s - 1)
        out[#out + 1] = '"***"'
        pos = e + 1
      end
      after_secret_key = false
    end
    i = e + 1
  end
  out[#out + 1] = text:sub(pos)
  return self:_mask_text(table.concat(out), body_key)
end

-- Keep a masked copy of an API request for /_sandbox/requests.
function Sandbox:_record(req, body)
  local key = type(body) == "table" and body.secretKey or nil
  local headers = {}
  for name, value in pairs(req.headers) do headers[name] = self:_mask_text(value, key) end
  local text = req.body
  local truncated = nil
  if #text > LOGGED_BODY_MAX then
    text, truncated = text:sub(1, LOGGED_BODY_MAX), true
  end
  self.seq = self.seq + 1
  local entry = {
    seq = self.seq, method = req.method, path = req.path, connection = req.connection,
    headers = headers, body = self:_mask_json(text, key), truncated = truncated,
  }
  self.requests[#self.requests + 1] = { seq = self.seq, json = util.encode(entry) }
  if #self.requests > REQUEST_LOG_SIZE then table.remove(self.requests, 1) end
end

----------------------------------------------------------------------------
-- The API

local function encode_jobs(store, list)
  local items = {}
  for i, job in ipairs(list) do items[i] = store:encode(job) end
  return util.encode_array(items)
end

function Sandbox:_create_job(request, note)
  local req, err = validate.create_job(request)
  if not req then return self:_error(400, "InvalidParameter", err, note) end
  local job = self.store:create(req)
  return success("createJobResponse", '{"job":' .. self.store:encode(job) .. "}", note)
end

function Sandbox:_get_job(request, note)
  local req, err = validate.get_job(request)
  if not req then return self:_error(400, "InvalidParameter", err, note) end
  local job = self.store:get(req.id)
  if not job then
    return self:_error(404, "ResourceNotFound", string.format("no job with id %q", req.id), note)
  end
  return success("getJobResponse", '{"job":' .. self.store:encode(job) .. "}", note)
end

function Sandbox:_list_jobs(request, note)
  local req, err = validate.list_jobs(request)
  if not req then return self:_error(400, "InvalidParameter", err, note) end
  local list = self.store:list_by_custom_id(req.customId)
  return success("listJobsResponse", '{"jobs":' .. encode_jobs(self.store, list)
    .. ',"total":' .. #list .. "}", note)
end

function Sandbox:_list_models(request, note)
  local req, err = validate.list_models(request)
  if not req then return self:_error(400, "InvalidParameter", err, note) end
  local total, page = self.store:list_models(req.offset, req.limit)
  local items = {}
  for i, m in ipairs(page) do items[i] = util.encode(m) end
  return success("listModelsResponse", '{"total":' .. total .. ',"models":'
    .. util.encode_array(items) .. "}", note)
end

local HANDLERS = {
  CreateJob = Sandbox._create_job, GetJob = Sandbox._get_job,
  ListJobs = Sandbox._list_jobs, ListModels = Sandbox._list_models,
}

function Sandbox:_api(req)
  if req.method ~= "POST" then
    return self:_error(405, "MethodNotAllowed", req.path .. " takes POST only", nil, { Allow = "POST" })
  end
  local body, derr = util.decode(req.body)
  self:_record(req, body)
  -- the gateway refuses before the service sees anything
  local refused = self:_gateway_refusal(req)
  if refused then return refused end
  -- One draw per API request, in the order they arrive (see sandbox/faults.lua).
  local fault = self.injector:draw()
  if fault then
    local action = type(body) == "table" and type(body.action) == "string" and body.action or "-"
    self:_fault(self.seq, action, fault)
    if faults.BEFORE[fault] then return faults.response(fault, action) end
  end
  local res = self:_api_call(req, body, derr)
  if res.status ~= 200 and type(body) == "table" then
    -- Error messages quote request fields: never let the sent key through.
    res.body = self:_mask_text(res.body, body.secretKey)
  end
  if fault then faults.apply(fault, res, self.slow_seconds) end
  return res
end

-- With gateway keys: the gateway's 401 for a request not signed with one
-- of them (why, in the log's note); else nil.
function Sandbox:_gateway_refusal(req)
  if not self.gateway_keys then return nil end
  local why = gateway.refusal(self.gateway_keys, req.headers, os.time(), self.hmac)
  if not why then return nil end
  return json_response(401, util.encode({ message = gateway.MESSAGE }), "gateway: " .. why)
end

-- Count and log a fault: a line on the log, an entry for /_sandbox/faults.
function Sandbox:_fault(seq, action, fault)
  self.fault_counts[fault] = self.fault_counts[fault] + 1
  local entries = self.fault_entries
  entries[#entries + 1] = util.encode({ seq = seq, action = self:_mask_text(action), fault = fault })
  if #entries > FAULT_LOG_SIZE then table.remove(entries, 1) end
  if self.fault_log then
    self.fault_log(string.format("fault seq=%d action=%s fault=%s", seq,
      self:_mask_text(action):gsub("[%c%s]", "?"), fault))
  end
end

function Sandbox:_api_call(req, body, derr)
  local media = (req.headers["content-type"] or ""):match("^%s*([^;%s]+)")
  if not media or media:lower() ~= "application/json" then
    return self:_error(415, "UnsupportedMediaType", "Content-Type must be application/json (got "
      .. (req.headers["content-type"] and string.format("%q", req.headers["content-type"]) or "none")
      .. ")")
  end
  if not utf8.len(req.body) then
    return self:_error(400, "InvalidParameter", "the request body is not valid UTF-8")
  end
  if body == nil then
    return self:_error(400, "InvalidParameter", "the request body is not valid JSON: " .. tostring(derr))
  end
  local ok, err = validate.common(body)
  if not ok then return self:_error(400, "InvalidParameter", err) end
  local note = body.action
  if not self.any_credentials
      and (body.secretId ~= self.secret_id or body.secretKey ~= self.secret_key) then
    return self:_error(401, "AuthFailure", "the secretId/secretKey pair is not valid", note)
  end
  local action = ACTIONS[body.action]
  if not action then
    return self:_error(400, "InvalidAction", string.format("unknown action %q", body.action), note)
  end
  if action.path ~= req.path then
    return self:_error(400, "InvalidAction", string.format("action %s is served at %s, not %s",
      body.action, action.path, req.path), note)
  end
  for k in pairs(body) do
    if k ~= "action" and k ~= "secretId" and k ~= "secretKey" and k ~= action.request then
      return self:_error(400, "InvalidParameter",
        string.format("unknown field %q for action %s", k, body.action), note)
    end
  end
  if body[action.request] == nil and not action.optional then
    return self:_error(400, "InvalidParameter", action.request .. " is required", note)
  end
  return HANDLERS[body.action](self, body[action.request], note)
end

----------------------------------------------------------------------------
-- Files, inspection, routing

function Sandbox:_repos(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return self:_error(405, "MethodNotAllowed", "repositories are read with GET or HEAD", nil,
      { Allow = "GET, HEAD" })
  end
  local rel = util.percent_decode(req.path:sub(#"/repos/" + 1))
  local segs, err = util.safe_segments(rel)
  if not segs then return self:_error(400, "BadRequest", err) end
  if #segs < 2 or not util.safe_content_id(segs[1]) then
    return self:_error(404, "NotFound", "no such file: " .. rel)
  end
  local f = io.open(self.data .. "/repos/" .. table.concat(segs, "/"), "rb")
  local probe, perr
  if f then probe, perr = f:read(0) end
  if not f or (probe == nil and perr) then   -- missing, or a directory
    if f then f:close() end
    return self:_error(404, "NotFound", "no such file: " .. rel)
  end
  local size = f:seek("end")
  f:seek("set", 0)
  local ext = (segs[#segs]:match("%.(%w+)$") or ""):lower()
  return {
    status = 200, file = f, file_size = size,
    headers = { ["Content-Type"] = CONTENT_TYPES[ext] or "application/octet-stream" },
  }
end

function Sandbox:_requests(req)
  local since = tonumber((req.query or ""):match("since=(%d+)")) or 0
  local items = {}
  for _, r in ipairs(self.requests) do
    if r.seq > since then items[#items + 1] = r.json end
  end
  return json_response(200, util.encode_array(items))
end

-- {"seed": N, "counts": {"503": n, ...}, "log": [{"seq", "action", "fault"}...]}
function Sandbox:_faults()
  return json_response(200, '{"seed":' .. util.encode(self.fault_seed) .. ',"rates":'
    .. util.encode(faults.format(self.fault_rates)) .. ',"counts":' .. util.encode(self.fault_counts)
    .. ',"log":' .. util.encode_array(self.fault_entries) .. "}")
end

-- {"jobs": jobs held, "connections": connections open}
function Sandbox:_stats()
  return json_response(200, util.encode({ jobs = #self.store.order,
                                          connections = self.server:connections() }))
end

local INSPECTION = {
  ["/_sandbox/health"] = function() return json_response(200, '{"ok":true}') end,
  ["/_sandbox/requests"] = Sandbox._requests,
  ["/_sandbox/faults"] = Sandbox._faults,
  ["/_sandbox/stats"] = Sandbox._stats,
}

function Sandbox:_handle(req)
  local path = req.path
  if API_PATHS[path] then return self:_api(req) end
  -- the repositories are served from the gateway's host too: signed as the API is
  if path:sub(1, 7) == "/repos/" then return self:_gateway_refusal(req) or self:_repos(req) end
  if INSPECTION[path] then
    if req.method ~= "GET" then
      return self:_error(405, "MethodNotAllowed", path .. " takes GET only", nil, { Allow = "GET" })
    end
    return INSPECTION[path](self, req)
  end
  return self:_error(404, "NotFound", string.format("no route for %s %s", req.method, path))
end

----------------------------------------------------------------------------
-- Life cycle

-- Listen, then load the data directory (resuming unfinished jobs). Returns
-- the sandbox, or nil, err (port taken, data directory unusable).
function Sandbox:start()
  if self.server then return nil, "the sandbox is already started" end
  local server = httpd.new({
    host = self.host, port = self.port, latency = self.latency, log = self.log,
    handler = function(req) return self:_handle(req) end,
    error_response = function(status, code, message)
      return json_response(status, error_body(status, code, message))
    end,
    server_name = "voiceclone-sandbox", default_type = "application/json",
    max_header = 64 * 1024, max_body = 1024 * 1024,
  })
  local ok, err = server:listen()
  if not ok then
    return nil, string.format("cannot listen on %s port %s: %s", self.host, self.port, tostring(err))
  end
  local launcher = util.launcher()
  self.store = jobs.new({
    data = self.data, queue_seconds = self.queue_seconds, work_seconds = self.work_seconds,
    at = function(t, fn) server:at(t, fn) end, clock = server.clock, log = self.log,
    audio = self.audio,
    spawn = function(script, args, log) return launcher:spawn(script, args, log) end,
  })
  ok, err = self.store:load()
  if not ok then
    server:close()
    launcher:close()
    return nil, err
  end
  self.launcher = launcher
  self.server = server
  self.port = server.port
  local host = self.host:find(":", 1, true) and ("[" .. self.host .. "]") or self.host
  self.url = string.format("http://%s:%d", host, self.port)
  if self.log then
    local ids = {}
    for id in pairs(self.gateway_keys or {}) do ids[#ids + 1] = id end
    table.sort(ids)
    self.log(string.format("listening on %s, data %s, secretId %s%s%s", self.url, self.data,
      self.secret_id, self.any_credentials and " (any credentials accepted)" or "",
      #ids > 0 and (", gateway ids " .. table.concat(ids, " ")) or ""))
  end
  return self
end

-- One event-loop iteration: waits at most max_wait seconds (default 1).
function Sandbox:step(max_wait)
  if not self.server then return nil, "the sandbox is not started" end
  return self.server:step(max_wait)
end

-- Serve until stop() or close() (from a timer or another component).
function Sandbox:run()
  if not self.server then return nil, "the sandbox is not started" end
  self.running = true
  while self.running and self.server do self.server:step(1) end
  return true
end

function Sandbox:stop()
  self.running = false
end

-- Idempotent; background work already started finishes on its own.
function Sandbox:close()
  self.running = false
  if self.server then
    self.server:close()
    self.server = nil
  end
  if self.launcher then
    self.launcher:close()
    self.launcher = nil
  end
end

Sandbox.__close = Sandbox.close

return sandbox
