--- The command's one option parser, and the options every command that
-- talks to the service shares.
--
-- A command declares its options as { [name] = kind }, kind one of
-- "string", "number", "integer", "flag" or "list" (repeatable), and may
-- keep old spellings working through aliases { [old] = "new" }.
local compat = require "voiceclone.compat"

local options = {}

options.GLOBAL = {
  json = "flag", ["secret-id"] = "string", ["secret-key"] = "string", endpoint = "string",
  repositories = "string", ["http-timeout"] = "number", verbose = "flag",
}

options.GLOBAL_USAGE = [[
global options (every command but sandbox; also before the command):
  --json                one JSON document on stdout (the job as the API gives it)
  --endpoint URL        the service (default $VOICECLONE_ENDPOINT, else the published one)
  --secret-id ID        default $VOICECLONE_SECRET_ID
  --secret-key KEY      default $VOICECLONE_SECRET_KEY; prefer the variable: arguments
                        are visible in ps. The key is never printed.
                        Behind the API gateway's key-pair auth, requests are signed
                        with $VOICECLONE_GATEWAY_ID, _KEY and _SOURCE (see the man page).
  --repositories TPL    where outputs are downloaded from (default $VOICECLONE_REPOSITORIES):
                        a URL template with {contentId} and {path}, e.g.
                        http://127.0.0.1:8600/repos/{contentId}/{path}
  --http-timeout S      seconds for one HTTP request (default 30)
  --verbose             one line on stderr per HTTP attempt: action, attempt,
                        status, seconds, request id, error kind (never a body
                        or a key)
  -h, --help            this help
]]

--- The command's own options plus the global ones.
function options.with_global(own)
  for name, kind in pairs(options.GLOBAL) do own[name] = own[name] or kind end
  return own
end

local SECRET_MIN_LENGTH = 6   -- shorter keys would match ordinary words (as the sandbox does)

--- The secret keys a run may know of, from the command line and the
-- environment: found before parsing, so that even a usage error hides them.
function options.secrets_in(args)
  local found = {}
  local function add(s)
    if type(s) == "string" and #s >= SECRET_MIN_LENGTH then found[#found + 1] = s end
  end
  add(os.getenv("VOICECLONE_SECRET_KEY"))
  add(os.getenv("VOICECLONE_GATEWAY_KEY"))
  for i, a in ipairs(args) do
    if a == "--secret-key" then add(args[i + 1]) end
    add(a:match("^%-%-secret%-key=(.*)$"))
    -- the sandbox's --gateway-key ID:KEY
    if a == "--gateway-key" then add((args[i + 1] or ""):match("^[^:]*:(.*)$")) end
    add(a:match("^%-%-gateway%-key=[^:]*:(.*)$"))
  end
  return found
end

local function convert(name, kind, value)
  if kind ~= "number" and kind ~= "integer" then return value end
  local n = tonumber(value)
  if not n or n < 0 or (kind == "integer" and not compat.tointeger(n)) then
    return nil, string.format("--%s needs a %s number (got %q)",
      name, kind == "integer" and "whole" or "non-negative", value)
  end
  return kind == "integer" and compat.tointeger(n) or n
end

--- Parses "--name value", "--name=value" and "--flag" ("--" ends the
-- options) and the positional arguments. Old spellings are stored under
-- their new names. Returns options, positionals; or nil, message.
function options.parse(args, spec, max_positional, aliases)
  aliases = aliases or {}
  local function kind_of(name)
    local canonical = spec[name] and name or aliases[name]
    return canonical and spec[canonical], canonical
  end
  local parsed, positional, i, only_positional = {}, {}, 1, false
  while i <= #args do
    local a = args[i]
    if not only_positional and a == "--" then
      only_positional = true
    elseif not only_positional and a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([%w-]+)=(.*)$")
      name = name or a:match("^%-%-([%w-]+)$")
      if not name then return nil, "unexpected argument " .. a end
      local kind, canonical = kind_of(name)
      if not kind then return nil, "unknown option --" .. name end
      if kind == "flag" then
        if value then return nil, "--" .. name .. " takes no value" end
        parsed[canonical] = true
      else
        if not value then
          local following = args[i + 1]
          -- the next word is another option: this one was given no value
          if following and kind_of(following:match("^%-%-([%w-]+)") or "") then following = nil end
          i = i + 1
          value = following
          if not value then return nil, "--" .. name .. " needs a value" end
        end
        local converted, err = convert(name, kind, value)
        if converted == nil then return nil, err end
        if kind == "list" then
          parsed[canonical] = parsed[canonical] or {}
          table.insert(parsed[canonical], converted)
        else
          parsed[canonical] = converted
        end
      end
    else
      positional[#positional + 1] = a
      if #positional > (max_positional or 0) then return nil, "unexpected argument " .. a end
    end
    i = i + 1
  end
  return parsed, positional
end

--- The first of names given as 0: a usage message, or nil when none is.
-- (The parser accepts 0 for every number; a wait or a poll of 0 s is no
-- wait at all.)
function options.zero(o, names)
  for _, name in ipairs(names) do
    if o[name] == 0 then return "--" .. name .. " must be positive" end
  end
end

return options
