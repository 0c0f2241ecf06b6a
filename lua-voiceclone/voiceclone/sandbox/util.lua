-- Small helpers shared by the sandbox parts: JSON, ids, clock, files, shell
-- quoting, background processes and URL/path safety checks.
local compat = require "voiceclone.compat"
local fs = require "voiceclone.fs"
local httpd = require "voiceclone.httpd"

local util = {}

-- Our own cjson instance: its settings never leak into other users of cjson.
local json = require("cjson.safe").new()
json.decode_invalid_numbers(false)  -- NaN/Infinity are not JSON
json.encode_invalid_numbers(false)
util.json = json
util.null = json.null

-- cjson decodes every number as a float; the API speaks integers, so turn
-- integral floats back into integers (in place) before anything looks at them.
function util.normalize_numbers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" then
        v[k] = compat.tointeger(x) or x
      elseif type(x) == "table" then
        util.normalize_numbers(x)
      end
    end
  end
  return v
end

-- Decode a JSON text; numbers normalised. Returns value or nil, message.
function util.decode(text)
  local v, err = json.decode(text)
  if v == nil then return nil, err end
  if type(v) == "number" then return compat.tointeger(v) or v end
  return util.normalize_numbers(v)
end

-- mpx cjson 2.1.0 encodes an empty table as {}: lists that may be empty are
-- assembled here from already encoded elements.
function util.encode_array(encoded_items)
  return "[" .. table.concat(encoded_items, ",") .. "]"
end

function util.encode(v)
  return assert(json.encode(v))
end

-- Seconds since the epoch (float) and its millisecond string form, as the
-- contract's timing fields want it.
util.now = httpd.now

function util.ms_string(seconds)
  return string.format("%d", math.floor(seconds * 1000))
end

-- Seed Lua's generator from the kernel once, so ids differ between runs.
-- Two seeds of 31 bits: 5.4 takes both; 5.1-5.3 and LuaJIT the first, which
-- 5.1 must find in an int.
local seeded = false
local function seed()
  if seeded then return end
  seeded = true
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if bytes and #bytes == 8 then
    local b = { bytes:byte(1, 8) }
    math.randomseed((b[1] % 128) * 2 ^ 24 + b[2] * 2 ^ 16 + b[3] * 2 ^ 8 + b[4],
      (b[5] % 128) * 2 ^ 24 + b[6] * 2 ^ 16 + b[7] * 2 ^ 8 + b[8])
  else
    math.randomseed(math.floor(httpd.now() * 1e6) % 2 ^ 31)
  end
end

-- Random UUID version 4 (RFC 4122): 122 random bits, version and variant set.
function util.uuid()
  seed()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = b[7] % 16 + 0x40   -- version 4: high nibble 0100
  b[9] = b[9] % 64 + 0x80   -- variant: high bits 10
  local hex = string.format(string.rep("%02x", 16), compat.unpack(b))
  return string.format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12),
    hex:sub(13, 16), hex:sub(17, 20), hex:sub(21, 32))
end

-- Short random hex token (work directory names, temp files).
function util.token()
  seed()
  -- two halves: Lua 5.1's math.random takes no bound past an int's
  return string.format("%04x%04x", math.random(0, 0xffff), math.random(0, 0xffff))
end

-- A random integer in 0..n (n below 2^31), from the kernel-seeded generator.
function util.random_int(n)
  seed()
  return math.random(0, n)
end

-- Pid of this Lua process.
util.pid = fs.pid

----------------------------------------------------------------------------
-- Files

function util.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data, rerr = f:read("*a")
  f:close()
  return data, rerr
end

-- Write to a temporary name, then rename: readers never see a partial file.
util.write_file_atomic = fs.write_atomic

function util.write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  f:close()
  if not ok then return nil, werr end
  return true
end

function util.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Single-quote a string for sh/bash. A NUL byte cannot travel in an argument.
function util.quote(s)
  s = tostring(s)
  assert(not s:find("\0", 1, true), "NUL byte in a shell argument")
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- mkdir -p (synchronous, through luv: no command runs for it).
function util.mkdir_p(path)
  return fs.mkdir_p(path)
end

-- rm -rf (synchronous, through luv).
util.remove_tree = fs.remove_tree

-- Absolute form of a path (job scripts cd into their own directory).
util.absolute = fs.absolute

