-- voiceclone.httpd, the HTTP server on luv under the sandbox and
-- callbacks.listen: in this process, driven by step(), with raw HTTP from
-- luasocket; and thousands of connections held open on a real sandbox.
local socket = require "socket"
local httpd = require "voiceclone.httpd"
local helpers = require "support.helpers"
local json = require("cjson.safe").new()

-- A server in this process; handler(req, reply) as httpd takes it.
local function serve(options)
  local server = httpd.new(options)
  assert(server:listen())
  return server
end

local function connect(server)
  local c = assert(socket.connect("127.0.0.1", server.port))
  c:settimeout(0)
  return c
end

-- Steps the server until what c has received satisfies done(text), or
-- the peer closes, or `seconds` pass; returns the text and whether the
-- connection ended ("closed" or an error), or nil.
local function receive_until(server, c, done, seconds)
  local got, deadline = "", socket.gettime() + (seconds or 5)
  while socket.gettime() < deadline do
    server:step(0.01)
    local data, err, partial = c:receive(65536)
    got = got .. (data or partial or "")
    if err and err ~= "timeout" then return got, err end
    if done and done(got) then return got end
  end
  return got
end

-- One whole response in text: status, headers, body (by Content-Length).
local function parse_response(text)
  local head, rest = text:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil end
  local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  local length = tonumber(headers["content-length"] or 0)
  if #rest < length then return nil end
  return status, headers, rest:sub(1, length), rest:sub(length + 1)
end

local function whole(text) return parse_response(text) ~= nil end

