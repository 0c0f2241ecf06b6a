-- The fault-injecting sandbox (`voiceclone sandbox --faults ... --fault-seed N`):
-- each fault as it shows on the wire (raw HTTP with luasocket, one kind at
-- rate 1 at a time), what was processed and what was not, the replay of a
-- seed, /_sandbox/faults and /_sandbox/stats, and the usage errors.
local socket = require "socket"
local http = require "socket.http"
local helpers = require "support.helpers"
local faults = require "voiceclone.sandbox.faults"
local json = require("cjson.safe").new()

local function port_of(sandbox) return tonumber(sandbox.url:match(":(%d+)$")) end

local function get_json(sandbox, path)
  local body, status = http.request(sandbox.url .. path)
  assert.equal(200, status, path)
  return assert(json.decode(body))
end

local function jobs_held(sandbox) return get_json(sandbox, "/_sandbox/stats").jobs end

local function api_body(action, member, request)
  local t = { action = action, secretId = helpers.SECRET_ID, secretKey = helpers.SECRET_KEY }
  t[member] = request
  return assert(json.encode(t))
end

local function create_body(custom_id)
  return api_body("CreateJob", "createJobRequest", {
    customId = custom_id,
    inputs = { { sourceData = "fault" } },
    outputs = { { contentId = "faults", inputSelectors = { 0 },
                  smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } } } },
  })
end

local LIST_BODY = api_body("ListJobs", "listJobsRequest", { customId = "nobody" })