-- Children start clean. They must not inherit our descriptors: a child
-- holding a client connection or the listening socket would keep them open
-- after we close them. libuv opens its sockets close-on-exec, but io.open and
-- io.popen do not: every descriptor above 2 is closed. And no LD_PRELOAD: a
-- test harness's sanitizer runtime, preloaded into espeak-ng, makes it hang.
local CHILD_PREAMBLE = 'for fd in /proc/$$/fd/*; do n=${fd##*/}; '
  .. '[ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-" 2>/dev/null; done; '
  .. 'unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; '

-- Background commands go through a launcher: one long-lived bash reading
-- command lines from a pipe, which does the forking. os.execute would fork
-- the sandbox itself and wait for a shell: about a millisecond of event loop
-- per command, seconds when hundreds of jobs start at once.
local Launcher = {}
Launcher.__index = Launcher

function util.launcher()
  return setmetatable({}, Launcher)
end

function Launcher:_pipe()
  if not self.pipe then
    local p = io.popen("exec bash >/dev/null 2>&1", "w")
    if not p then return nil end
    p:setvbuf("line")
    if not p:write(CHILD_PREAMBLE, "\n") then
      p:close()
      return nil
    end
    self.pipe = p
  end
  return self.pipe
end

-- Start `script` (bash code; its arguments are $1..$n) in the background,
-- output to `log`, and return at once: the event loop never waits for a child.
-- The launcher is the child's parent and reaps it.
function Launcher:spawn(script, args, log)
  local parts = { "bash", "-c", util.quote(CHILD_PREAMBLE .. script), "voiceclone-sandbox" }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = util.quote(a) end
  local cmd = table.concat(parts, " ") .. " </dev/null >" .. util.quote(log or "/dev/null")
    .. " 2>&1 &"
  local pipe = self:_pipe()
  if pipe and pipe:write(cmd, "\n") then return true end
  -- The launcher is gone (killed?): start a new one next time, run this one directly.
  if self.pipe then pcall(self.pipe.close, self.pipe) end
  self.pipe = nil
  return compat.execute(cmd)
end

-- Idempotent. Children already started go on by themselves.
function Launcher:close()
  if self.pipe then
    pcall(self.pipe.close, self.pipe)
    self.pipe = nil
  end
end

----------------------------------------------------------------------------
-- Safety checks

-- Loopback http(s) URLs only: the sandbox never contacts another host.
-- Returns true or nil, reason.
function util.loopback_url(url)
  if type(url) ~= "string" then return nil, "not a string" end
  if url:find("[%z%c%s]") then return nil, "spaces or control characters in the URL" end
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil, "not an absolute http URL" end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "scheme " .. scheme .. " is not http or https"
  end
  if authority:find("@", 1, true) then return nil, "user information in the URL" end
  local host = authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)")
  local rest = authority:sub(#host + 1)
  if rest ~= "" and not rest:match("^:%d+$") then return nil, "bad port" end
  host = host:lower()
  if host == "localhost" or host == "[::1]" then return true end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a and tonumber(a) == 127 and tonumber(b) < 256 and tonumber(c) < 256
      and tonumber(d) < 256 then
    return true
  end
  return nil, "host " .. (host ~= "" and host or "(empty)") .. " is not loopback"
end

-- Split a relative path into safe segments: "" and "." dropped, ".." and NUL
-- refused, so the result can never point outside the directory it is joined to.
function util.safe_segments(path)
  local segs = {}
  for seg in tostring(path):gmatch("[^/]+") do
    if seg == ".." then return nil, "'..' is not allowed in a path" end
    if seg:find("\0", 1, true) then return nil, "NUL byte in a path" end
    if seg ~= "." then segs[#segs + 1] = seg end
  end
  return segs
end

-- A repository id is one path segment.
function util.safe_content_id(id)
  if type(id) ~= "string" or id == "" or id == "." or id == ".."
      or id:find("/", 1, true) or id:find("\0", 1, true) then
    return nil, "contentId " .. string.format("%q", tostring(id))
      .. " is not a valid repository id"
  end
  return true
end

-- %XX decoding of a URL path (no '+' rule: that is for query strings).
function util.percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Plain (non-pattern) replacement of every occurrence of `needle`.
function util.replace_plain(s, needle, repl)
  if needle == "" then return s end
  local out, i = {}, 1
  while true do
    local a, b = s:find(needle, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1)
    out[#out + 1] = repl
    i = b + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

return util