describe("voiceclone.httpd", function()
  local server
  after_each(function()
    if server then server:close() end
    server = nil
  end)

  it("lets a handler answer later, from a timer, and keeps the connection alive", function()
    server = serve { handler = function(req, reply)
      server:at(server.clock() + 0.05, function()
        reply { status = 200, body = req.method .. " " .. req.path .. " " .. req.body }
      end)
    end }
    local c = connect(server)
    local t0 = socket.gettime()
    assert(c:send("POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"))
    local text = receive_until(server, c, whole)
    local status, headers, body = parse_response(text)
    assert.equal(200, status)
    assert.equal("POST /later hi", body)
    assert.equal("keep-alive", headers.connection)
    assert.is_true(socket.gettime() - t0 >= 0.045)
    assert(c:send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"))
    status, _, body = parse_response(receive_until(server, c, whole))
    assert.equal(200, status)
    assert.equal("GET /again ", body)
    assert.equal(1, server:connections())
    c:close()
  end)

  it("answers its own errors: 400, 411, 413, 431, 505, and 500 when the handler raises", function()
    server = serve { max_body = 100, max_header = 1024, require_length = true,
                     handler = function(req)
                       if req.path == "/raise" then error("handler broke") end
                       return { status = 200, body = "ok" }
                     end }
    local cases = {
      { "NOT HTTP\r\n\r\n", 400 },
      { "POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411 },
      { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411 },
      { "POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413 },
      { "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400 },
      { "GET / HTTP/1.1\r\nX-Big: " .. ("y"):rep(2000) .. "\r\n\r\n", 431 },
      { "GET / HTTP/2.0\r\n\r\n", 505 },
      { "GET /raise HTTP/1.1\r\n\r\n", 500 },
    }
    for _, case in ipairs(cases) do
      local c = connect(server)
      assert(c:send(case[1]))
      local status, headers = parse_response(receive_until(server, c, whole))
      assert.equal(case[2], status, case[1]:sub(1, 30))
      if case[2] ~= 500 then assert.equal("close", headers.connection) end
      c:close()
    end
    -- and it still serves
    local c = connect(server)
    assert(c:send("GET / HTTP/1.1\r\n\r\n"))
    assert.equal(200, (parse_response(receive_until(server, c, whole))))
    c:close()
  end)

  it("answers 408 to a request that does not arrive in time, and closes idle connections", function()
    server = serve { request_timeout = 0.2, idle_timeout = 0.2,
                     handler = function() return { status = 200, body = "ok" } end }
    local slow = connect(server)
    assert(slow:send("GET / HTTP/1.1\r\nHost:"))
    local text, ended = receive_until(server, slow, nil, 3)
    assert.matches("^HTTP/1%.1 408", text)
    assert.equal("closed", ended)
    slow:close()
    local idle = connect(server)
    assert(idle:send("GET / HTTP/1.1\r\n\r\n"))
    text, ended = receive_until(server, idle, nil, 3)
    assert.equal(200, (parse_response(text)))
    assert.equal("closed", ended)
    idle:close()
  end)

  it("drops, resets or truncates an answer when the response says so", function()
    server = serve { handler = function(req)
      local kind = req.path:sub(2)
      return { status = 200, body = ("z"):rep(1000), close = (kind == "drop" or kind == "reset") and kind or nil,
               truncate = kind == "truncate" and 10 or nil }
    end }
    local c = connect(server)
    assert(c:send("GET /drop HTTP/1.1\r\n\r\n"))
    local text, ended = receive_until(server, c)
    assert.equal("", text)
    assert.equal("closed", ended)
    c:close()
    c = connect(server)
    assert(c:send("GET /reset HTTP/1.1\r\n\r\n"))
    text, ended = receive_until(server, c)
    assert.equal("", text)
    assert.truthy(ended == "closed" or ended:find("reset", 1, true), ended)
    c:close()
    c = connect(server)
    assert(c:send("GET /truncate HTTP/1.1\r\n\r\n"))
    text, ended = receive_until(server, c)
    assert.equal("closed", ended)
    assert.matches("Content%-Length: 1000\r\n", text)
    assert.equal(10, #text:match("\r\n\r\n(.*)$"))
    c:close()
  end)

  it("closes twice, and then steps no more", function()
    server = serve { handler = function() return { status = 200 } end }
    local port = server.port
    server:close()
    server:close()
    assert.is_nil((server:step(0)))
    -- the port is free again at once
    server = serve { port = port, handler = function() return { status = 204 } end }
    assert.equal(port, server.port)
  end)
end)

describe("the sandbox on voiceclone.httpd", function()
  local CONNECTIONS = 5000

  it("holds 5,000 connections open at once and still answers API requests", function()
    local limit = helpers.fd_limit()
    if limit and limit < CONNECTIONS + 200 then
      pending(("this process may open only %d descriptors (ulimit -n)"):format(limit))
      return
    end
    local started = socket.gettime()
    local sandbox = helpers.start_sandbox()
    local conns = {}
    finally(function()
      for _, c in ipairs(conns) do c:close() end
      sandbox.stop()
    end)
    local port = tonumber(sandbox.url:match(":(%d+)$"))
    for i = 1, CONNECTIONS do
      conns[i] = assert(socket.connect("127.0.0.1", port))
      conns[i]:settimeout(10)
    end

    -- All open, the API answers on a new connection, and quickly.
    local client = helpers.client(sandbox)
    local t0 = socket.gettime()
    local job = assert(client:synthesize { text = "still here", content_id = "many" })
    assert(client:get_job(job.id))
    assert.is_true(socket.gettime() - t0 < 2, "API requests took " .. (socket.gettime() - t0) .. " s")

    -- Every one of the held connections is served too, none refused.
    local body = json.encode { action = "ListJobs", secretId = helpers.SECRET_ID,
                               secretKey = helpers.SECRET_KEY,
                               listJobsRequest = { customId = "nobody" } }
    local request = "POST /release/job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
    for _, c in ipairs(conns) do assert(c:send(request)) end
    local ok = 0
    for _, c in ipairs(conns) do
      local line = c:receive("*l")
      if line and line:match("^HTTP/1%.1 200") then ok = ok + 1 end
      local length = 0
      repeat
        local h = c:receive("*l")
        local n = h and h:lower():match("^content%-length:%s*(%d+)")
        if n then length = tonumber(n) end
      until not h or h == ""
      if length > 0 then c:receive(length) end
    end
    assert.equal(CONNECTIONS, ok)
    assert.is_true(socket.gettime() - started < 30, "took " .. (socket.gettime() - started) .. " s")
  end)
end)
