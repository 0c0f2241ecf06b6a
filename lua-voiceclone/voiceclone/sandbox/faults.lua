-- Fault injection for the sandbox (`voiceclone sandbox --faults ...`): which
-- API request gets which fault, drawn from a generator of our own seeded by
-- --fault-seed, so a failing run replays: the same seed and the same
-- sequence of requests give the same faults, on every Lua.
--
--   503       HTTP 503, a gateway's JSON body; the request is not processed
--   429       HTTP 429 with Retry-After: 1; not processed
--   drop      processed (a job IS created), then the connection closes unanswered
--   reset     the connection is reset (RST) before processing: nothing happens
--   slow      processed, answered --slow-seconds later (default 60): past a
--             client's timeout
--   truncate  processed, then a body cut short: the whole Content-Length,
--             fewer bytes, and the connection closes
--   html      a gateway's HTML 502 page; not processed
local faults = {}

-- The order draws are mapped in: part of what a seed replays.
faults.KINDS = { "503", "429", "drop", "reset", "slow", "truncate", "html" }
local KNOWN = {}
for _, kind in ipairs(faults.KINDS) do KNOWN[kind] = true end

-- Faults decided before processing (the others modify a processed answer).
faults.BEFORE = { ["503"] = true, ["429"] = true, reset = true, html = true }

faults.DEFAULT_SLOW_SECONDS = 60

----------------------------------------------------------------------------
-- The generator: Park and Miller's minimal standard LCG (multiplier 48271,
-- modulus 2^31 - 1). Every product stays below 2^47, exact in a double and
-- in a 64-bit integer alike: the same sequence on Lua 5.1 to 5.4 and LuaJIT,
-- with no bit operator.

local MODULUS = 2147483647
local MULTIPLIER = 48271
faults.MAX_SEED = MODULUS - 2

local Random = {}
Random.__index = Random

--- A generator for seed (an integer >= 0; taken modulo 2^31 - 2).
function faults.random(seed)
  local state = math.floor(seed) % (MODULUS - 1) + 1   -- 1 .. MODULUS - 1, never 0
  local self = setmetatable({ state = state }, Random)
  -- Mixed a little first: neighbouring seeds would start with neighbouring draws.
  for _ = 1, 3 do self:next() end
  return self
end

--- The next draw, a number in (0, 1).
function Random:next()
  self.state = (self.state * MULTIPLIER) % MODULUS
  return self.state / MODULUS
end

----------------------------------------------------------------------------

--- Parses "503=0.02,429=0.02,drop=0.02,..." into { kind = rate }; nil and a
-- message for an unknown kind, a rate outside [0, 1] or rates summing above 1.
function faults.parse(spec)
  if type(spec) ~= "string" or not spec:find("%S") then
    return nil, "--faults takes KIND=RATE[,KIND=RATE...]"
  end
  local rates, sum = {}, 0
  for item in (spec .. ","):gmatch("([^,]*),") do
    local kind, rate = item:match("^%s*([%w]+)%s*=%s*(%S+)%s*$")
    if not kind then
      return nil, string.format("--faults: %q is not KIND=RATE", item)
    end
    if not KNOWN[kind] then
      return nil, string.format("--faults: unknown fault %q (known: %s)", kind,
        table.concat(faults.KINDS, ", "))
    end
    if rates[kind] then return nil, string.format("--faults: %s is given twice", kind) end
    local n = tonumber(rate)
    if not n or n ~= n or n < 0 or n > 1 then
      return nil, string.format("--faults: the rate of %s must be a number from 0 to 1 (got %s)",
        kind, rate)
    end
    rates[kind] = n
    sum = sum + n
  end
  if sum > 1 + 1e-9 then
    return nil, string.format("--faults: the rates add up to %.4g, more than 1", sum)
  end
  return rates
end

--- The spec text of rates (kinds in their fixed order).
function faults.format(rates)
  local parts = {}
  for _, kind in ipairs(faults.KINDS) do
    if rates[kind] then parts[#parts + 1] = kind .. "=" .. string.format("%.6g", rates[kind]) end
  end
  return table.concat(parts, ",")
end

local Injector = {}
Injector.__index = Injector

--- An injector: draw() once per API request gives its fault or nil.
function faults.new(rates, seed)
  local self = setmetatable({ rates = rates or {}, seed = seed, random = faults.random(seed),
                              any = false }, Injector)
  for _, kind in ipairs(faults.KINDS) do
    if (self.rates[kind] or 0) > 0 then self.any = true end
  end
  return self
end

function Injector:draw()
  if not self.any then return nil end
  local u, edge = self.random:next(), 0
  for _, kind in ipairs(faults.KINDS) do
    edge = edge + (self.rates[kind] or 0)
    if u < edge then return kind end
  end
  return nil
end

----------------------------------------------------------------------------
-- What a gateway in front of the service answers.

faults.HTML_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
  .. "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

--- The response of a fault decided before processing (503, 429, html, reset).
function faults.response(kind, note)
  if kind == "503" then
    return { status = 503, body = '{"message":"Service Unavailable"}', note = note,
             headers = { ["Content-Type"] = "application/json" } }
  elseif kind == "429" then
    return { status = 429, body = '{"message":"Too Many Requests"}', note = note,
             headers = { ["Content-Type"] = "application/json", ["Retry-After"] = "1" } }
  elseif kind == "html" then
    return { status = 502, body = faults.HTML_502, note = note,
             headers = { ["Content-Type"] = "text/html" } }
  elseif kind == "reset" then
    return { status = 0, close = "reset", note = note }
  end
end

--- A processed response changed by a fault decided after (drop, slow, truncate).
function faults.apply(kind, res, slow_seconds)
  if kind == "drop" then
    res.close = "drop"
  elseif kind == "slow" then
    res.delay = (res.delay or 0) + slow_seconds
  elseif kind == "truncate" then
    res.truncate = math.floor(#(res.body or "") / 2)
  end
  return res
end

return faults
