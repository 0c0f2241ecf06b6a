--- voiceclone.httpd: the small HTTP/1.1 server under the sandbox and
-- callbacks.listen. One thread on luv (libuv: epoll, so no select() limit
-- on connections or descriptor numbers), keep-alive and pipelining, a timer
-- heap on one uv timer. It knows nothing of the voice cloning API: the
-- application gives it handler(request, reply), which answers at once (it
-- returns a response) or later (it returns nil and calls reply(response)
-- once, from a timer or a task).
--
--   local server = httpd.new{ host =, port =, handler = fn(req, reply) }
--   assert(server:listen())          -- server.port: the port it got
--   server:at(t, fn)                 -- fn() at clock time t
--   server:step(max_wait)            -- one loop iteration, for a loop of your own
--   server:guard(fn)                 -- fn as a luv callback of your own, errors caught
--   server:close()
--
-- Everything is callbacks on libuv's default loop: a host already running
-- that loop (uv.run()) needs no step() at all. Every callback runs under
-- xpcall: a fault while serving one connection closes that connection,
-- never the server (luv itself would exit the process).
--
-- Request:  { method, target, path, query, version, headers = {lowercased =
--             value}, header_list = {{name, value}...}, body, keep_alive,
--             connection = a number per connection }
-- Response: { status, headers = {Name = value}, body = string,
--             file = handle, file_size = n,   -- streamed instead of body
--             delay = seconds,                -- on top of the server's latency
--             close = "drop" | "reset",       -- no answer: close (FIN) or reset (RST)
--             truncate = n,                   -- send n bytes of the body only, then close
--             note = "short text for the access log" }
local uv = require "luv"

local httpd = {}

local Server = {}
Server.__index = Server
Server.__name = "voiceclone.httpd.Server"

local DEFAULTS = {
  host = "127.0.0.1", port = 0,
  latency = 0,                 -- seconds every answer is delayed by (a timer, never a sleep)
  max_header = 64 * 1024,      -- request line and headers
  max_body = 1024 * 1024,
  keep_alive = true,           -- false: one request per connection
  require_length = false,      -- true: a POST/PUT/PATCH without Content-Length gets 411
  request_timeout = 60,        -- seconds a request gets to arrive whole (408 after)
  idle_timeout = 60,           -- seconds a kept-alive connection may stay idle
  write_timeout = 60,          -- seconds an answer may wait for the peer to read it
  linger = 2,                  -- after our last byte, seconds to wait for the peer's FIN
  max_connections = 1000000,   -- beyond this, new connections get a 503 and are closed
  backlog = 4096,
  default_type = "text/plain; charset=utf-8",
}
local FILE_CHUNK = 128 * 1024

