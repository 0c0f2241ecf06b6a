-- A small HTTP server for spec/gateway_spec.lua that records the gateway
-- headers of every request it gets, one connection a request:
--   lua5.4 spec/support/gateway_server.lua PORT_FILE GATEWAY_KEY
-- The first path segment picks the answer:
--   /retry_<tag>/...   a 429 with Retry-After: 1 the first time, then a job
--   /quote_<form>/...  a 500 quoting GATEWAY_KEY (raw, json, url, html) as
--                      its message, code and request id
--   /file/...          200 and "gateway-file"
--   /redirect/...      302 to the URL in the query (?to=...)
--   anything else      a job
-- GET /_seen answers [{path, x_date, source, authorization}, ...] so far.
local socket = require "socket"
local cjson = require "cjson"

local port_file = assert(arg[1], "usage: gateway_server.lua PORT_FILE GATEWAY_KEY")
local key = assert(arg[2], "usage: gateway_server.lua PORT_FILE GATEWAY_KEY")
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local stat = assert(io.open("/proc/self/stat"))
local pid = stat:read("*l"):match("^(%d+)")
stat:close()
local f = assert(io.open(port_file .. ".tmp", "w"))
f:write(port, " ", pid, "\n")   -- the pid: the spec stops this server by it
f:close()
assert(os.rename(port_file .. ".tmp", port_file))

local JOB = '{"requestId":"r-g","getJobResponse":{"job":{"id":"j-1","state":1}}}'
local seen, counts = {}, {}

local function forms()
  local json = cjson.encode(key):sub(2, -2)
  local url = key:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local html = key:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                     ['"'] = "&quot;", ["'"] = "&#39;" })
  return { raw = key, json = json, url = url, html = html }
end

local function answer(conn, status, body, extra)
  conn:send(("HTTP/1.1 %d Whatever\r\nConnection: close\r\nContent-Type: application/json\r\n"
    .. "Content-Length: %d\r\n%s\r\n%s"):format(status, #body, extra or "", body))
end

while true do
  local conn = server:accept()
  conn:settimeout(5)
  local line = conn:receive("*l")
  local path = line and line:match("^%u+ (%S+)")
  local headers, length = {}, 0
  repeat
    local h = conn:receive("*l")
    local name, value = (h or ""):match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  until not h or h == ""
  length = tonumber(headers["content-length"] or 0)
  if length > 0 then conn:receive(length) end
  local name = path and path:match("^/([%w_]+)") or ""
  if path == "/_seen" then
    answer(conn, 200, cjson.encode(seen))
  elseif path then
    seen[#seen + 1] = { path = path, x_date = headers["x-date"], source = headers.source,
                        authorization = headers.authorization }
    counts[name] = (counts[name] or 0) + 1
    local form = name:match("^quote_(%a+)$")
    if name:match("^retry_") and counts[name] == 1 then
      answer(conn, 429, '{"message":"slow down"}', "Retry-After: 1\r\n")
    elseif form then
      local quoted = forms()[form] or "no-such-form"
      answer(conn, 500, ('{"message":"m %s","code":"%s","requestId":"%s"}'):format(quoted, quoted, quoted))
    elseif name == "file" then
      answer(conn, 200, "gateway-file")
    elseif name == "redirect" then
      local to = path:match("[?&]to=([^&]+)") or "/"
      answer(conn, 302, "{}", "Location: " .. to:gsub("%%(%x%x)", function(h)
        return string.char(tonumber(h, 16)) end) .. "\r\n")
    else
      answer(conn, 200, JOB)
    end
  end
  conn:close()
end
