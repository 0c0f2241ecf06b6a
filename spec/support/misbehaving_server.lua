-- A deliberately broken HTTP server for the error specs. The first path
-- segment picks the misbehaviour: a client with endpoint
-- http://127.0.0.1:PORT/html500 gets an HTML 500 page for every call.
--   lua5.4 spec/support/misbehaving_server.lua PORT_FILE
local socket = require "socket"

local JOB = '{"id":"j-1","state":3,"outputs":[{"inputSelectors":[0],'
  .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}}}]}'

local function json(status, body) return { status = status, type = "application/json", body = body } end

local scenarios = {
  html500 = { status = 500, type = "text/html",
              body = "<html><head><title>500 Internal Server Error</title></head>"
                  .. "<body><h1>Oops</h1></body></html>" },
  gateway = json(502, '{"message":"Bad Gateway"}'),
  gateway_auth = json(401, '{"message":"HMAC signature cannot be verified"}'),
  throttled = json(429, '{"message":"API rate limit exceeded","requestId":"gw-429"}'),
  empty502 = { status = 502, body = "" },
  truncated = json(200, '{"requestId":"r-1","getJobResponse":{"job":{"id":'),
  not_json = { status = 200, type = "text/plain", body = "hello" },
  not_object = json(200, "[1,2,3]"),
  no_key = json(200, '{"requestId":"r-2"}'),
  error_object = json(200, '{"requestId":"r-3","error":{"code":"InternalError","message":"something broke"}}'),
  tencent_error = json(200, '{"Response":{"Error":{"Code":"AuthFailure","Message":"secret id unknown"},'
                         .. '"RequestId":"r-4"}}'),
  no_job = json(200, '{"requestId":"r-5","getJobResponse":{}}'),
  bad_jobs = json(200, '{"requestId":"r-6","listJobsResponse":{"jobs":"nope","total":1}}'),
  null_fields = json(200, '{"requestId":"r-7","getJobResponse":{"job":{"id":"j-7","state":2,'
                        .. '"customId":null,"timing":{"createdAt":"1","startedAt":null}}}}'),
  null_items = json(200, '{"requestId":"r-9","getJobResponse":{"job":{"id":"j-9","state":1,'
                        .. '"inputs":[null,{"sourceData":"a"}],"outputs":[{"inputSelectors":[null,1]}]}}}'),
  -- a 503 whose body is large enough that reading it runs the collector
  busy_big = { status = 503, type = "application/json", retry_after = "7",
               body = '{"message":"busy","pad":"' .. ("x"):rep(400000) .. '"}' },
  deep = json(200, '{"getJobResponse":' .. string.rep("[", 200) .. string.rep("]", 200) .. "}"),
  completed = json(200, '{"requestId":"r-8","getJobResponse":{"job":' .. JOB .. '}}'),
}

local port_file = assert(arg[1], "usage: misbehaving_server.lua PORT_FILE")
local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local tmp = port_file .. ".tmp"
local f = assert(io.open(tmp, "w"))
f:write(port, "\n")
f:close()
assert(os.rename(tmp, port_file))

-- "keepalive": the completed job at once, on a connection kept open for
-- the next request (made before any request comes, so that it goes out as
-- fast as the client can read it)
local KEPT_ALIVE = (function()
  local body = '{"requestId":"r-k","getJobResponse":{"job":' .. JOB .. '}}'
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
    .. "\r\n\r\n" .. body
end)()

local held = {}   -- connections we never answer ("hang"), kept open
-- Answers sent a piece at a time: { conn =, pieces = { {text, seconds to wait after} ... }, due = }
local slow = {}

-- For the retry specs: how many requests each scenario (first path segment)
-- got, at /_count/<scenario>; and the jobs the "drop" scenarios created.
local counts, created, dropped = {}, {}, {}
local cjson = require "cjson"