httpd.REASONS = {
  [100] = "Continue", [200] = "OK", [204] = "No Content", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout", [409] = "Conflict",
  [411] = "Length Required", [413] = "Payload Too Large", [415] = "Unsupported Media Type",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

--- Seconds since the epoch, as a float (microseconds).
function httpd.now()
  local s, us = uv.gettimeofday()
  return s + us / 1e6
end

-- Milliseconds for a uv timer: a whole number, never negative.
local function ms(seconds)
  if seconds <= 0 then return 0 end
  return math.ceil(seconds * 1000)
end

local function noop() end

----------------------------------------------------------------------------
-- Guarded callbacks. An error inside a luv callback would end the process;
-- here it is logged and, with a connection given, closes that connection.
-- Lua's own SIGINT hook raises "interrupted!" wherever Lua code runs next:
-- that error is kept and raised again from step(), outside the loop.

local depth = 0   -- luv callbacks of ours running (step() must not nest in them)

-- Let libuv finish closing handles (outside its loop only): luv 1.44 may
-- crash at exit on a handle closed but not yet done with.
local function settle()
  if depth == 0 then uv.run("nowait") end
end

local function traceback(err)
  return debug.traceback(tostring(err), 2)
end

function Server:_caught(err, c)
  if tostring(err):find("interrupted!", 1, true) then
    self.pending_error = self.pending_error or err
    uv.stop()
  else
    self:_log("%s error: %s", c and "connection" or "callback", tostring(err))
  end
  if c then self:_close_conn(c) end
end

--- fn wrapped for use as a luv callback: its errors are logged (and close
-- connection c, if given) instead of ending the process.
function Server:guard(fn, c)
  return function(a, b)
    depth = depth + 1
    local ok, err = xpcall(function() return fn(a, b) end, traceback)
    depth = depth - 1
    if not ok then self:_caught(err, c) end
  end
end

----------------------------------------------------------------------------
-- Timers: a binary min-heap of {at, seq, fn}; seq keeps equal times in order.

local function heap_less(a, b)
  if a.at ~= b.at then return a.at < b.at end
  return a.seq < b.seq
end

local function heap_push(h, item)
  h[#h + 1] = item
  local i = #h
  while i > 1 do
    local p = math.floor(i / 2)
    if heap_less(h[i], h[p]) then h[i], h[p] = h[p], h[i]; i = p else break end
  end
end

local function heap_pop(h)
  local top = h[1]
  local last = table.remove(h)
  if #h > 0 then
    h[1] = last
    local i, n = 1, #h
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and heap_less(h[l], h[m]) then m = l end
      if r <= n and heap_less(h[r], h[m]) then m = r end
      if m == i then break end
      h[i], h[m] = h[m], h[i]
      i = m
    end
  end
  return top
end

----------------------------------------------------------------------------

local function default_error(status, _code, message)
  return { status = status, body = message .. "\n",
           headers = { ["Content-Type"] = "text/plain; charset=utf-8" } }
end

--- A server, not yet listening. opts: handler(req, reply) -> response or
-- nil (required); error_response(status, code, message) -> response, for
-- the answers the server makes itself (400, 408, 411, 413, 431, 500, 503,
-- 505); log(line) or nil; clock() -> seconds (default httpd.now);
-- server_name (a Server header); and the DEFAULTS above.
function httpd.new(opts)
  assert(type(opts) == "table" and type(opts.handler) == "function",
    "httpd.new: a handler function is required")
  local self = setmetatable({
    handler = opts.handler,
    error_response = opts.error_response or default_error,
    log = opts.log,
    clock = opts.clock or httpd.now,
    server_name = opts.server_name,
    timers = {},
    timer_seq = 0,
    conns = {},          -- connection -> true
    nconns = 0,
    accepted = 0,
  }, Server)
  for k, v in pairs(DEFAULTS) do
    if opts[k] ~= nil then self[k] = opts[k] else self[k] = v end
  end
  self.sweep_every = math.max(0.01, math.min(1, self.request_timeout / 4, self.idle_timeout / 4,
    self.write_timeout / 4, self.linger > 0 and self.linger / 4 or 1))
  return self
end

-- An IP address for host (names are looked up once, here).
local function resolve(host)
  if host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true) then return host end
  local list, err = uv.getaddrinfo(host, nil, { socktype = "stream" })
  if not list or not list[1] then return nil, err or ("cannot resolve " .. host) end
  return list[1].addr
end

--- Listen on host:port; returns true, or nil and luv's "ENAME: message".
function Server:listen()
  if self.tcp then return nil, "already listening" end
  if self.closed then return nil, "closed" end
  local addr, rerr = resolve(self.host)
  if not addr then return nil, rerr end
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(addr, self.port)
  if ok then
    -- (libuv reports a port in use here, at listen, rather than at bind)
    ok, err = tcp:listen(self.backlog, self:guard(function(lerr) self:_accept(lerr) end))
  end
  if not ok then
    tcp:close()
    settle()
    return nil, err
  end
  self.tcp = tcp
  self.port = tcp:getsockname().port
  self.timer = uv.new_timer()     -- the timer heap's head
  self.wake = uv.new_timer()      -- bounds step()'s wait
  self.sweeper = uv.new_timer()   -- timeouts and lingering connections
  self.on_timer = self:guard(function() self:_run_timers() end)
  local every = ms(self.sweep_every)
  self.sweeper:start(every, every, self:guard(function() self:_sweep(self.clock()) end))
  self:_arm()
  return true
end

--- Run fn() at clock time t (or as soon as possible after it).
function Server:at(t, fn)
  self.timer_seq = self.timer_seq + 1
  local item = { at = t, seq = self.timer_seq, fn = fn }
  heap_push(self.timers, item)
  if self.timers[1] == item then self:_arm() end
end

function Server:_arm()
  if not self.timer then return end
  local top = self.timers[1]
  if not top then
    self.timer:stop()
    return
  end
  uv.update_time()
  -- at least 1 ms when not yet due: a timer fired a hair early re-arms, never spins
  local delay = top.at - self.clock()
  self.timer:start(delay > 0 and math.max(1, ms(delay)) or 0, 0, self.on_timer)
end

function Server:_run_timers()
  local now = self.clock()
  while self.timers[1] and self.timers[1].at <= now do
    local t = heap_pop(self.timers)
    local ok, err = xpcall(t.fn, traceback)
    if not ok then self:_caught(err) end
  end
  self:_arm()
end

function Server:_log(fmt, ...)
  if self.log then self.log(string.format(fmt, ...)) end
end

--- Open connections.
function Server:connections()
  return self.nconns
end

----------------------------------------------------------------------------
-- Connections

function Server:_close_conn(c, reset)
  if c.closed then return end
  c.closed = true
  if c.file then
    c.file:close()
    c.file = nil
  end
  self.conns[c] = nil
  self.nconns = self.nconns - 1
  if c.tcp:is_closing() then return end
  if reset and c.tcp.close_reset and not c.shut then
    -- SO_LINGER 0: the peer sees a reset, not an orderly end
    local ok, res = pcall(c.tcp.close_reset, c.tcp)
    if ok and res then return end
  end
  c.tcp:close()
end

local function status_line(status)
  return string.format("HTTP/1.1 %d %s\r\n", status, httpd.REASONS[status] or "Unknown")
end

function Server:_head(res, length, keep)
  local head = { status_line(res.status) }
  local headers = res.headers or {}
  local typed = false
  for name, value in pairs(headers) do
    if name:lower() == "content-type" then typed = true end
    head[#head + 1] = name .. ": " .. value .. "\r\n"
  end
  if not typed then head[#head + 1] = "Content-Type: " .. self.default_type .. "\r\n" end
  head[#head + 1] = "Content-Length: " .. length .. "\r\n"
  if self.server_name then head[#head + 1] = "Server: " .. self.server_name .. "\r\n" end
  head[#head + 1] = keep and "Connection: keep-alive\r\n\r\n" or "Connection: close\r\n\r\n"
  return table.concat(head)
end

function Server:_accept(err)
  if err then
    self:_log("cannot accept a connection: %s", tostring(err))
    return
  end
  if not self.tcp then return end
  local tcp = uv.new_tcp()
  local ok, aerr = self.tcp:accept(tcp)
  if not ok then
    tcp:close()
    self:_log("cannot accept a connection: %s", tostring(aerr))
    return
  end
  if self.nconns >= self.max_connections then
    -- Politely refuse: one best-effort answer, then close.
    local res = self.error_response(503, "ServiceUnavailable", "too many connections")
    tcp:write(self:_head(res, #res.body, false) .. res.body)
    tcp:shutdown(function() tcp:close() end)
    self:_log("refused a connection: %d open", self.nconns)
    return
  end
  tcp:nodelay(true)
  self.accepted = self.accepted + 1
  local now = self.clock()
  local c = {
    id = self.accepted,    -- lets a client's connection reuse be seen
    tcp = tcp, inbuf = "",
    busy = false,          -- a request is being answered: parse no further
    pending = 0,           -- writes libuv has not finished
    since = now,           -- when the request being received began (nil: idle)
    idle_since = now,
  }
  self.conns[c] = true
  self.nconns = self.nconns + 1
  c.on_read = self:guard(function(rerr, data) self:_read(c, rerr, data) end, c)
  tcp:read_start(c.on_read)
end

-- Queue bytes (a string or a list of strings); done() once libuv has them all.
function Server:_write(c, data, done)
  if c.closed then return end
  if c.pending == 0 then c.write_since = self.clock() end
  c.pending = c.pending + 1
  local ok, err = c.tcp:write(data, self:guard(function(werr)
    c.pending = c.pending - 1
    c.write_since = self.clock()   -- progress
    if werr then return self:_close_conn(c) end
    if done and not c.closed then done() end
  end, c))
  if not ok then
    self:_log("write error: %s", tostring(err))
    self:_close_conn(c)
  end
end

-- Stream a file a chunk at a time: never more than FILE_CHUNK of it in memory.
function Server:_stream(c, file, left, done)
  c.file = file
  local chunk = file:read(math.min(FILE_CHUNK, left))
  if not chunk or #chunk == 0 then
    return self:_close_conn(c)   -- the file shrank under us: the length is now wrong
  end
  left = left - #chunk
  if left == 0 then
    file:close()
    c.file = nil
    self:_write(c, chunk, done)
  else
    self:_write(c, chunk, function() self:_stream(c, file, left, done) end)
  end
end

-- Serialise a response and write it.
function Server:_send(c, req, res, started)
  if c.closed then
    if res.file then res.file:close() end
    return
  end
  local elapsed = (self.clock() - started) * 1000
  if res.close == "drop" or res.close == "reset" then
    if res.file then res.file:close() end
    if req then
      self:_log("%s %s %s %s %.1fms", req.method, req.path, res.note or "-", res.close, elapsed)
    end
    return self:_close_conn(c, res.close == "reset")
  end
  local keep = self.keep_alive and not c.close_after and req and req.keep_alive
    and not res.truncate and true or false
  if not keep then c.close_after = true end
  local body = res.body or ""
  local length = res.file and res.file_size or #body
  local head = self:_head(res, length, keep)
  local head_only = req and req.method == "HEAD"
  local function done() self:_done(c) end
  if res.file and not head_only and length > 0 and not res.truncate then
    self:_write(c, head)
    self:_stream(c, res.file, length, done)
  else
    if res.file then
      if res.truncate then body = res.file:read(length) or "" end
      res.file:close()
    end
    if head_only then
      self:_write(c, head, done)
    elseif res.truncate then
      self:_write(c, { head, body:sub(1, math.max(0, math.min(res.truncate, length - 1))) }, done)
    else
      self:_write(c, { head, body }, done)
    end
  end
  if req then
    self:_log("%s %s %s %d %.1fms%s", req.method, req.path, res.note or "-", res.status, elapsed,
      res.truncate and " (truncated)" or "")
  end
end

-- Answer a request, after the configured latency and the response's own delay.
function Server:_respond(c, req, res, started)
  local delay = self.latency + (res.delay or 0)
  if delay > 0 then
    self:at(started + delay, function() self:_send(c, req, res, started) end)
  else
    self:_send(c, req, res, started)
  end
end

-- The answer is with libuv: on to the next request, or to the end.
function Server:_done(c)
  c.busy = false
  local now = self.clock()
  c.idle_since = now
  c.since = c.inbuf ~= "" and now or nil
  if c.close_after then return self:_finish_conn(c) end
  self:_process(c)
  if c.paused and not c.closed and #c.inbuf <= self.max_header + self.max_body then
    c.paused = false
    c.tcp:read_start(c.on_read)
  end
end

-- Half-close after the last answer, then linger until the peer's FIN so an
-- unread request body does not turn into a reset that eats our answer.
function Server:_finish_conn(c)
  if c.peer_closed or self.linger <= 0 then return self:_close_conn(c) end
  c.lingering = true
  c.linger_until = self.clock() + self.linger
  c.shut = true
  c.tcp:shutdown(self:guard(function(err)
    if err then self:_close_conn(c) end
  end, c))
  if c.paused then
    c.paused = false
    c.tcp:read_start(c.on_read)   -- to see the FIN
  end
end

-- An error answer that ends the connection (broken or refused request).
function Server:_fail(c, status, code, message)
  self:_log("refused a request: %d %s", status, message)
  c.busy = true
  c.close_after = true
  c.discard = true      -- what comes after is read and dropped
  c.req = nil
  c.inbuf = ""
  self:_respond(c, nil, self.error_response(status, code, message), self.clock())
end

local function parse_head(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line:gsub("\r$", "")
  end
  local method, target, major, minor = lines[1]:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method then return nil, 400, "malformed request line" end
  if major ~= "1" then return nil, 505, "only HTTP/1.x is spoken here" end
  local req = {
    method = method, target = target, version = "1." .. minor,
    headers = {}, header_list = {},
  }
  for i = 2, #lines do
    local name, value = lines[i]:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, 400, "malformed header line" end
    local lname = name:lower()
    req.header_list[#req.header_list + 1] = { name, value }
    local prev = req.headers[lname]
    req.headers[lname] = prev and (prev .. ", " .. value) or value
  end
  req.path, req.query = target:match("^([^?#]*)%??([^#]*)")
  local conn = (req.headers["connection"] or ""):lower()
  if req.version == "1.0" then
    req.keep_alive = conn:find("keep%-alive") ~= nil
  else
    req.keep_alive = conn:find("close") == nil
  end
  return req
end

local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

-- Parse the next request's head; false when it is not whole yet.
function Server:_parse(c)
  c.inbuf = c.inbuf:gsub("^\r?\n", "")   -- tolerate stray CRLFs between requests
  local s, e = c.inbuf:find("\r?\n\r?\n")
  if not s then
    if #c.inbuf > self.max_header then
      self:_fail(c, 431, "HeadersTooLarge", "request headers are too large")
    end
    return false
  end
  if s > self.max_header then
    self:_fail(c, 431, "HeadersTooLarge", "request headers are too large")
    return false
  end
  local req, status, message = parse_head(c.inbuf:sub(1, s - 1))
  c.inbuf = c.inbuf:sub(e + 1)
  if not req then
    self:_fail(c, status, "BadRequest", message)
    return false
  end
  local len = req.headers["content-length"]
  if req.headers["transfer-encoding"] then
    self:_fail(c, 411, "LengthRequired",
      "chunked request bodies are not supported: send Content-Length")
  elseif len and not len:match("^%d+$") then
    self:_fail(c, 400, "BadRequest", "bad Content-Length")
  elseif not len and self.require_length and BODY_METHODS[req.method] then
    self:_fail(c, 411, "LengthRequired", "a Content-Length is required")
  elseif len and (#len > 15 or tonumber(len) > self.max_body) then
    self:_fail(c, 413, "RequestTooLarge",
      string.format("request body exceeds %d bytes", self.max_body))
  end
  if c.busy then return false end
  req.length = tonumber(len) or 0
  if (req.headers["expect"] or ""):lower() == "100-continue" and #c.inbuf < req.length then
    self:_write(c, "HTTP/1.1 100 Continue\r\n\r\n")
  end
  req.connection = c.id
  c.req = req
  return true
end

-- Parse and answer the requests the buffer holds, one at a time: the next
-- waits until this one's answer is written, which keeps them in order.
function Server:_process(c)
  while not c.busy and not c.closed and not c.discard do
    if not c.req and not self:_parse(c) then break end
    local req = c.req
    if #c.inbuf < req.length then break end
    req.body = c.inbuf:sub(1, req.length)
    c.inbuf = c.inbuf:sub(req.length + 1)
    c.req = nil
    c.busy = true
    self:_dispatch(c, req)
  end
end

function Server:_dispatch(c, req)
  local started = self.clock()
  local answered = false
  local function reply(res)
    if answered then return end
    answered = true
    if type(res) ~= "table" then
      self:_log("handler error: a response is a table, got %s", type(res))
      res = self.error_response(500, "InternalError", "the server failed while answering")
    end
    self:_respond(c, req, res, started)
  end
  local ok, res = xpcall(function() return self.handler(req, reply) end, traceback)
  if not ok then
    if tostring(res):find("interrupted!", 1, true) then self:_caught(res) end
    self:_log("handler error: %s", tostring(res))
    res = self.error_response(500, "InternalError", "the server failed while answering")
  end
  if res ~= nil then reply(res) end
end

function Server:_read(c, err, data)
  if c.closed then return end
  if err then return self:_close_conn(c) end
  if not data then   -- the peer's FIN
    if c.lingering then return self:_close_conn(c) end
    -- The peer sent its last bytes: answer what it asked, then close.
    c.peer_closed = true
    c.close_after = true
    self:_process(c)
    if not c.busy and c.pending == 0 then self:_close_conn(c) end
    return
  end
  if c.lingering or c.discard then return end   -- after an error or our FIN: drained
  if not c.since then c.since = self.clock() end
  c.inbuf = c.inbuf .. data
  self:_process(c)
  -- Stop reading from a client whose unanswered input is already large.
  if not c.closed and not c.paused and #c.inbuf > self.max_header + self.max_body then
    c.paused = true
    c.tcp:read_stop()
  end
end

function Server:_sweep(now)
  for c in pairs(self.conns) do
    if c.lingering then
      if now >= c.linger_until then self:_close_conn(c) end
    elseif c.pending > 0 then
      if now - c.write_since > self.write_timeout then self:_close_conn(c) end
    elseif c.busy then
      -- the application is answering: its own business how long it takes
    elseif c.since then
      if now - c.since > self.request_timeout then
        self:_fail(c, 408, "RequestTimeout", "the request took too long")
      end
    elseif now - c.idle_since > self.idle_timeout then
      self:_close_conn(c)
    end
  end
end

----------------------------------------------------------------------------
-- The loop

--- One iteration of libuv's loop: waits at most max_wait seconds (default
-- 1; 0: only what is ready) for events, and serves them. For a loop of
-- your own; not from inside a callback of the loop.
function Server:step(max_wait)
  if not self.tcp and not self.draining then return nil, "not listening" end
  assert(depth == 0, "httpd: step() inside a callback of the loop")
  local wait = max_wait or 1
  if wait > 0 then
    self.wake:start(ms(wait), 0, noop)
    uv.run("once")
    self.wake:stop()
  else
    uv.run("nowait")
  end
  local err = self.pending_error
  if err then
    self.pending_error = nil
    error(err, 0)
  end
  return true
end

--- Stop accepting connections (the port is free again); those open are
-- still served, and step() goes on working.
function Server:stop_listening()
  if self.tcp then
    self.draining = true
    self.tcp:close()
    self.tcp = nil
  end
end

--- Idempotent. Answers libuv could write at once have gone out; the rest
-- are dropped with their connections.
function Server:close()
  if self.closed then return end
  self.closed = true
  self.draining = false
  if self.tcp then
    self.tcp:close()
    self.tcp = nil
  end
  for c in pairs(self.conns) do self:_close_conn(c) end
  for _, name in ipairs({ "timer", "wake", "sweeper" }) do
    local handle = self[name]
    if handle then
      handle:close()
      self[name] = nil
    end
  end
  self.timers = {}
  settle()
end

return httpd
