--- The command's one output layer: stdout and stderr with the secret keys
-- hidden, plain JSON, errors in flag terms, and the exit statuses.
local cjson = require("cjson.safe").new()
local compat = require "voiceclone.compat"

local output = {}

output.PROGRAM = "voiceclone"
local PROGRAM = output.PROGRAM

--- Exit statuses scripts can rely on.
output.EXIT = {
  OK = 0,        -- done; every job/line COMPLETED
  FAILED = 1,    -- a job ended ERROR/CANCELED, a batch line failed, the service refused
  USAGE = 2,     -- bad command line, missing credentials, a request breaking a documented rule
  NETWORK = 3,   -- network failure, timeout, or a retryable service error: try again later
  LOCAL = 4,     -- a local file could not be read or written, or a download converted (--format)
}
local EXIT = output.EXIT

----------------------------------------------------------------------------
-- JSON: arrays marked (an empty list is [], not {}), keys sorted, slashes
-- as they are and numbers as people write them (0.0000576, not 5.76e-05).

local ARRAY = {}
function output.array(t) return setmetatable(t or {}, ARRAY) end

local function is_sequence(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

-- The shortest text that reads back as n, in plain decimals.
local function number_text(n)
  if n ~= n or n == math.huge or n == -math.huge then return "null" end
  if n == math.floor(n) then
    return math.abs(n) < 2 ^ 53 and ("%d"):format(n) or ("%.0f"):format(n)
  end
  for decimals = 1, 20 do
    local text = ("%." .. decimals .. "f"):format(n)
    if tonumber(text) == n then return text end
  end
  return ("%.17g"):format(n)
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
      parts[i] = encode(k) .. ":" .. encode(value)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    return number_text(v)
  elseif t == "string" then
    -- cjson writes every "/" as "\/"; each "\/" in its output is that escape
    return ((cjson.encode(v) or "null"):gsub("\\/", "/"))
  elseif t == "boolean" then
    return tostring(v)
  end
  return "null"
end
output.encode = encode

----------------------------------------------------------------------------
-- Errors

--- The exit status for an error table from the library.
function output.status_for(err)
  if type(err) ~= "table" then return EXIT.FAILED end
  local kind = err.kind
  -- a file that cannot be written (download's dest) is a local failure
  -- so is a download that cannot be converted (no sox, sox failing), and
  -- a machine out of memory
  if kind == "local" or kind == "convert" or kind == "memory"
      or (kind == "invalid" and err.field == "dest") then
    return EXIT.LOCAL
  end
  if kind == "invalid" then return EXIT.USAGE end
  if kind == "network" or kind == "timeout" or err.retryable then return EXIT.NETWORK end
  return EXIT.FAILED
end

-- One readable line: the library's errors have __tostring; the command's
-- own are plain { kind =, message = } tables.
local function message_of(err)
  if type(err) ~= "table" then return tostring(err) end
  local meta = getmetatable(err)
  if meta and meta.__tostring then return tostring(err) end
  return tostring(err.message)
end

--- Whether a file (io.stderr) is a terminal, through lua-term; without it,
-- output is plain, as for a pipe.
function output.is_terminal(file)
  local ok, term = pcall(require, "term")
  return ok and type(term) == "table" and term.isatty ~= nil and term.isatty(file) == true
end

----------------------------------------------------------------------------
-- The context of one run: everything printed goes through it.

local Context = {}
Context.__index = Context

--- A context for a run whose arguments are args; secrets: the keys to hide.
function output.context(secrets)
  return setmetatable({ secrets = secrets, patterns = {}, command = "", flags = {} }, Context)
end

-- The forms a secret may take in what is printed: raw; JSON-escaped (with
-- "/" plain, and as "\/" as other encoders write it) or quoted with %q;
-- URL-encoded (upper- and lowercase hex); HTML-escaped. Longest first, as
-- patterns that match them literally.
local function patterns_of(secret)
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
  for i, form in ipairs(list) do list[i] = form:gsub("%p", "%%%0") end
  return list
end

function Context:redact(text)
  text = tostring(text)
  for _, secret in ipairs(self.secrets) do
    self.patterns[secret] = self.patterns[secret] or patterns_of(secret)
    for _, pattern in ipairs(self.patterns[secret]) do text = text:gsub(pattern, "***") end
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

local function write(self, file, ...)
  local parts = compat.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  file:write(self:redact(table.concat(parts, "", 1, parts.n)))
  file:flush()
end

function Context:out(...) write(self, io.stdout, ...) end
function Context:err(...) write(self, io.stderr, ...) end
function Context:json(value) self:out(encode(redacted(self, value, 0)), "\n") end

--- The flag a library field came from, in this command's terms: the
-- command's own map (e.g. dest = "--out"), else "--" and the field with
-- "-" for "_" (content_id: --content-id).
function Context:flag(field)
  if type(field) ~= "string" then return nil end
  return self.flags[field] or ("--" .. field:gsub("_", "-"))
end

-- An `invalid` error of the library names the Lua option ("content_id: is
-- required"); the command's user typed a flag: "--content-id is required".
function Context:message(err)
  local text = message_of(err)
  local named = type(err) == "table" and (err.kind == "invalid" or err.kind == "convert")
  if named and type(err.field) == "string" then
    local rest = tostring(err.message):match("^" .. err.field:gsub("%p", "%%%0") .. ": (.*)$")
    if rest then return self:flag(err.field) .. (err.kind == "invalid" and " " or ": ") .. rest end
  end
  return text
end

local function error_fields(ctx, err)
  if type(err) ~= "table" then return { kind = "error", message = tostring(err) } end
  return { kind = err.kind, message = ctx:message(err), field = err.field, flag = ctx:flag(err.field),
           status = err.status, code = err.code, request_id = err.request_id,
           retryable = err.retryable, attempts = err.attempts }
end

--- Reports err (stderr; and as {"error": ...} with --json) and returns its status.
function Context:fail(err, extra)
  self:err(PROGRAM, " ", self.command, ": ", self:message(err), "\n")
  if self.json_output then
    local doc = { error = error_fields(self, err) }
    for k, v in pairs(extra or {}) do doc[k] = v end
    self:json(doc)
  end
  return output.status_for(err)
end

--- A usage error: the message, a pointer to --help, status 2.
function Context:usage(message)
  self:err(PROGRAM, " ", self.command, ": ", message, "\n",
    "Run 'voiceclone ", self.command, " --help' for its options.\n")
  if self.json_output then self:json { error = { kind = "usage", message = message } } end
  return EXIT.USAGE
end

return output
