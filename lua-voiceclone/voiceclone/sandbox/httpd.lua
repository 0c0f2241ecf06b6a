-- A small event-driven HTTP/1.1 server: one thread, non-blocking luasocket
-- sockets, socket.select over the listening socket and every connection, and
-- a timer heap. It knows nothing of the voice cloning API: the application
-- gives it a handler(request) -> response.
--
-- Request:  { method, target, path, query, version, headers = {lowercased =
--             value}, header_list = {{name, value}...}, body }
-- Response: { status, headers = {Name = value}, body = string,
--             file = handle, file_size = n,  -- streamed instead of body
--             note = "short text for the access log" }
local socket = require "socket"

local httpd = {}

local Server = {}
Server.__index = Server

local MAX_CONNECTIONS = 1000       -- select() watches at most FD_SETSIZE (1024) fds
local MAX_FD = 1000                -- ...and no descriptor number >= FD_SETSIZE
local MAX_HEADER_BYTES = 64 * 1024
local DEFAULT_MAX_BODY = 1024 * 1024
local READ_CHUNK = 64 * 1024
local FILE_CHUNK = 64 * 1024
local IDLE_SECONDS = 60
local LINGER_SECONDS = 2           -- after our last byte, wait this long for the peer's FIN
local ACCEPTS_PER_STEP = 256       -- stay fair to existing connections under a burst
local BACKLOG = 1024