-- One request on a new connection, read to the end: { status, headers,
-- body, length (Content-Length), ended (why reading stopped), elapsed }.
-- first_wait: seconds to wait for the first byte (a client's timeout);
-- the answer is still read after it, for up to `wait` seconds more.
local function exchange(sandbox, method, path, body, first_wait, wait)
  local c = assert(socket.connect("127.0.0.1", port_of(sandbox)))
  local t0 = socket.gettime()
  local head = method .. " " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  if body then
    head = head .. "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n"
  end
  assert(c:send(head .. "\r\n" .. (body or "")))
  local r = { headers = {} }
  c:settimeout(first_wait or 10)
  local line, err = c:receive("*l")
  if not line and err == "timeout" then
    r.timed_out = true
    c:settimeout(wait or 10)
    line, err = c:receive("*l")
  end
  c:settimeout(wait or 10)
  if not line then
    r.ended, r.elapsed = err, socket.gettime() - t0
    c:close()
    return r
  end
  r.status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    r.headers[name:lower()] = value
  end
  r.length = tonumber(r.headers["content-length"] or 0)
  local data, rerr, partial = c:receive(r.length)
  r.body = data or partial or ""
  if not data then r.ended = rerr end
  r.elapsed = socket.gettime() - t0
  c:close()
  return r
end

-- A sandbox with one fault at rate 1 (extra flags after).
local function faulty(spec, ...)
  local flags = { "--faults " .. spec }
  for _, flag in ipairs({ ... }) do flags[#flags + 1] = flag end
  return helpers.start_sandbox(flags)
end

describe("voiceclone sandbox --faults", function()
  local sandbox
  after_each(function()
    if sandbox then sandbox.stop() end
    sandbox = nil
  end)

  it("503: a gateway's JSON 503, the request not processed", function()
    sandbox = faulty("503=1")
    local r = exchange(sandbox, "POST", "/release/job", create_body("f503"))
    assert.equal(503, r.status)
    assert.is_string(json.decode(r.body).message)
    assert.is_nil(json.decode(r.body).requestId)
    assert.equal(0, jobs_held(sandbox))
  end)

  it("429: Retry-After: 1, the request not processed", function()
    sandbox = faulty("429=1")
    local r = exchange(sandbox, "POST", "/release/job", create_body("f429"))
    assert.equal(429, r.status)
    assert.equal("1", r.headers["retry-after"])
    assert.equal(0, jobs_held(sandbox))
  end)

  it("html: a gateway's HTML 502 page, the request not processed", function()
    sandbox = faulty("html=1")
    local r = exchange(sandbox, "POST", "/release/job", create_body("fhtml"))
    assert.equal(502, r.status)
    assert.matches("^text/html", r.headers["content-type"])
    assert.truthy(r.body:find("<html>", 1, true))
    assert.is_nil(json.decode(r.body))
    assert.equal(0, jobs_held(sandbox))
  end)

  it("reset: the connection is reset before processing; nothing happens", function()
    sandbox = faulty("reset=1")
    local r = exchange(sandbox, "POST", "/release/job", create_body("freset"))
    assert.is_nil(r.status)
    assert.truthy(r.ended == "closed" or r.ended:find("reset", 1, true), r.ended)
    assert.equal(0, jobs_held(sandbox))
  end)

  it("drop: the job IS created, and the connection closes unanswered", function()
    sandbox = faulty("drop=1")
    for i = 1, 3 do
      local r = exchange(sandbox, "POST", "/release/job", create_body("fdrop" .. i))
      assert.is_nil(r.status)
      assert.equal("closed", r.ended)
    end
    assert.equal(3, jobs_held(sandbox))   -- N creates left exactly N jobs
  end)

  it("slow: processed at once, answered --slow-seconds later, past a client's timeout", function()
    sandbox = faulty("slow=1", "--slow-seconds 1")
    local r = exchange(sandbox, "POST", "/release/job", create_body("fslow"), 0.3, 5)
    assert.is_true(r.timed_out)             -- a client with a 0.3 s timeout gives up
    assert.equal(200, r.status)             -- the answer comes after all
    assert.is_true(r.elapsed >= 0.95, "answered after " .. r.elapsed .. " s")
    assert.is_table(json.decode(r.body).createJobResponse)
    assert.equal(1, jobs_held(sandbox))
  end)

  it("truncate: processed, the whole Content-Length, fewer bytes, then closed", function()
    sandbox = faulty("truncate=1")
    local r = exchange(sandbox, "POST", "/release/job", create_body("ftrunc"))
    assert.equal(200, r.status)
    assert.equal("closed", r.ended)
    assert.is_true(r.length > 0)
    assert.is_true(#r.body < r.length, #r.body .. " of " .. r.length)
    assert.is_nil(json.decode(r.body))
    assert.equal(1, jobs_held(sandbox))
  end)

  it("leaves /_sandbox/* and downloads alone", function()
    sandbox = faulty("reset=1")
    for _ = 1, 3 do
      assert.equal(200, exchange(sandbox, "GET", "/_sandbox/health").status)
      assert.equal(404, exchange(sandbox, "GET", "/repos/faults/none.wav").status)
      assert.equal(200, exchange(sandbox, "GET", "/_sandbox/requests").status)
    end
    local report = get_json(sandbox, "/_sandbox/faults")
    assert.equal(0, report.counts.reset)
    assert.same({}, report.log)
  end)

  it("counts and lists its faults at /_sandbox/faults, and logs one line each", function()
    sandbox = faulty("503=1", "--fault-seed 99")
    local before = helpers.last_seq(sandbox)
    for i = 1, 4 do exchange(sandbox, "POST", "/release/job", i % 2 == 0 and LIST_BODY or create_body("c" .. i)) end
    local report = get_json(sandbox, "/_sandbox/faults")
    assert.equal(99, report.seed)
    assert.equal(4, report.counts["503"])
    for _, kind in ipairs(faults.KINDS) do
      if kind ~= "503" then assert.equal(0, report.counts[kind], kind) end
    end
    assert.equal(4, #report.log)
    for i, entry in ipairs(report.log) do
      assert.equal(before + i, entry.seq)
      assert.equal(i % 2 == 0 and "ListJobs" or "CreateJob", entry.action)
      assert.equal("503", entry.fault)
    end
    local log = helpers.read_file(sandbox.log)
    assert.truthy(log:find("fault seq=" .. (before + 1) .. " action=CreateJob fault=503", 1, true), log)
    assert.truthy(log:find("fault seq=" .. (before + 2) .. " action=ListJobs fault=503", 1, true))
    assert.is_nil(log:find(helpers.SECRET_KEY, 1, true))
  end)

  it("replays: the same seed and requests give the same faults; another seed others", function()
    local mix = "503=0.15,429=0.15,drop=0.1,reset=0.1,slow=0.1,truncate=0.1,html=0.1"
    local function run(seed)
      local sb = faulty(mix, "--fault-seed " .. seed, "--slow-seconds 0.05")
      local seen = {}
      for i = 1, 30 do
        local r = exchange(sb, "POST", "/release/job", i % 3 == 0 and create_body("r" .. i) or LIST_BODY)
        local outcome = tostring(r.status or "none")
        if r.status and #r.body < r.length then outcome = outcome .. " truncated" end
        seen[i] = outcome
      end
      local report = get_json(sb, "/_sandbox/faults")
      sb.stop()
      return seen, report
    end
    local seen_a, report_a = run(12345)
    local seen_b, report_b = run(12345)
    local seen_c, report_c = run(54321)
    assert.same(seen_a, seen_b)
    assert.same(report_a.log, report_b.log)
    assert.same(report_a.counts, report_b.counts)
    assert.are_not.same(report_a.log, report_c.log)
    assert.are_not.same(seen_a, seen_c)
    -- and what was seen is what was logged
    local by_seq = {}
    for _, entry in ipairs(report_a.log) do by_seq[entry.seq] = entry.fault end
    local expected = { ["503"] = "503", ["429"] = "429", html = "502", drop = "none", reset = "none",
                       slow = "200", truncate = "200 truncated" }
    local faulted = 0
    for i, outcome in ipairs(seen_a) do
      local fault = by_seq[i]   -- a fresh sandbox: request i has sequence number i
      if fault then
        faulted = faulted + 1
        assert.equal(expected[fault], outcome, "request " .. i .. " (" .. fault .. ")")
      else
        assert.equal("200", outcome, "request " .. i)
      end
    end
    assert.equal(#report_a.log, faulted)
    assert.is_true(faulted > 10 and faulted < 30, faulted .. " of 30 faulted")
  end)

  it("picks a seed when none is given, and prints it", function()
    sandbox = faulty("503=0.5")
    local log = helpers.read_file(sandbox.log)
    local seed = tonumber(log:match("seed (%d+)"))
    assert.is_number(seed, log)
    assert.truthy(log:find("--fault-seed " .. seed, 1, true))
    assert.equal(seed, get_json(sandbox, "/_sandbox/faults").seed)
  end)

  it("refuses a bad --faults with a usage error (exit 2)", function()
    for _, spec in ipairs({ "boom=0.1", "503=1.5", "503=-0.1", "503=0.6,429=0.6", "503", "drop=x",
                            "503=0.1,503=0.1", "''" }) do
      local out, _, _, code = helpers.read_command(("%s scripts/voiceclone sandbox --port 0 --data %s "
        .. "--faults %s 2>&1"):format(helpers.LUA, helpers.quote(helpers.tmpname()), spec))
      assert.equal(2, code, spec .. ": " .. out)
      assert.matches("faults", out, 1, true)
    end
  end)

  it("draws the same numbers on every Lua", function()
    local r = faults.random(42)
    local states = {}
    for i = 1, 5 do
      r:next()
      states[i] = r.state
    end
    assert.same({ 728608805, 1335939236, 336425193, 309152689, 245587716 }, states)
    r = faults.random(2 ^ 40 + 5)
    r:next()
    assert.equal(772268164, r.state)
    local injector = faults.new({ drop = 0.5 }, 7)
    local again = faults.new({ drop = 0.5 }, 7)
    for _ = 1, 50 do assert.equal(injector:draw(), again:draw()) end
  end)
end)
