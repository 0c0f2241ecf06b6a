-- Regression specs for the defects the C core review found (issue 8): each
-- failed before its fix, through the public API, against the sandbox or the
-- misbehaving server (spec/support/misbehaving_server.lua).
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"
local socket = require "socket"
local compat = require "voiceclone.compat"

local SANITIZED = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil

local function files_in(dir)
  local p = io.popen("ls -A " .. helpers.quote(dir) .. " 2>/dev/null")
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

local function settings(endpoint, options)
  local s = { endpoint = endpoint, secret_id = helpers.SECRET_ID, secret_key = helpers.SECRET_KEY,
              timeout = 5, retry = false }
  for k, v in pairs(options or {}) do s[k] = v end
  return s
end

local function client_of(endpoint, options)
  return assert(voiceclone.new(settings(endpoint, options)))
end

local function invalid(options, field)
  local client, err = voiceclone.new(options)
  assert.is_nil(client, "accepted " .. field)
  assert.equal("invalid", err.kind)
  assert.equal(field, err.field)
end

-- Steps client until check() is true (at most `seconds`).
local function step_until(client, check, seconds)
  local deadline = socket.gettime() + (seconds or 5)
  while not check() do
    assert(socket.gettime() < deadline, "timed out")
    client:step()
    socket.sleep(0.01)
  end
end

-- A child Lua running chunk (as helpers.in_a_child does), started at once:
-- read its output from the handle returned.
local function start_child(chunk, endpoint)
  local script = helpers.tmpname() .. ".lua"
  local f = assert(io.open(script, "w"))
  f:write([[
    local path, cpath, endpoint, id, key = ...
    package.path, package.cpath = path, cpath
    local voiceclone = require "voiceclone"
  ]], chunk, "\nos.remove(arg[0])\n")
  f:close()
  return assert(io.popen(("%s %s %s %s %s %s %s 2>&1"):format(helpers.LUA, script,
    helpers.quote(package.path), helpers.quote(package.cpath), helpers.quote(endpoint),
    helpers.quote(helpers.SECRET_ID), helpers.quote(helpers.SECRET_KEY))))
end

