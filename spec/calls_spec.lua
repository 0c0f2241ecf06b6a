-- Calls are objects: every API call is a Request the C core starts and the
-- Lua layer waits on. A waiting task survives stray resumes, a task can be
-- canceled (its request freed at once), memory stays flat over rounds of
-- canceled tasks, and the core never yields (so it serves Lua 5.1 and
-- LuaJIT as it serves 5.4).
local voiceclone = require "voiceclone"
local core = require "voiceclone.core"
local helpers = require "support.helpers"

local function rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local status = f:read("*a")
  f:close()
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

describe("a call", function()
  local sandbox, slow

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    slow = helpers.start_sandbox { "--latency", "300" }
  end)
  lazy_teardown(function()
    sandbox.stop()
    slow.stop()
  end)

  it("is a Request that the core starts at once and finishes once done", function()
    local client = helpers.client(sandbox)
    local request = assert(core.list_models(client))
    assert.matches("^voiceclone%.Request %(ListModels, running%)", tostring(request))
    while not request:done() do core.drive(client, 0.1) end
    local models, total = request:finish()
    assert.is_table(models)
    assert.is_number(total)
    assert.matches("finished", tostring(request))
    assert.has_error(function() request:finish() end, "this request is already finished")
    client:close()
  end)

  it("canceled, gives a 'canceled' error and nothing reaches the service after it", function()
    local client = helpers.client(slow)
    local request = assert(core.get_job(client, "j-canceled"))
    core.drive(client, 0)                        -- on the wire
    request:cancel()
    request:cancel()                             -- twice is fine
    assert.is_true(request:done())
    local ok, err = request:finish()
    assert.is_nil(ok)
    assert.equal("canceled", err.kind)
    -- the client goes on as before
    assert(client:list_models())
    client:close()
  end)

  it("in flight when its client closes, raises 'closed' on finish, without crashing", function()
    local client = helpers.client(slow)
    local request = assert(core.get_job(client, "j-closed"))
    core.drive(client, 0)
    client:close()
    assert.is_true(request:done())
    assert.has_error(function() request:finish() end)
    local ok, message = pcall(request.finish, request)
    assert.is_false(ok)
    assert.matches("closed", tostring(message))
    request:cancel()
  end)

  it("keeps a JSON null inside an array in its place, as voiceclone.null", function()
    local server = helpers.start_misbehaving_server()
    local client = assert(voiceclone.new { endpoint = server.url_for("null_items"),
                                           secret_id = "id", secret_key = helpers.SECRET_KEY })
    local job = assert(client:get_job("j-9"))
    server.stop()
    assert.equal(2, #job.inputs)
    assert.equal(voiceclone.null, job.inputs[1])
    assert.equal("a", job.inputs[2].sourceData)
    local selectors = job.outputs[1].inputSelectors
    assert.equal(2, #selectors)
    assert.equal(voiceclone.null, selectors[1])
    assert.equal(1, selectors[2])
    local copy = job:totable()
    assert.equal(voiceclone.null, copy.inputs[1])
  end)

  describe("waited on by a task", function()
    it("survives a stray coroutine.resume with any values: no crash, the same result", function()
      local output, ok, code = helpers.in_a_child([[
        local c = assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key,
                                          timeout = 10, max_in_flight = 1 })
        local first = c:spawn(function() return assert(c:list_models()) end)
        local second = c:spawn(function() return assert(c:list_models()) end)
        c:step()                                  -- one request out, one queued behind it
        assert(c:list_models())                   -- a blocking call between steps
        print("stray", coroutine.resume(second.co, c, 42, "junk", {}))
        print("stray", coroutine.resume(first.co, nil))
        assert(c:run(10))
        print("first", first.ok, type(first.results[1]))
        print("second", second.ok, type(second.results[1]))
      ]], slow.url)
      assert.is_true(ok, ("the process ended with %s:\n%s"):format(tostring(code), helpers.brief(output)))
      assert.matches("first\ttrue\ttable\n", output)
      assert.matches("second\ttrue\ttable\n", output)
    end)

    it("can be canceled: done, not ok, a 'canceled' error, its request freed", function()
      local client = helpers.client(slow)
      local task = client:spawn(function() return client:get_job("j-1") end)
      local other = client:spawn(function() return client:list_models() end)
      assert.equal(2, client:step())
      task:cancel()
      task:cancel()
      assert.is_true(task.done)
      assert.is_false(task.ok)
      assert.equal("canceled", task.error.kind)
      assert.is_true(client:run(10))               -- the other goes on
      assert.is_true(other.ok)
      client:close()
    end)

    it("cannot cancel itself", function()
      local client = helpers.client(sandbox)
      local task
      task = client:spawn(function() task:cancel() end)
      client:step()
      assert.is_false(task.ok)
      assert.matches("cannot cancel itself", tostring(task.error))
      client:close()
    end)

    it("cannot cancel itself from a coroutine it resumed, and the other tasks still count", function()
      local client = helpers.client(sandbox)
      local failed = {}
      client:on_error(function(_, t) failed[#failed + 1] = t end)
      local task
      task = client:spawn(function()
        coroutine.wrap(function() task:cancel() end)()
        return "went on"
      end)
      local sleeper = client:spawn(function() client:sleep(0.2) return "slept" end)
      assert.equal(1, client:step())               -- the sleeper is still to finish
      assert.is_false(task.ok)
      assert.matches("cannot cancel itself", tostring(task.error))
      assert.is_true(client:run(10))
      assert.is_true(sleeper.done)
      assert.equal("slept", sleeper.results[1])
      assert.same({ task }, failed)
      client:close()
    end)
  end)

  -- (ASan and valgrind keep freed memory in quarantine: RSS means nothing
  -- under them; make test-valgrind counts the bytes lost instead)
  local under_asan = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true)
  local rss_it = (under_asan or os.getenv("VOICECLONE_UNDER_VALGRIND")) and pending or it
  rss_it("five rounds of 1,000 tasks canceled while they wait leave memory flat after round 2", function()
    local client = helpers.client(slow, { max_in_flight = 1000 })
    local rss = {}
    for round = 1, 5 do
      local list = {}
      for i = 1, 1000 do
        list[i] = client:spawn(function() return client:get_job(("j-%d-%d"):format(round, i)) end)
      end
      for _ = 1, 5 do client:step() end            -- requests out, answers still 300 ms away
      for i = 1, 1000 do list[i]:cancel() end
      assert.equal(0, client:step())
      list = nil
      collectgarbage()
      collectgarbage()
      rss[round] = rss_kib()
    end
    client:close()
    -- after the allocator and the pools warmed up in rounds 1 and 2, no growth
    -- beyond noise (a round used to add about 1 MiB)
    assert.is_true(rss[5] - rss[2] < 512, ("RSS in KiB by round: %s"):format(table.concat(rss, ", ")))
  end)
end)