-- A valid answer to whatever the body asks.
local function ok_answer(body)
  local request = cjson.decode(body ~= "" and body or "{}")
  local action = request.action
  if action == "CreateJob" then
    local job = request.createJobRequest
    job.id, job.state = "j-" .. (#created + 1), 1
    created[#created + 1] = job
    return json(200, cjson.encode { requestId = "r-c", createJobResponse = { job = job } }), job
  elseif action == "ListJobs" then
    local jobs = {}
    for _, job in ipairs(created) do
      if job.customId == request.listJobsRequest.customId then jobs[#jobs + 1] = cjson.encode(job) end
    end
    return json(200, ('{"requestId":"r-l","listJobsResponse":{"jobs":[%s],"total":%d}}')
      :format(table.concat(jobs, ","), #jobs))
  elseif action == "ListModels" then
    return json(200, '{"requestId":"r-m","listModelsResponse":{"models":[],"total":0}}')
  end
  return json(200, '{"requestId":"r-g","getJobResponse":{"job":' .. JOB .. '}}')
end

local function read_request(conn)
  conn:settimeout(5)
  local line = conn:receive("*l")
  if not line then return nil end
  local path = line:match("^%u+ (%S+)")
  local length = 0
  repeat
    local header = conn:receive("*l")
    if not header then return nil end
    local n = header:lower():match("^content%-length:%s*(%d+)")
    if n then length = tonumber(n) end
  until header == ""
  local body = length > 0 and conn:receive(length) or ""
  return path, body
end

local function answer(conn, r)
  local head = { ("HTTP/1.1 %d Whatever"):format(r.status), "Connection: close",
                 ("Content-Length: %d"):format(r.length or #r.body) }
  if r.type then head[#head + 1] = "Content-Type: " .. r.type end
  if r.retry_after then head[#head + 1] = "Retry-After: " .. r.retry_after end
  conn:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. r.body)
end

-- The defect specs' scenarios. Their names carry their parameters.

-- The secret key of a request body, in the forms a server may quote it:
-- "json" (a plain JSON string), "uescape" (every byte \u-escaped: only the
-- decoded text holds the key), "html" and "url" (escaped so; "urllower" with
-- lowercase hex), "nul" and
-- "nulu" (after a \u0000, plain or \u-escaped).
local function key_forms(body)
  local ok, request = pcall(cjson.decode, body)
  local key = ok and type(request) == "table" and request.secretKey or "no-key"
  local inside = cjson.encode(key):sub(2, -2)
  local uescape = key:gsub(".", function(c) return ("\\u%04x"):format(c:byte()) end)
  local html = key:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                     ['"'] = "&quot;", ["'"] = "&#39;" })
  local url = key:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
  local urllower = key:gsub("[^%w%-%._~]", function(c) return ("%%%02x"):format(c:byte()) end)
  return { json = inside, uescape = uescape, html = html, url = url, urllower = urllower,
           nul = "r\\u0000" .. inside, nulu = "r\\u0000" .. uescape }
end

-- key_<form>_<where>: the key (in that form) as message, code and request
-- id: of a 500 ("http"), of a 200 without its response ("api"), of a 200
-- whose response has no job ("apijob"); "page": an HTML 502 page quoting it;
-- "job": a GetJob answer whose job holds it (in values and in a key).
local function key_answer(form, where, body)
  local quoted = key_forms(body)[form] or "no-such-form"
  if where == "page" then
    return { status = 502, type = "text/html", body = "<html><body>" .. quoted .. "</body></html>" }
  end
  local fields = ('"message":"m %s","code":"%s","requestId":"%s"'):format(quoted, quoted, quoted)
  if where == "job" then   -- a GetJob answer whose values and a key hold it
    return json(200, ('{"requestId":"%s","getJobResponse":{"job":{"id":"j-%s","state":3,'
      .. '"customId":"%s","outputs":[{"destination":"/%s","smartContentResult":{"voiceCloning":'
      .. '{"voiceName":"%s.wav"}}}],"extra":{"%s":["%s"]}}}}'):format(quoted, quoted, quoted,
        quoted, quoted, quoted, quoted))
  end
  if where == "http" then return json(500, "{" .. fields .. "}") end
  if where == "apijob" then return json(200, "{" .. fields .. ',"getJobResponse":{}}') end
  return json(200, "{" .. fields .. "}")
end

local function job_answer(job)
  return json(200, '{"requestId":"r-n","getJobResponse":{"job":' .. job .. "}}")
end

local special = {
  -- a long message (3000 bytes; the client keeps 300) and a long request id
  long_error = function()
    return json(500, ('{"message":"%s","requestId":"rid-%s"}'):format(("m"):rep(3000), ("r"):rep(2000)))
  end,
  -- numbers JSON does not have
  hexstate = function() return job_answer('{"id":"j-h","state":0x3}') end,
  nanstate = function() return job_answer('{"id":"j-n","state":NaN}') end,
  infstate = function() return job_answer('{"id":"j-i","state":Infinity}') end,
}

-- The body of a file download: n bytes of c.
local function file_body(n, c) return (c or "x"):rep(tonumber(n)) end

local function head(status, length)
  local lines = { ("HTTP/1.1 %d Whatever"):format(status), "Connection: close" }
  if length then lines[#lines + 1] = "Content-Length: " .. length end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local function feed_slow()
  local now = socket.gettime()
  for i = #slow, 1, -1 do
    local s = slow[i]
    if now >= s.due then
      local piece = table.remove(s.pieces, 1)
      local sent = s.conn:send(piece[1])
      if not sent or #s.pieces == 0 then
        s.conn:close()
        table.remove(slow, i)
      else
        s.due = now + piece[2]
      end
    end
  end
end

server:settimeout(0.02)   -- so that slow answers go on between connections

while true do
  feed_slow()
  local conn = server:accept()
  if conn then
    local path, body = read_request(conn)
    local name = path and path:match("^/([%w_]+)/")
    if name then counts[name] = (counts[name] or 0) + 1 end
    local n = name and counts[name]
    -- flaky_<status>_<times>_<tag>: <status> the first <times> times, then a valid answer
    local flaky_status, times = (name or ""):match("^flaky_(%d+)_(%d+)_")
    -- after_<value>_<tag>: a 429 with Retry-After: <value> (seconds, or "date<n>":
    -- an HTTP date n seconds ahead), then a valid answer
    local after = (name or ""):match("^after_([%w]+)_")
    if path and path:match("^/_count/") then
      answer(conn, json(200, tostring(counts[path:match("^/_count/([%w_]+)")] or 0)))
      conn:close()
    elseif path and path:match("^/_created/") then
      answer(conn, json(200, tostring(#created)))
      conn:close()
    elseif flaky_status then
      if n <= tonumber(times) then
        answer(conn, json(tonumber(flaky_status), '{"message":"flaky"}'))
      else
        answer(conn, (ok_answer(body)))
      end
      conn:close()
    elseif after then
      if n == 1 then
        local value = after
        local ahead = after:match("^date(%d+)$")
        if ahead then value = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + tonumber(ahead)) end
        answer(conn, { status = 429, type = "application/json", body = '{"message":"slow down"}',
                       retry_after = value })
      else
        answer(conn, (ok_answer(body)))
      end
      conn:close()
    elseif name and name:match("^drop_") then
      -- drop_<tag>: the first CreateJob of each text is processed, then the
      -- connection closes without an answer; everything else is answered
      local text = body:find('"CreateJob"', 1, true) and body:match('"sourceData":"([^"]*)"')
      local reply = ok_answer(body)
      if text and not dropped[text] then dropped[text] = true else answer(conn, reply) end
      conn:close()
    elseif name and name:match("^reset_") then
      -- reset_<tag>: the first CreateJob saying "once" is cut off before it
      -- is processed
      if body:find('"CreateJob"', 1, true) and body:find('"sourceData":"once"', 1, true)
          and not dropped.reset then
        dropped.reset = true
      else
        answer(conn, (ok_answer(body)))
      end
      conn:close()
    elseif name and special[name] then
      answer(conn, special[name](body))
      conn:close()
    elseif name and name:match("^key_") then
      local form, where = name:match("^key_(%a+)_(%a+)$")
      answer(conn, key_answer(form, where, body))
      conn:close()
    elseif name and name:match("^utf8_%d+$") then
      -- a message of n ASCII bytes, then 2-, 3- and 4-byte characters
      local n = tonumber(name:match("^utf8_(%d+)$"))
      answer(conn, json(500, ('{"message":"%s","requestId":"r-u"}'):format(("a"):rep(n)
        .. ("\195\169\226\130\172\240\159\152\128"):rep(40))))
      conn:close()
    elseif name and name:match("^huge_%d+$") then
      -- a 400 of n MB of JSON (under the client's 16 MB limit)
      local mb = tonumber(name:match("%d+"))
      answer(conn, json(400, '{"message":"' .. ("h"):rep(mb * 1024 * 1024 - 20) .. '"}'))
      conn:close()
    elseif name and name:match("^file_%d+_%w$") then
      -- file_<n>_<c>: a download of n bytes of c, with its length
      local n, c = name:match("^file_(%d+)_(%w)$")
      conn:send(head(200, n) .. file_body(n, c))
      conn:close()
    elseif name and name:match("^stream_%d+_%w$") then
      -- stream_<n>_<c>: the same without a length: the end of the connection ends it
      local n, c = name:match("^stream_(%d+)_(%w)$")
      conn:send(head(200) .. file_body(n, c))
      conn:close()
    elseif name == "trickle" then
      -- 2 bytes a second, of 200
      local pieces = { { head(200, 200), 0 } }
      for _ = 1, 100 do pieces[#pieces + 1] = { "tt", 1 } end
      slow[#slow + 1] = { conn = conn, pieces = pieces, due = 0 }
    elseif name == "stall" then
      -- 10 bytes of 100, then nothing for 30 s
      slow[#slow + 1] = { conn = conn, due = 0, pieces = {
        { head(200, 100) .. ("s"):rep(10), 30 }, { ("s"):rep(90), 0 } } }
    elseif name == "keepalive" then
      while path do
        conn:send(KEPT_ALIVE)
        path = read_request(conn)
      end
      conn:close()
    elseif name == "hang" then
      held[#held + 1] = conn
    elseif name == "close" then
      conn:close()
    elseif name == "cut" then
      answer(conn, { status = 200, type = "application/json", body = '{"requestId":', length = 100 })
      conn:close()
    elseif name == "echo_html" then
      -- an HTML error page quoting the request, padded so that the secret
      -- key straddles the client's message cut (300 bytes)
      local key_at = (body:find('"secretKey":"', 1, true) or 1) + 12
      local padding = ("."):rep(math.max(0, 290 - 12 - key_at))
      answer(conn, { status = 502, type = "text/html",
                     body = "<html><body>" .. padding .. body .. "</body></html>" })
      conn:close()
    elseif name == "echo" then
      -- a server that quotes the whole request back, credentials included
      answer(conn, json(500, '{"message":' .. string.format("%q", body):gsub("\\\n", "\\n") .. "}"))
      conn:close()
    else
      answer(conn, scenarios[name] or json(404, '{"message":"no such scenario"}'))
      conn:close()
    end
  end
end