describe("defects of the C core review", function()
  local sandbox, server, dir

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    server = helpers.start_misbehaving_server()
  end)
  lazy_teardown(function()
    sandbox.stop()
    server.stop()
  end)
  before_each(function() dir = helpers.tmpdir() end)
  after_each(function() helpers.run("rm -rf " .. helpers.quote(dir)) end)

  it("1: tostring(err) of a long message with a request id is whole (no use-after-free)", function()
    local output, ok = helpers.in_a_child([[
      local client = assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key,
                                             retry = false })
      local _, err = client:get_job("j-1")
      local text = tostring(err)
      assert(err.kind == "http" and #err.message > 200, tostring(err.kind))
      assert(text:find(err.message, 1, true), "no message")
      assert(text:find("(request rid-" .. ("r"):rep(2000) .. ")", 1, true), "no request id")
      for _, n in ipairs { 1000, 2100, 4000 } do
        local made = voiceclone.error("http", ("m"):rep(n), { request_id = "rid-made" })
        assert(tostring(made) == "http: " .. ("m"):rep(n) .. " (request rid-made)", n)
      end
      print("whole")
    ]], server.url_for("long_error"))
    assert(ok and output:find("whole"), helpers.brief(output))
  end)

  it("2: a timeout under 1 ms still times out; 0, negative, NaN and inf are invalid", function()
    local output, ok, code = helpers.in_a_child([[
      local client = assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key,
                                             timeout = 0.0004, retry = false })
      local started = socket.gettime()
      local _, err = client:get_job("j-1")
      print(err and err.kind, socket.gettime() - started)
    ]], server.url_for("hang"), 10)
    assert(ok, ("exit %s (124/137: it hung): %s"):format(tostring(code), helpers.brief(output)))
    local kind, seconds = output:match("(%S+)%s+(%S+)")
    assert.equal("timeout", kind)
    assert.is_true(tonumber(seconds) < 3)
    for _, field in ipairs { "timeout", "connect_timeout", "download_timeout" } do
      for _, value in ipairs { 0, -1, 0 / 0, math.huge, -math.huge } do
        invalid(settings(sandbox.url, { [field] = value }), field)
      end
    end
  end)

  it("3: downloads are bounded: max_download, download_timeout, a stall", function()
    local client = client_of(sandbox.url, { max_download = 100000, download_timeout = 2, timeout = 1 })
    -- larger than max_download, with a Content-Length and without
    for _, scenario in ipairs { "file_300000_a", "stream_300000_a" } do
      local ok, err = client:download(server.url_for(scenario) .. "/f.bin", dir .. "/big.bin")
      assert.is_nil(ok, scenario)
      assert.equal("http", err.kind)
      assert.same({}, files_in(dir))
    end
    assert.equal(dir .. "/max.bin", client:download(server.url_for("file_100000_a") .. "/f", dir .. "/max.bin"))
    assert.equal(100000, #helpers.read_file(dir .. "/max.bin"))
    os.remove(dir .. "/max.bin")
    -- the default limit (1 GiB) lets an ordinary file through
    local plain = client_of(sandbox.url)
    assert.equal(dir .. "/plain.bin", plain:download(server.url_for("file_300000_a") .. "/f", dir .. "/plain.bin"))
    os.remove(dir .. "/plain.bin")
    invalid(settings(sandbox.url, { max_download = 0 }), "max_download")
    invalid(settings(sandbox.url, { max_download = 1.5 }), "max_download")
    -- 2 bytes a second never stalls, but download_timeout ends it
    local started = socket.gettime()
    local ok, err = client:download(server.url_for("trickle") .. "/f", dir .. "/slow.bin")
    assert.is_nil(ok)
    assert.equal("timeout", err.kind)
    assert.is_true(socket.gettime() - started < 5)
    assert.same({}, files_in(dir))
    -- nothing for longer than timeout (1 s): a stall (libcurl sees it through
    -- its speed averaged over some 5 s, so it ends in 1 + 5 s or so, not 30)
    started = socket.gettime()
    ok, err = client_of(sandbox.url, { timeout = 1 }):download(server.url_for("stall") .. "/f", dir .. "/stall.bin")
    assert.is_nil(ok)
    assert.equal("timeout", err.kind)
    assert.is_true(socket.gettime() - started < 10)
    assert.same({}, files_in(dir))
    -- (an https URL redirected to http: not checked here, see the report of issue 8)
  end)

  it("4: an idle client keeps no large response buffers", function()
    if SANITIZED then
      pending("the sanitizer's allocator keeps freed memory: RSS says nothing under ASan")
      return
    end
    local output, ok = helpers.in_a_child([[
      local function rss()
        for line in io.lines("/proc/self/status") do
          local kb = line:match("^VmRSS:%s*(%d+)")
          if kb then return tonumber(kb) end
        end
      end
      local client = assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key,
                                             retry = false, max_in_flight = 8 })
      collectgarbage()
      collectgarbage()
      local before = rss()
      for _ = 1, 8 do
        client:spawn(function()
          local _, err = client:get_job("j-1")
          assert(err.kind == "http" and err.status == 400, tostring(err))
        end)
      end
      assert(client:run(60))
      collectgarbage()
      collectgarbage()
      print("grew", (rss() - before) / 1024)
    ]], server.url_for("huge_12"), 120)
    assert(ok, helpers.brief(output))
    local mib = tonumber(output:match("grew%s+(%S+)"))
    assert(mib and mib < 40, output)
  end)

  it("5: the secret key is in no error: after a NUL, HTML-escaped, of 2xx api errors", function()
    local key = "k&<>\"'-0123456789abcdef"
    local forms = {
      raw = key,
      json = '\\"',   -- (the only escape the JSON form has)
      html = "k&amp;&lt;&gt;&quot;&#39;-0123456789abcdef",
      url = "k%26%3C%3E%22%27-0123456789abcdef",
      tail = "-0123456789abcdef",
    }
    local cases = {}
    for _, form in ipairs { "json", "uescape", "html", "url", "nul", "nulu" } do
      for _, where in ipairs { "http", "api", "apijob" } do cases[#cases + 1] = form .. "_" .. where end
    end
    for _, form in ipairs { "json", "html", "url" } do cases[#cases + 1] = form .. "_page" end
    local leaks = {}
    for _, case in ipairs(cases) do
      local client = client_of(server.url_for("key_" .. case), { secret_key = key })
      local job, err = client:get_job("j-1")
      assert.is_nil(job, case)
      local texts = { message = err.message, code = err.code, request_id = err.request_id,
                      tostring = tostring(err) }
      for what, text in pairs(texts) do
        for name, form in pairs(forms) do
          if type(text) == "string" and text:find(form, 1, true) then
            leaks[#leaks + 1] = ("%s: the %s form in err.%s"):format(case, name, what)
          end
        end
      end
      client:close()
    end
    table.sort(leaks)
    assert.same({}, leaks)
  end)

  it("5b: the suite's key is in no error either: its \"/\" JSON-escaped as \"\\/\" (lua-cjson, PHP), "
    .. "URL-encoded with lowercase hex", function()
    -- every form of helpers.SECRET_KEY differs (spec/support/secret_watch.lua)
    local forms = require("support.secret_watch").forms(helpers.SECRET_KEY)
    local leaks = {}
    for _, form in ipairs { "json", "uescape", "html", "url", "urllower", "nul", "nulu" } do
      for _, where in ipairs { "http", "api", "apijob", "page" } do
        local case = form .. "_" .. where
        local client = client_of(server.url_for("key_" .. case))
        local job, err = client:get_job("j-1")
        client:close()
        assert.is_nil(job, case)
        for what, text in pairs { message = err.message, code = err.code, request_id = err.request_id,
                                  tostring = tostring(err) } do
          for _, f in ipairs(forms) do
            if type(text) == "string" and text:find(f.text, 1, true) then
              leaks[#leaks + 1] = ("%s: the %s form in err.%s"):format(case, f.name, what)
            end
          end
        end
      end
    end
    table.sort(leaks)
    assert.same({}, leaks)
  end)

  it("6: a secret id, key or endpoint with a NUL byte is invalid", function()
    invalid(settings(sandbox.url, { secret_id = "spec\0id" }), "secret_id")
    invalid(settings(sandbox.url, { secret_key = "spec-key\0-0123456789abcdef" }), "secret_key")
    invalid(settings(sandbox.url .. "\0/evil"), "endpoint")
  end)

  it("7: the endpoint is parsed: no query, no fragment, http only to loopback, userinfo hidden", function()
    invalid(settings(sandbox.url .. "/ok?x=1"), "endpoint")
    invalid(settings(sandbox.url .. "/ok#top"), "endpoint")
    invalid(settings("ftp://127.0.0.1/"), "endpoint")
    invalid(settings("http://example.com"), "endpoint")
    assert.is_truthy(voiceclone.new(settings("http://example.com", { allow_insecure = true })))
    assert.is_truthy(voiceclone.new(settings("https://example.com")))
    local with_password = sandbox.url:gsub("^http://", "http://spec-user:pa55word@")
    local client = client_of(with_password)
    assert.equal(sandbox.url, client:endpoint())
    assert.is_nil(tostring(client):find("pa55word", 1, true))
    local since = helpers.last_seq(sandbox)
    assert(client:list_jobs("userinfo"))
    local seen = helpers.requests(sandbox, since)
    assert.equal(1, #seen)
    assert.equal("/release/job", seen[1].path)
    assert.equal("Basic " .. require("mime").b64("spec-user:pa55word"), seen[1].headers.authorization)
    local closed = client_of(("http://spec-user:pa55word@127.0.0.1:%d"):format(helpers.closed_port()))
    local _, err = closed:list_jobs("userinfo")
    assert.equal("network", err.kind)
    assert.is_nil(tostring(err):find("pa55word", 1, true))
    assert.is_nil(tostring(closed):find("pa55word", 1, true))
  end)

  it("8: a server's text is cut on a UTF-8 character boundary", function()
    local utf8 = compat.utf8
    local tail = ("\195\169\226\130\172\240\159\152\128"):rep(40)
    for n = 294, 300 do
      local _, err = client_of(server.url_for("utf8_" .. n)):get_job("j-1")
      assert.equal("http", err.kind)
      assert.is_truthy(utf8.len(err.message), ("cut inside a character after %d bytes"):format(n))
      local text = assert(err.message:match("^HTTP 500: (.*)$"))
      assert.equal((("a"):rep(n) .. tail):sub(1, #text), text)   -- a prefix of what it sent
      assert.is_true(#text >= 297 and #text <= 300)
    end
  end)

  it("9: a createJobRequest's timeout goes as an integer up to 2147483647, beyond is invalid", function()
    local client = helpers.client(sandbox, { retry = false })
    for _, value in ipairs { 123456789012345, 2147483648, 1.5 } do
      local since = helpers.last_seq(sandbox)
      local job, err = client:synthesize { text = "long", content_id = "repo", timeout = value }
      assert.is_nil(job, tostring(value))
      assert.equal("invalid", err.kind)
      assert.equal("timeout", err.field)
      assert.same({}, helpers.requests(sandbox, since))   -- nothing sent
    end
    assert(client:synthesize { text = "longest", content_id = "repo", timeout = 2147483647 })
    local body = helpers.last_request(sandbox).body
    assert.is_truthy(body:find('"timeout":2147483647[,}]'), body)
  end)

  it("10: numbers JSON does not have (0x3, NaN, Infinity) are a decode error", function()
    for _, scenario in ipairs { "hexstate", "nanstate", "infstate" } do
      local job, err = client_of(server.url_for(scenario)):get_job("j-1")
      assert.is_nil(job, scenario)
      assert.equal("decode", err.kind)
    end
    for _, body in ipairs { '{"id":"x","state":0x3}', '{"id":"x","state":NaN}',
                            '{"id":"x","state":1,"progress":Infinity}' } do
      local job, err = voiceclone.job_from_callback(body)
      assert.is_nil(job, body)
      assert.equal("decode", err.kind)
    end
  end)

  it("11: job:wait and job:download of a callback's job without a client say so", function()
    local done = assert(voiceclone.job_from_callback([[{"id":"j-c","state":3,"outputs":[
      {"contentId":"repo","destination":"d/","inputSelectors":[0],
       "smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}},
       "smartContentResult":{"voiceCloning":{"voiceName":"v.wav"}}}]}]]))
    local submitted = assert(voiceclone.job_from_callback('{"id":"j-s","state":1}'))
    for _, call in ipairs {
      function() return submitted:wait { interval = 0.01 } end,
      function() return done:download(dir .. "/x.wav") end,
      function() return submitted:refresh() end,
    } do
      local ok, message = pcall(call)
      assert.is_false(ok)
      assert.is_truthy(tostring(message):find("job_from_callback", 1, true), tostring(message))
    end
  end)

  it("13: a memory error while decoding leaves the client closable", function()
    pending("no memory error can be provoked from Lua (no allocator hook); the reading count is gone")
  end)

  it("14: no .part file is left by a close, a cancel or a failure mid-download", function()
    local function part_appears(client, start)
      local task = client:spawn(start)
      step_until(client, function() return #files_in(dir) > 0 end)
      return task
    end
    -- the client closed
    local client = client_of(sandbox.url, { download_timeout = 60 })
    part_appears(client, function() return client:download(server.url_for("trickle") .. "/f", dir .. "/a.bin") end)
    client:close()
    assert.same({}, files_in(dir))
    -- the task canceled
    client = client_of(sandbox.url, { download_timeout = 60 })
    local task = part_appears(client, function()
      return client:download(server.url_for("trickle") .. "/f", dir .. "/b.bin")
    end)
    task:cancel()
    assert.same({}, files_in(dir))
    assert.equal("canceled", task.error.kind)
    -- a failed download: the server's connection ends early
    assert.is_nil(client:download(server.url_for("cut") .. "/f", dir .. "/c.bin"))
    assert.same({}, files_in(dir))
    client:close()
  end)

  it("15: tasks waiting for a slot keep their order", function()
    -- each task makes two calls: the first task's second call comes after
    -- every other task's first, which waited for the slot before it
    local client = helpers.client(sandbox, { max_in_flight = 1, retry = false })
    local since = helpers.last_seq(sandbox)
    local expected, n = {}, 8
    for i = 1, n do
      expected[i], expected[n + i] = "order-" .. i .. "a", "order-" .. i .. "b"
      client:spawn(function()
        assert(client:list_jobs("order-" .. i .. "a"))
        assert(client:list_jobs("order-" .. i .. "b"))
      end)
    end
    assert.is_true(client:run(30))
    local order = {}
    for _, r in ipairs(helpers.requests(sandbox, since)) do
      order[#order + 1] = r.json.listJobsRequest.customId
    end
    assert.same(expected, order)
  end)

  it("17: fractional numbers in answers stay fractional; whole ones are integers", function()
    local job = assert(voiceclone.job_from_callback(
      '{"id":"x","state":1,"progress":0.75,"outputs":[{"inputSelectors":[0],"score":-2.5e-3}]}'))
    assert.equal(0.75, job.progress)
    assert.equal(0.75, job:totable().progress)
    assert.equal(-2.5e-3, job.outputs[1].score)
    if math.type then
      assert.equal("float", math.type(job.progress))
      assert.equal("integer", math.type(job.state))
      assert.equal("integer", math.type(job.outputs[1].inputSelectors[1]))
    end
  end)

  it("18: a blocking call does not spin while a task's finished request waits", function()
    local slow = helpers.start_sandbox { "--latency", "500" }
    finally(slow.stop)
    local client = helpers.client(slow, { retry = false })
    local task = client:spawn(function() return client:list_jobs("cpu-a") end)
    -- its request goes out, and is answered 500 ms later, with no step to collect it
    local until_time = socket.gettime() + 0.3
    while socket.gettime() < until_time do
      client:step()
      socket.sleep(0.01)
    end
    assert.is_false(task.done)
    local wall, cpu = socket.gettime(), os.clock()
    assert(client:list_jobs("cpu-b"))   -- blocks some 500 ms, 300 of them with the task's answer in
    wall, cpu = socket.gettime() - wall, os.clock() - cpu
    assert.is_true(client:run(5))
    assert.is_true(task.ok)
    assert.is_true(wall > 0.3)
    assert.is_true(cpu < wall / 4, ("%.3f s of CPU in %.3f s"):format(cpu, wall))
  end)

  it("19: a task's sleep(0/0) does not freeze the other timers", function()
    local client = helpers.client(sandbox)
    local woke = false
    client:spawn(function() client:sleep(0 / 0) end)
    client:spawn(function()
      client:sleep(0.1)
      woke = true
    end)
    local started = socket.gettime()
    assert.is_true(client:run(3))
    assert.is_true(woke)
    assert.is_true(socket.gettime() - started < 2)
  end)

  it("20: two downloads to one dest end with one whole file and no .part", function()
    local client = client_of(sandbox.url)
    local dest = dir .. "/same.bin"
    local a = client:spawn(function() return client:download(server.url_for("file_300000_a") .. "/f", dest) end)
    local b = client:spawn(function() return client:download(server.url_for("file_300000_b") .. "/f", dest) end)
    assert.is_true(client:run(30))
    assert.equal(dest, a.results[1])
    assert.equal(dest, b.results[1])
    local data = helpers.read_file(dest)
    assert.is_true(data == ("a"):rep(300000) or data == ("b"):rep(300000), "a mixed file")
    assert.same({ "same.bin" }, files_in(dir))
    -- and from two processes at once (an unseeded math.random gave both the
    -- same temporary name on 5.1 and LuaJIT)
    os.remove(dest)
    local children = {}
    for _, c in ipairs { "c", "d" } do
      children[c] = start_child(([[
        local client = assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key })
        print((client:download(%q, %q)))
      ]]):format(server.url_for("file_3000000_" .. c) .. "/f", dest), sandbox.url)
    end
    for c, child in pairs(children) do
      local output = child:read("*a")
      child:close()
      assert.equal(dest .. "\n", output, c)
    end
    data = helpers.read_file(dest)
    assert.is_true(data == ("c"):rep(3000000) or data == ("d"):rep(3000000), "a mixed file")
    assert.same({ "same.bin" }, files_in(dir))
  end)

  it("21: a call answered at once on a kept-alive connection does not wait for its silent socket",
     function()
    -- libcurl can send and read a whole exchange while it starts a request;
    -- the drive then polled the idle connection for a second
    -- (how often depends on how the two processes are scheduled: it took
    -- from 3 to a few hundred calls here)
    local client = client_of(server.url_for("keepalive"))
    local worst, calls = 0, 0
    while calls < 2000 and worst < 0.5 do
      local started = socket.gettime()
      local job = assert(client:get_job("j-1"))
      assert.equal(3, job.state)   -- COMPLETED
      worst = math.max(worst, socket.gettime() - started)
      calls = calls + 1
    end
    client:close()
    assert.is_true(worst < 0.5, ("call %d waited %.3f s"):format(calls, worst))
  end)

  it("22: a finalizer closing the client while a 503 is read leaves its Retry-After whole "
    .. "(no use-after-free)", function()
    local output, ok, code = helpers.in_a_child([[
      local finalized = require "support.finalized"
      local closed_while_reading, wrong = 0, 0
      -- a collector that starts a cycle at once and does much work per
      -- step, so that the finalizers also land inside finish on 5.1 and
      -- LuaJIT, whose steps do a fixed amount of work however much the
      -- 400 KB body allocates (with the defaults, 1 in 300 or none)
      collectgarbage("setpause", 100)
      collectgarbage("setstepmul", 1000)
      for attempt = 1, 300 do
        local client = assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key,
                                               retry = false })
        local inside = false
        for _ = 1, 50 do
          finalized(function() if inside and client then client:close() end end)
        end
        collectgarbage("step", attempt % 5)
        inside = true
        local _, err = client:get_job("j-1")
        inside = false
        if err.kind == "http" and not pcall(client.timeout, client) then   -- closed in finish
          closed_while_reading = closed_while_reading + 1
          if err.retry_after ~= 7 then wrong = wrong + 1 end
        end
        client:close()
      end
      print(closed_while_reading, wrong)
    ]], server.url_for("busy_big"), 120)
    assert(ok, ("exit %s: %s"):format(tostring(code), helpers.brief(output)))
    local closed, wrong = output:match("(%d+)%s+(%d+)")
    assert.is_true(tonumber(closed) > 0, "no finalizer ran inside finish: " .. output)
    assert.equal("0", wrong)
  end)
end)
