-- Lifetimes and edge cases found in review: a client closed by a finalizer
-- in the middle of a call, a task resumed by its own code, an outside loop
-- told when answers are waiting, options made on the fly, and a key cut in
-- half by a message's length limit.
local voiceclone = require "voiceclone"
local core = require "voiceclone.core"
local helpers = require "support.helpers"

local finalized = require "support.finalized"

-- The collector eager (collect at every chance), or back to its defaults;
-- "incremental" with parameters is 5.4's, setpause/setstepmul the others'.
local function eager_collector(on)
  if _VERSION == "Lua 5.4" then
    if on then collectgarbage("incremental", 1, 1000) else collectgarbage("incremental", 200, 100) end
  else
    collectgarbage("setpause", on and 1 or 200)
    collectgarbage("setstepmul", on and 1000 or 200)
  end
end

describe("a client's lifetime", function()
  local sandbox

  lazy_setup(function() sandbox = helpers.start_sandbox() end)
  lazy_teardown(function() sandbox.stop() end)

  it("survives a finalizer closing it while a call reads its answer", function()
    local outcomes = {}
    for n = 1, 40 do
      local client = helpers.client(sandbox)
      local left = n
      -- a chain of finalizers: the n-th closes the client, at some point of the call
      local function chain()
        finalized(function()
          left = left - 1
          if left == 0 then client:close() else chain() end
        end)
      end
      eager_collector(true)   -- collect at every chance
      chain()
      local ok, models, err = pcall(client.list_models, client)
      eager_collector(false)
      local outcome = ok and (models and "ok" or err.kind) or "raised"
      if not ok then assert.matches("closed", tostring(models)) end
      outcomes[outcome] = true
      client:close()
    end
    assert.is_true(outcomes.ok or outcomes.raised)
  end)

  it("is not confused by a task that its own code resumes early", function()
    local client = helpers.client(sandbox, { max_in_flight = 4 })
    local task = client:spawn(function()
      assert(client:list_models())
      assert(client:list_models())
      return "done"
    end)
    client:step()                            -- the task's request is out
    assert(client:list_models())             -- a blocking call: the task's answer comes in too
    coroutine.resume(task.co)                -- resumed by someone else than the scheduler
    assert(client:list_models())
    assert.is_true(client:run(10))
    assert.equal("done", task.results[1])
  end)

  it("tells an outside loop to step at once when a task's answer came in meanwhile", function()
    local client = helpers.client(sandbox)
    local task = client:spawn(function() return client:list_models() end)
    client:step()
    assert(client:list_models())             -- the task's answer arrives during this blocking call
    assert.equal(0, client:timeout())
    client:step()
    assert.is_true(task.done)
  end)

  it("copies options that an __index makes on the fly before anything can collect them", function()
    local options = setmetatable({}, { __index = function(_, key)
      if key == "secret_id" then return "id-" .. ("x"):rep(40) end
      if key == "secret_key" then return ("k"):rep(60) end
      if key == "endpoint" then return sandbox.url .. ("/"):rep(30) end
      if key == "timeout" then collectgarbage() collectgarbage() end
    end })
    local client = assert(core.new(options))
    assert.equal(sandbox.url, client:endpoint())
    assert.matches("id%-x+", tostring(client))
  end)

  it("rejects a model name with a NUL byte before sending", function()
    local client = helpers.client(sandbox)
    local before = helpers.last_seq(sandbox)
    local job, err = client:synthesize { text = "x", content_id = "r", model = "ab\0cd" }
    assert.is_nil(job)
    assert.equal("model", err.field)
    assert.equal(before, helpers.last_seq(sandbox))
  end)
end)

describe("an error page quoting the request", function()
  it("never shows a piece of the key, even where the message is cut", function()
    local server = helpers.start_misbehaving_server()
    local key = "TOPSECRETKEY-0123456789-abcdefghij"
    local client = assert(voiceclone.new { endpoint = server.url_for("echo_html"),
                                           secret_id = "id", secret_key = key })
    local ok, err = client:list_models()
    server.stop()
    assert.is_nil(ok)
    assert.equal("http", err.kind)
    assert.equal(502, err.status)
    assert.truthy(err.message:find("secretKey", 1, true))   -- the quote is there, cut
    assert.falsy(err.message:find(key:sub(1, 8), 1, true))
    assert.falsy(tostring(err):find(key:sub(1, 8), 1, true))
  end)
end)