local REASONS = {
  [100] = "Continue", [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout",
  [411] = "Length Required", [413] = "Payload Too Large", [415] = "Unsupported Media Type",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

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

-- opts: host, port, handler, error_body(status, code, message) -> JSON text,
-- latency (seconds), max_body, log(line) or nil, clock() -> seconds.
function httpd.new(opts)
  return setmetatable({
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    handler = opts.handler,
    error_body = opts.error_body,
    latency = opts.latency or 0,
    max_body = opts.max_body or DEFAULT_MAX_BODY,
    log = opts.log,
    clock = opts.clock or socket.gettime,
    timers = {},
    timer_seq = 0,
    conns = {},          -- socket -> connection
    nconns = 0,
    last_sweep = 0,
  }, Server)
end

function Server:listen()
  local sock, err
  if self.host:find(":", 1, true) then sock, err = socket.tcp6() else sock, err = socket.tcp() end
  if not sock then return nil, "cannot create a socket: " .. tostring(err) end
  sock:setoption("reuseaddr", true)
  local ok, berr = sock:bind(self.host, self.port)
  if not ok then
    sock:close()
    return nil, string.format("cannot listen on %s port %s: %s", self.host, self.port, berr)
  end
  ok, berr = sock:listen(BACKLOG)
  if not ok then
    sock:close()
    return nil, string.format("cannot listen on %s port %s: %s", self.host, self.port, berr)
  end
  sock:settimeout(0)
  local _, port = sock:getsockname()
  self.sock = sock
  self.port = tonumber(port)
  return true
end

-- Run fn() at clock time t (or as soon as possible after it).
function Server:at(t, fn)
  self.timer_seq = self.timer_seq + 1
  heap_push(self.timers, { at = t, seq = self.timer_seq, fn = fn })
end

function Server:_log(fmt, ...)
  if self.log then self.log(string.format(fmt, ...)) end
end

----------------------------------------------------------------------------
-- Connections

function Server:_close_conn(c)
  if c.closed then return end
  c.closed = true
  for _, item in ipairs(c.out) do
    if type(item) == "table" and item.file then item.file:close() end
  end
  c.out = {}
  c.sock:close()
  self.conns[c.sock] = nil
  self.nconns = self.nconns - 1
end

function Server:_accept()
  for _ = 1, ACCEPTS_PER_STEP do
    local sock = self.sock:accept()
    if not sock then return end
    sock:settimeout(0)
    if self.nconns >= MAX_CONNECTIONS or sock:getfd() >= MAX_FD then
      -- Politely refuse: one best-effort write, then close.
      local body = self.error_body(503, "ServiceUnavailable", "too many connections")
      sock:send(string.format("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json"
        .. "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", #body, body))
      sock:close()
      self:_log("refused a connection: %d open", self.nconns)
    else
      sock:setoption("tcp-nodelay", true)
      self.accepted = (self.accepted or 0) + 1
      local c = {
        id = self.accepted,    -- lets a client's connection reuse be seen
        sock = sock, inbuf = "", out = {}, out_pos = 1,
        busy = false,          -- a request is being answered: parse no further
        last_active = self.clock(),
      }
      self.conns[sock] = c
      self.nconns = self.nconns + 1
    end
  end
end

-- Queue raw bytes or a file stream for writing.
local function push_out(c, item)
  c.out[#c.out + 1] = item
end

local function status_line(status)
  return string.format("HTTP/1.1 %d %s\r\n", status, REASONS[status] or "Unknown")
end

-- Serialise a response into the connection's output queue.
function Server:_queue_response(c, req, res, started)
  if c.closed then
    if res.file then res.file:close() end
    return
  end
  local keep = not c.close_after and req and req.keep_alive
  if not keep then c.close_after = true end
  local body = res.body or ""
  local length = res.file and res.file_size or #body
  local head = { status_line(res.status) }
  local headers = res.headers or {}
  if not headers["Content-Type"] then headers["Content-Type"] = "application/json" end
  for name, value in pairs(headers) do
    head[#head + 1] = name .. ": " .. value .. "\r\n"
  end
  head[#head + 1] = "Content-Length: " .. length .. "\r\n"
  head[#head + 1] = "Server: voiceclone-sandbox\r\n"
  head[#head + 1] = keep and "Connection: keep-alive\r\n\r\n" or "Connection: close\r\n\r\n"
  local head_only = req and req.method == "HEAD"
  if res.file and not head_only and length > 0 then
    push_out(c, table.concat(head))
    push_out(c, { file = res.file, left = length })
  else
    if res.file then res.file:close() end
    push_out(c, table.concat(head) .. (head_only and "" or body))
  end
  push_out(c, { done = true })   -- marks the end of this response
  if req then
    self:_log("%s %s %s %d %.1fms", req.method, req.path, res.note or "-", res.status,
      (self.clock() - started) * 1000)
  end
  self:_write(c)
end

-- Answer a request, after the configured latency (a timer, never a sleep).
function Server:_respond(c, req, res, started)
  if self.latency > 0 then
    self:at(started + self.latency, function() self:_queue_response(c, req, res, started) end)
  else
    self:_queue_response(c, req, res, started)
  end
end

-- An error response that ends the connection (broken or refused request).
function Server:_fail(c, status, code, message)
  self:_log("refused a request: %d %s", status, message)
  c.busy = true
  c.close_after = true
  c.reading = false
  self:_respond(c, nil, {
    status = status, body = self.error_body(status, code, message),
  }, self.clock())
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

-- Parse as many complete requests as the buffer holds (one at a time: the
-- next waits until this one's answer is written, which keeps order).
function Server:_process(c)
  -- Re-entered from _write when an answer completes inside this loop: the
  -- loop below goes on by itself (and recursion would grow with pipelining).
  if c.in_process then return end
  c.in_process = true
  while not c.busy and not c.closed and c.reading ~= false do
    if not c.req then
      c.inbuf = c.inbuf:gsub("^\r?\n", "")   -- tolerate stray CRLFs between requests
      local s, e = c.inbuf:find("\r?\n\r?\n")
      if not s then
        if #c.inbuf > MAX_HEADER_BYTES then
          self:_fail(c, 431, "HeadersTooLarge", "request headers are too large")
        end
        break
      end
      local req, status, message = parse_head(c.inbuf:sub(1, s - 1))
      c.inbuf = c.inbuf:sub(e + 1)
      local len = req and req.headers["content-length"]
      if not req then
        self:_fail(c, status, "BadRequest", message)
      elseif req.headers["transfer-encoding"] then
        self:_fail(c, 411, "LengthRequired",
          "chunked request bodies are not supported: send Content-Length")
      elseif len and not len:match("^%d+$") then
        self:_fail(c, 400, "BadRequest", "bad Content-Length")
      elseif (tonumber(len) or 0) > self.max_body then
        self:_fail(c, 413, "RequestTooLarge",
          string.format("request body exceeds %d bytes", self.max_body))
      end
      if c.busy then break end
      req.length = tonumber(len) or 0
      if (req.headers["expect"] or ""):lower() == "100-continue" and #c.inbuf < req.length then
        push_out(c, "HTTP/1.1 100 Continue\r\n\r\n")
        self:_write(c)
      end
      req.connection = c.id
      c.req = req
    end
    local req = c.req
    if #c.inbuf < req.length then break end
    req.body = c.inbuf:sub(1, req.length)
    c.inbuf = c.inbuf:sub(req.length + 1)
    c.req = nil
    c.busy = true
    local started = self.clock()
    -- (a closure: Lua 5.1's xpcall passes no arguments)
    local ok, res = xpcall(function() return self.handler(req) end, debug.traceback)
    if not ok or type(res) ~= "table" then
      self:_log("handler error: %s", tostring(res))
      res = { status = 500, body = self.error_body(500, "InternalError",
        "the sandbox failed while answering this request") }
    end
    self:_respond(c, req, res, started)
  end
  c.in_process = false
end

function Server:_read(c)
  local data, err, partial = c.sock:receive(READ_CHUNK)
  data = data or partial
  if data and #data > 0 then
    c.last_active = self.clock()
    -- after an error or our FIN, input is only drained
    if not (c.lingering or c.reading == false) then c.inbuf = c.inbuf .. data end
  end
  if err == "closed" then
    -- The peer sent its last bytes: answer what it asked, then close.
    c.peer_closed = true
    c.close_after = true
  elseif err and err ~= "timeout" then
    return self:_close_conn(c)
  end
  self:_process(c)
  if c.peer_closed and not c.busy and #c.out == 0 then self:_close_conn(c) end
end

-- Write as much queued output as the socket takes now; keep the rest.
function Server:_write(c)
  while not c.closed and #c.out > 0 do
    local item = c.out[1]
    if type(item) == "string" then
      local last, err, partial = c.sock:send(item, c.out_pos)
      if last then
        table.remove(c.out, 1)
        c.out_pos = 1
        c.last_active = self.clock()
      elseif err == "timeout" then
        if partial and partial >= c.out_pos then
          c.out_pos = partial + 1
          c.last_active = self.clock()
        end
        return
      else
        return self:_close_conn(c)
      end
    elseif item.file then
      -- Stream a file a chunk at a time: never more than FILE_CHUNK in memory.
      local chunk = item.file:read(math.min(FILE_CHUNK, item.left))
      if not chunk or #chunk == 0 then
        return self:_close_conn(c)   -- file shrank under us: the length is now wrong
      end
      item.left = item.left - #chunk
      if item.left == 0 then
        item.file:close()
        c.out[1] = chunk
      else
        table.insert(c.out, 1, chunk)
      end
    elseif item.done then
      table.remove(c.out, 1)
      c.busy = false
      if c.close_after then return self:_finish_conn(c) end
      self:_process(c)   -- a pipelined request may be waiting
    end
  end
end

-- Half-close after the last answer, then linger until the peer's FIN so an
-- unread request body does not turn into a reset that eats our answer.
function Server:_finish_conn(c)
  if c.peer_closed then return self:_close_conn(c) end
  c.sock:shutdown("send")
  c.lingering = true
  c.reading = false
  c.linger_until = self.clock() + LINGER_SECONDS
end

function Server:_sweep(now)
  for _, c in pairs(self.conns) do
    if c.lingering then
      if now >= c.linger_until then self:_close_conn(c) end
    elseif not c.busy and #c.out == 0 and now - c.last_active > IDLE_SECONDS then
      self:_close_conn(c)
    end
  end
end

----------------------------------------------------------------------------
-- The loop

-- A fault while serving one connection closes that connection, never the server.
function Server:_guard(c, method)
  local ok, err = xpcall(function() return method(self, c) end, debug.traceback)
  if not ok then
    self:_log("connection error: %s", tostring(err))
    c.in_process = false
    self:_close_conn(c)
  end
end

-- One iteration: wait (at most max_wait seconds, or until the next timer) for
-- socket events, serve them, then run due timers.
function Server:step(max_wait)
  if not self.sock then return nil, "not listening" end
  local now = self.clock()
  local wait = max_wait or 1
  if self.timers[1] then wait = math.min(wait, math.max(0, self.timers[1].at - now)) end
  if self.nconns > 0 then wait = math.min(wait, 1) end   -- idle sweep

  local recvt, sendt = { self.sock }, {}
  for sock, c in pairs(self.conns) do
    -- Stop reading from a client whose unanswered input is already large.
    if not c.peer_closed and #c.inbuf <= self.max_body + MAX_HEADER_BYTES then
      recvt[#recvt + 1] = sock
    end
    if #c.out > 0 then sendt[#sendt + 1] = sock end
  end
  local readable, writable = socket.select(recvt, sendt, wait)

  for _, sock in ipairs(writable or {}) do
    local c = self.conns[sock]
    if c then self:_guard(c, self._write) end
  end
  for _, sock in ipairs(readable or {}) do
    if sock == self.sock then
      self:_accept()
    else
      local c = self.conns[sock]
      if c then self:_guard(c, self._read) end
    end
  end

  now = self.clock()
  while self.timers[1] and self.timers[1].at <= now do
    local t = heap_pop(self.timers)
    local ok, err = xpcall(t.fn, debug.traceback)
    if not ok then self:_log("timer error: %s", tostring(err)) end
  end
  if now - self.last_sweep >= 1 then
    self.last_sweep = now
    self:_sweep(now)
  end
  return true
end

function Server:close()
  for _, c in pairs(self.conns) do self:_close_conn(c) end
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
end

return httpd
