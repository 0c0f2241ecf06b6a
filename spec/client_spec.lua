-- The client object: construction, defaults, lifetime, and what it shows.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"

describe("voiceclone.new", function()
  local sandbox

  lazy_setup(function() sandbox = helpers.start_sandbox() end)
  lazy_teardown(function() sandbox.stop() end)

  it("builds a client that talks to the given endpoint", function()
    local client = helpers.client(sandbox)
    assert.equal(sandbox.url, client:endpoint())
    local models, total = client:list_models()
    assert.is_table(models)
    assert.equal(0, total)
    local request = helpers.last_request(sandbox)
    assert.equal("ListModels", request.json.action)
    assert.equal(helpers.SECRET_ID, request.json.secretId)
  end)

  it("drops a trailing slash from the endpoint", function()
    local client = helpers.client(sandbox, { endpoint = sandbox.url .. "/" })
    assert.equal(sandbox.url, client:endpoint())
    assert.truthy(client:list_models())
    assert.equal("/release/music_model", helpers.last_request(sandbox).path)
  end)

  it("takes credentials and endpoint from the environment, else the published endpoint", function()
    local script = [[
      package.path = "lua-voiceclone/?.lua;lua-voiceclone/?/init.lua;" .. package.path
      package.cpath = ]] .. ("%q"):format(helpers.CPATH) .. [[ .. ";" .. package.cpath
      local client, err = require("voiceclone").new()
      print(client and client:endpoint() or err.field)
    ]]
    local function run(env)
      local p = io.popen(("env -u LD_PRELOAD -u VOICECLONE_ENDPOINT -u VOICECLONE_SECRET_ID "
        .. "-u VOICECLONE_SECRET_KEY %s %s -e %s"):format(env, helpers.LUA, helpers.quote(script)))
      local out = p:read("*a")
      p:close()
      return out:match("^%s*(.-)%s*$")
    end
    assert.equal(voiceclone.DEFAULT_ENDPOINT, run("VOICECLONE_SECRET_ID=a VOICECLONE_SECRET_KEY=b"))
    assert.equal("http://127.0.0.1:9",
      run("VOICECLONE_SECRET_ID=a VOICECLONE_SECRET_KEY=b VOICECLONE_ENDPOINT=http://127.0.0.1:9"))
    assert.equal("secret_id", run(""))
    assert.equal("secret_key", run("VOICECLONE_SECRET_ID=a"))
  end)

  it("never shows the secret key in tostring", function()
    local client = helpers.client(sandbox)
    local shown = tostring(client)
    assert.matches("^voiceclone%.Client", shown)
    assert.truthy(shown:find(sandbox.url, 1, true))
    assert.falsy(shown:find(helpers.SECRET_KEY, 1, true))
  end)

  it("closes idempotently, and a closed client raises when used", function()
    local client = helpers.client(sandbox)
    assert.is_true(client:is_open())
    client:close()
    client:close()
    assert.is_false(client:is_open())
    assert.matches("closed", tostring(client))
    assert.has_error(function() client:get_job("x") end)
    assert.has_error(function() client:list_models() end)
  end)

  -- `<close>` is Lua 5.4 syntax: compiled from a string there only, so that
  -- this file loads on every Lua.
  local CLOSE_SCOPE = [[
    local new_client, truthy = ...
    local kept
    do
      local client <close> = new_client()
      kept = client
      truthy(client:list_models())
    end
    return kept
  ]]

  it("closes at the end of a <close> scope", function()
    if _VERSION ~= "Lua 5.4" then return pending("<close> is Lua 5.4 only") end
    local kept = assert(load(CLOSE_SCOPE))(function() return helpers.client(sandbox) end, assert.truthy)
    assert.is_false(kept:is_open())
  end)

  it("is collected once unreachable, and its jobs keep it alive until then", function()
    local weak = setmetatable({}, { __mode = "v" })
    local job
    do
      local client = helpers.client(sandbox)
      weak.client = client
      job = assert(client:synthesize { text = "hello", content_id = "gc" })
    end
    collectgarbage()
    collectgarbage()
    assert.is_not_nil(weak.client)        -- the job still needs its client
    assert.truthy(job:refresh())
    job = nil                             -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak.client)
  end)

  it("reuses one connection for consecutive calls (keep-alive)", function()
    local client = helpers.client(sandbox)
    local before = helpers.last_seq(sandbox)
    for _ = 1, 3 do assert.truthy(client:list_models()) end
    local requests = helpers.requests(sandbox, before)
    assert.equal(3, #requests)
    assert.is_not_nil(requests[1].connection)
    assert.equal(requests[1].connection, requests[2].connection)
    assert.equal(requests[1].connection, requests[3].connection)
  end)
end)