describe("the C core", function()
  it("never yields: it imports no lua_yieldk or lua_yield", function()
    local path = assert(require("voiceclone.compat").searchpath("voiceclone.core", package.cpath))
    local imports = helpers.read_command("nm -D --undefined-only " .. helpers.quote(path))
    assert.truthy(imports:find("curl_multi_socket_action", 1, true), imports)
    assert.falsy(imports:find("lua_yield", 1, true), imports)
    assert.falsy(imports:find("lua_resume", 1, true), imports)
  end)

  it("exports luaopen_voiceclone_core alone", function()
    local path = assert(require("voiceclone.compat").searchpath("voiceclone.core", package.cpath))
    local exports = helpers.read_command("nm -D --defined-only " .. helpers.quote(path))
    local names = {}
    for name in exports:gmatch("%s[TDBR]%s+([%w_]+)") do
      if not name:match("^_") then names[#names + 1] = name end
    end
    assert.same({ "luaopen_voiceclone_core" }, names)
  end)
end)

describe("an interpreter", function()
  it("exits cleanly with a client and a request still open (LuaJIT unloads C modules first)", function()
    local output, ok, code = helpers.in_a_child([[
      kept = new_client()
      kept_request = require("voiceclone.core").list_models(kept)
      print("started")
    ]], "http://127.0.0.1:" .. helpers.closed_port())
    assert.is_true(ok, ("the process ended with %s:\n%s"):format(tostring(code), helpers.brief(output)))
    assert.matches("started", output)
  end)
end)
