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

local held = {}   -- connections we never answer ("hang"), kept open

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

while true do
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
