-- The API gateway's key-pair authentication, checked as the gateway in
-- front of the published endpoint checks it (sandbox --gateway-key ID:KEY):
--   X-Date: Wed, 02 Dec 2026 14:00:00 GMT      (within 15 minutes of now)
--   Source: <any text>
--   Authorization: hmac id="<known id>", algorithm="hmac-sha1",
--                  headers="x-date source", signature="<Base64 HMAC-SHA1>"
-- where the signature is of "x-date: <X-Date>\nsource: <Source>" (the
-- headers named, in that order) under the id's key. A request that fails
-- gets the gateway's own 401, {"message":"HMAC signature cannot be verified"}.
--
-- The HMAC is the C core's (voiceclone.core, libcrypto): loaded only by a
-- sandbox that has gateway keys, so the sandbox alone still needs no core.
local gateway = {}

gateway.MAX_SKEW = 15 * 60     -- seconds an X-Date may be off from now
gateway.MESSAGE = "HMAC signature cannot be verified"

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days from 1970-01-01 to the date (proleptic Gregorian).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an RFC 7231 date ("Wed, 02 Dec 2026 14:00:00 GMT"), or nil.
function gateway.parse_date(text)
  local d, mon, y, h, mi, s = tostring(text):match(
    "^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon or ""]
  if not m then return nil end
  d, y, h, mi, s = tonumber(d), tonumber(y), tonumber(h), tonumber(mi), tonumber(s)
  if d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s
end

--- The key pairs of `--gateway-key ID:KEY` (one string or a list of them)
-- as { [id] = key }; or nil and a message that never shows a key.
function gateway.parse_keys(list)
  if type(list) == "string" then list = { list } end
  local keys = {}
  for _, pair in ipairs(list) do
    local id, key = tostring(pair):match("^([^:]+):(.+)$")
    if not id then return nil, "--gateway-key takes ID:KEY, both non-empty" end
    keys[id] = key
  end
  return keys
end

-- The fields of `hmac id="..", algorithm="..", headers="..", signature=".."`.
local function authorization_fields(value)
  local rest = value:match("^%s*[Hh][Mm][Aa][Cc]%s+(.*)$")
  if not rest then return nil end
  local fields = {}
  for name, v in rest:gmatch('([%w_-]+)%s*=%s*"([^"]*)"') do fields[name:lower()] = v end
  return fields
end

--- Why the request (its lowercased headers) is not signed as the gateway
-- wants, or nil when it is. keys: { [id] = key }; now: seconds since the
-- epoch; hmac(key, text): the Base64 HMAC-SHA1.
function gateway.refusal(keys, headers, now, hmac)
  local value = headers.authorization
  if not value then return "no Authorization header" end
  local f = authorization_fields(value)
  if not (f and f.id and f.headers and f.signature) then
    return "Authorization is not hmac id=, headers=, signature="
  end
  if (f.algorithm or ""):lower() ~= "hmac-sha1" then return "algorithm is not hmac-sha1" end
  local key = keys[f.id]
  if not key then return "unknown id" end
  local lines, signed = {}, {}
  for name in f.headers:lower():gmatch("%S+") do
    if not headers[name] then return "no " .. name .. " header" end
    lines[#lines + 1] = name .. ": " .. headers[name]
    signed[name] = true
  end
  if not (signed["x-date"] and signed.source) then return "x-date and source are not both signed" end
  local date = gateway.parse_date(headers["x-date"])
  if not date then return "X-Date is not an HTTP date" end
  if math.abs(date - now) > gateway.MAX_SKEW then return "X-Date is more than 15 minutes off" end
  if hmac(key, table.concat(lines, "\n")) ~= f.signature then return "wrong signature" end
  return nil
end

return gateway
