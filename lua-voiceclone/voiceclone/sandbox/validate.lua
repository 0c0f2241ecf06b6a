-- The documented request rules, checked the way the service does: the first
-- broken rule ends the check with a message naming the field's full path
-- (e.g. createJobRequest.outputs[0].smartContentDescriptor.outputPrefix).
-- Each checker returns the request object (numbers already normalised by
-- util.decode) or nil, message.
local compat = require "voiceclone.compat"

local utf8 = compat.utf8
local math_type = compat.math_type

local validate = {}

local MAX_SOURCE_CHARS = 512
local CUSTOM_ID_LIMIT = 64      -- "fewer than 64 characters"
local PREFIX_LIMIT = 20         -- "fewer than 20 characters"
local MODEL_NAME_LIMIT = 64
local MAX_EPOCHS = 50
local MAX_LIMIT = 100

-- Raised (as a table) by the helpers below and caught in `run`.
local function fail(path, fmt, ...)
  error({ message = path .. " " .. string.format(fmt, ...) }, 0)
end

local function describe(v)
  if v == nil then return "missing" end
  if type(v) == "userdata" then return "null" end
  if math_type(v) == "float" then return "a non-integer number" end
  if type(v) == "table" then return "an object or array" end
  return "a " .. type(v)
end

-- JSON arrays decode to tables with keys 1..n; objects to string keys.
local function is_array(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  return n == #t
end

local function is_object(t)
  if type(t) ~= "table" then return false end
  for k in pairs(t) do
    if type(k) ~= "string" then return false end
  end
  return true
end

local function object(path, v, allowed)
  if not is_object(v) then fail(path, "must be an object (got %s)", describe(v)) end
  for k in pairs(v) do
    if not allowed[k] then fail(path, "has an unknown field %q", k) end
  end
  return v
end

local function nonempty_array(path, v)
  if not is_array(v) or #v == 0 then
    fail(path, "must be a non-empty array (got %s)", is_array(v) and "an empty array" or describe(v))
  end
  return v
end

local function string_field(path, v, required)
  if v == nil and not required then return nil end
  if type(v) ~= "string" then fail(path, "must be a string (got %s)", describe(v)) end
  return v
end

local function nonempty_string(path, v)
  string_field(path, v, true)
  if v == "" then fail(path, "must not be empty") end
  return v
end

local function integer(path, v, required)
  if v == nil and not required then return nil end
  if math_type(v) ~= "integer" then fail(path, "must be an integer (got %s)", describe(v)) end
  return v
end

-- Character count (UTF-8), not bytes.
local function chars(path, s)
  local n = utf8.len(s)
  if not n then fail(path, "is not valid UTF-8 text") end
  return n
end

local function fewer_chars(path, s, limit)
  local n = chars(path, s)
  if n >= limit then
    fail(path, "must have fewer than %d characters (got %d)", limit, n)
  end
end

local function set(...)
  local t = {}
  for _, k in ipairs({ ... }) do t[k] = true end
  return t
end

local function run(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return err end
  if type(err) == "table" then return nil, err.message end
  error(err, 0)   -- a bug in a checker, not a broken rule
end

----------------------------------------------------------------------------

local INPUT_FIELDS = set("sourceData", "url", "source")
local OUTPUT_FIELDS = set("contentId", "destination", "inputSelectors", "smartContentDescriptor")

local function check_input(path, input)
  object(path, input, INPUT_FIELDS)
  local present = {}
  for _, k in ipairs({ "sourceData", "url", "source" }) do
    if input[k] ~= nil then present[#present + 1] = k end
  end
  if #present ~= 1 then
    fail(path, "must have exactly one of sourceData, url, source (got %s)",
      #present == 0 and "none" or table.concat(present, ", "))
  end
  if input.sourceData ~= nil then
    local p = path .. ".sourceData"
    string_field(p, input.sourceData, true)
    local n = chars(p, input.sourceData)
    if n > MAX_SOURCE_CHARS then
      fail(p, "must have at most %d characters (got %d)", MAX_SOURCE_CHARS, n)
    end
  elseif input.url ~= nil then
    string_field(path .. ".url", input.url, true)
  else
    local p = path .. ".source"
    object(p, input.source, set("contentId", "path"))
    string_field(p .. ".contentId", input.source.contentId, true)
    string_field(p .. ".path", input.source.path, true)
  end
end

local function check_output(path, output, ninputs)
  object(path, output, OUTPUT_FIELDS)
  local selectors = nonempty_array(path .. ".inputSelectors", output.inputSelectors)
  for i, sel in ipairs(selectors) do
    local p = string.format("%s.inputSelectors[%d]", path, i - 1)
    integer(p, sel, true)
    if sel < 0 or sel >= ninputs then
      fail(p, "must be an index into inputs, 0..%d (got %d)", ninputs - 1, sel)
    end
  end
  local sp = path .. ".smartContentDescriptor"
  local scd = object(sp, output.smartContentDescriptor, set("outputPrefix", "voiceCloning"))
  if scd.outputPrefix ~= nil then
    string_field(sp .. ".outputPrefix", scd.outputPrefix, true)
    fewer_chars(sp .. ".outputPrefix", scd.outputPrefix, PREFIX_LIMIT)
  end
  local vp = sp .. ".voiceCloning"
  local vc = object(vp, scd.voiceCloning, set("type", "modelName", "totalEpoch"))
  local kind = integer(vp .. ".type", vc.type, true)
  if kind ~= 1 and kind ~= 2 then fail(vp .. ".type", "must be 1 or 2 (got %d)", kind) end
  local name = string_field(vp .. ".modelName", vc.modelName, true)
  if not name:match("^[A-Za-z0-9_]+$") then
    fail(vp .. ".modelName", "must contain only letters, digits and _ (got %q)", name)
  end
  if #name >= MODEL_NAME_LIMIT then
    fail(vp .. ".modelName", "must have fewer than %d characters (got %d)", MODEL_NAME_LIMIT, #name)
  end
  if vc.totalEpoch ~= nil then
    local e = integer(vp .. ".totalEpoch", vc.totalEpoch, true)
    if kind ~= 2 then fail(vp .. ".totalEpoch", "is only allowed with type 2 (training)") end
    if e < 1 or e > MAX_EPOCHS then
      fail(vp .. ".totalEpoch", "must be between 1 and %d (got %d)", MAX_EPOCHS, e)
    end
  end
  if kind == 1 then
    string_field(path .. ".contentId", output.contentId, true)
  else
    string_field(path .. ".contentId", output.contentId, false)
  end
  string_field(path .. ".destination", output.destination, false)
end

local CREATE_FIELDS = set("inputs", "outputs", "callback", "customId", "timeout")

local function check_create(req)
  local path = "createJobRequest"
  object(path, req, CREATE_FIELDS)
  local inputs = nonempty_array(path .. ".inputs", req.inputs)
  for i, input in ipairs(inputs) do
    check_input(string.format("%s.inputs[%d]", path, i - 1), input)
  end
  local outputs = nonempty_array(path .. ".outputs", req.outputs)
  for i, output in ipairs(outputs) do
    check_output(string.format("%s.outputs[%d]", path, i - 1), output, #inputs)
  end
  string_field(path .. ".callback", req.callback, false)
  if req.customId ~= nil then
    string_field(path .. ".customId", req.customId, true)
    fewer_chars(path .. ".customId", req.customId, CUSTOM_ID_LIMIT)
  end
  if req.timeout ~= nil then
    local t = integer(path .. ".timeout", req.timeout, true)
    if t <= 0 then fail(path .. ".timeout", "must be a positive integer (got %d)", t) end
  end
  return req
end

function validate.create_job(req) return run(check_create, req) end

function validate.get_job(req)
  return run(function()
    object("getJobRequest", req, set("id"))
    nonempty_string("getJobRequest.id", req.id)
    return req
  end)
end

function validate.list_jobs(req)
  return run(function()
    object("listJobsRequest", req, set("customId"))
    string_field("listJobsRequest.customId", req.customId, true)
    return req
  end)
end

-- listModelsRequest may be left out: offset 0, limit 10.
function validate.list_models(req)
  return run(function()
    req = req == nil and {} or req
    object("listModelsRequest", req, set("offset", "limit"))
    local offset = integer("listModelsRequest.offset", req.offset, false) or 0
    if offset < 0 then fail("listModelsRequest.offset", "must be 0 or more (got %d)", offset) end
    local limit = integer("listModelsRequest.limit", req.limit, false) or 10
    if limit < 1 or limit > MAX_LIMIT then
      fail("listModelsRequest.limit", "must be between 1 and %d (got %d)", MAX_LIMIT, limit)
    end
    return { offset = offset, limit = limit }
  end)
end

-- The common fields of every body.
function validate.common(body)
  return run(function()
    if not is_object(body) then fail("request body", "must be a JSON object") end
    nonempty_string("action", body.action)
    nonempty_string("secretId", body.secretId)
    nonempty_string("secretKey", body.secretKey)
    return body
  end)
end

validate.is_object = is_object

return validate
