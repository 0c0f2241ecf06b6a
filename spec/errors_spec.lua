-- Every kind of error, from servers that misbehave in every way the contract
-- leaves open (spec/support/misbehaving_server.lua), from nothing listening,
-- and from the sandbox refusing the credentials: the kind to branch on, the
-- details, a one-line tostring, and never the secret key.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"
local socket = require "socket"

local KEY = helpers.SECRET_KEY
local ID = helpers.SECRET_ID

local server        -- the misbehaving server
local healthy       -- a client of its "completed" scenario

-- Each error as one attempt gives it: the retry policy has specs of its own.
local function client_for(scenario, options)
  local settings = { endpoint = server.url_for(scenario), secret_id = ID, secret_key = KEY,
                     timeout = 5, retry = false }
  for key, value in pairs(options or {}) do settings[key] = value end
  return assert(voiceclone.new(settings))
end


-- What every error must be: a kind, one line of text, and nowhere the key
-- (in any of its fields, in tostring).
local function assert_well_formed(err, key)
  key = key or KEY
  assert.is_string(err.kind)
  assert.is_boolean(err.retryable)
  local text = tostring(err)
  assert.is_string(text)
  assert.is_nil(text:find("[\r\n]"), text)
  assert.is_nil(text:find(key, 1, true), text)
  for field, value in pairs(err) do
    if type(value) == "string" then
      assert.is_nil(value:find(key, 1, true), "err." .. tostring(field) .. " holds the key")
    end
  end
end

-- A good answer is decoded as usual right after an error.
local function assert_healthy_after()
  local job, err = healthy:get_job("j-1")
  assert.is_not_nil(job, err and tostring(err))
  assert.equal("j-1", job.id)
end

-- Calls get_job("j-1") (or the given call) against a scenario twice on the
-- same client: the second failure must be the same (the client is not left
-- stuck by the first). Returns the first error.
local function failure_of(scenario, options, call)
  call = call or function(client) return client:get_job("j-1") end
  local client = client_for(scenario, options)
  local result, err = call(client)
  assert.is_nil(result)
  assert.is_not_nil(err)
  assert_well_formed(err, options and options.secret_key)
  local again, err2 = call(client)
  assert.is_nil(again)
  assert.equal(err.kind, err2 and err2.kind)
  client:close()
  assert_healthy_after()
  return err
end

describe("errors", function()
  lazy_setup(function()
    server = helpers.start_misbehaving_server()
    healthy = client_for("completed")
  end)

  lazy_teardown(function()
    if healthy then healthy:close() end
    if server then server.stop() end
  end)

  describe("of kind http", function()
    it("come from an HTML error page, with its title and the status", function()
      local err = failure_of("html500")
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
      assert.is_true(err.retryable)
      assert.truthy(err.message:find("500 Internal Server Error", 1, true), err.message)
      assert.is_nil(err.message:find("<", 1, true), err.message)
    end)

    it("come from the gateway's JSON message, with its words", function()
      local err = failure_of("gateway")
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.is_true(err.retryable)
      assert.truthy(err.message:find("Bad Gateway", 1, true), err.message)
    end)

    it("are of kind auth, not retryable, for a refused signature (401)", function()
      local err = failure_of("gateway_auth")
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      assert.is_false(err.retryable)
      assert.truthy(err.message:find("HMAC signature cannot be verified", 1, true), err.message)
    end)

    it("are retryable when throttled (429), with the gateway's request id", function()
      local err = failure_of("throttled")
      assert.equal("http", err.kind)
      assert.equal(429, err.status)
      assert.is_true(err.retryable)
      assert.equal("gw-429", err.request_id)
      assert.truthy(tostring(err):find("gw-429", 1, true))
    end)

    it("come from an empty 502", function()
      local err = failure_of("empty502")
      assert.equal("http", err.kind)
      assert.equal(502, err.status)
      assert.is_true(err.retryable)
    end)

    it("never show the secret key a server quotes back", function()
      local err = failure_of("echo")
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
      assert.is_true(err.retryable)
      -- the request was quoted, the key in it masked
      assert.truthy(err.message:find("GetJob", 1, true), err.message)
      assert.truthy(err.message:find("***", 1, true), err.message)
    end)

    it("never show the secret key a server quotes back from a bigger request", function()
      local err = failure_of("echo", nil, function(client)
        return client:synthesize { text = string.rep("字", 100), content_id = "repo" }
      end)
      assert.equal("http", err.kind)
      assert.equal(500, err.status)
    end)

    it("never show a key with characters JSON escapes, quoted back escaped", function()
      local key = [[spec"key\0123456789]]
      local escaped = [[spec\"key\\0123456789]]
      local client = client_for("echo", { secret_key = key })
      local _, err = client:get_job("j-1")
      client:close()
      assert.equal("http", err.kind)
      assert_well_formed(err, key)
      assert.is_nil(tostring(err):find(escaped, 1, true), tostring(err))
    end)

    it("come from the sandbox refusing wrong credentials (401, kind auth)", function()
      local sandbox = helpers.start_sandbox()
      finally(sandbox.stop)
      for _, credentials in ipairs {
        { secret_id = ID, secret_key = "wrong-key-0123456789" },
        { secret_id = "wrong-id", secret_key = KEY },
      } do
        local client = helpers.client(sandbox, credentials)
        local before = helpers.last_seq(sandbox)
        local job, err = client:get_job("j-1")
        client:close()
        assert.is_nil(job)
        assert.equal("auth", err.kind)
        assert.equal(401, err.status)
        assert.is_false(err.retryable)
        assert.is_string(err.request_id)
        assert_well_formed(err, credentials.secret_key)
        assert.equal(before + 1, helpers.last_seq(sandbox))
      end
    end)
  end)

  describe("of kind decode", function()
    it("come from a body cut short", function()
      assert.equal("decode", failure_of("truncated").kind)
    end)

    it("come from a body that is not JSON", function()
      assert.equal("decode", failure_of("not_json").kind)
    end)

    it("come from a JSON body that is not an object", function()
      assert.equal("decode", failure_of("not_object").kind)
    end)

    it("come from a body nested deeper than any answer of the API", function()
      assert.equal("decode", failure_of("deep").kind)
    end)
  end)

  describe("of kind api", function()
    it("come from an answer without the expected ...Response", function()
      local err = failure_of("no_key")
      assert.equal("api", err.kind)
      assert.equal("r-2", err.request_id)
    end)

    it("come from an error object in place of the answer, with its message", function()
      local err = failure_of("error_object")
      assert.equal("api", err.kind)
      assert.equal("r-3", err.request_id)
      assert.equal("InternalError", err.code)
      assert.truthy(err.message:find("something broke", 1, true), err.message)
      assert.truthy(tostring(err):find("r-3", 1, true))
    end)

    it("come from a Tencent Cloud style error, with its message", function()
      local err = failure_of("tencent_error")
      assert.equal("api", err.kind)
      assert.equal("r-4", err.request_id)
      assert.equal("AuthFailure", err.code)
      assert.truthy(err.message:find("secret id unknown", 1, true), err.message)
    end)

    it("come from an answer without its job", function()
      assert.equal("api", failure_of("no_job").kind)
    end)

    it("come from a job list that is not a list", function()
      local err = failure_of("bad_jobs", nil, function(client) return client:list_jobs("c-1") end)
      assert.equal("api", err.kind)
    end)

    it("keep the request id of an answer whose ...Response is incomplete", function()
      assert.equal("r-5", failure_of("no_job").request_id)
      assert.equal("r-6", failure_of("bad_jobs", nil, function(client)
        return client:list_jobs("c-1")
      end).request_id)
    end)
  end)

  describe("of kind network", function()
    it("come from nothing listening, and are retryable", function()
      local client = assert(voiceclone.new {
        endpoint = ("http://127.0.0.1:%d"):format(helpers.closed_port()),
        secret_id = ID, secret_key = KEY, timeout = 5,
      })
      local job, err = client:get_job("j-1")
      assert.is_nil(job)
      assert.equal("network", err.kind)
      assert.is_true(err.retryable)
      assert_well_formed(err)
      local _, again = client:get_job("j-1")
      assert.equal("network", again.kind)
      client:close()
      assert_healthy_after()
    end)

    it("come from a connection closed without an answer, and are retryable", function()
      local err = failure_of("close")
      assert.equal("network", err.kind)
      assert.is_true(err.retryable)
    end)

    it("come from an answer cut before its announced length, and are retryable", function()
      local err = failure_of("cut")
      assert.equal("network", err.kind)
      assert.is_true(err.retryable)
    end)
  end)

  describe("of kind timeout", function()
    it("come from a server that never answers, within the client's timeout", function()
      local started = socket.gettime()
      local err = failure_of("hang", { timeout = 0.5 })
      local elapsed = socket.gettime() - started
      assert.equal("timeout", err.kind)
      assert.is_true(err.retryable)
      assert.is_true(elapsed < 4, ("two calls took %.1f s"):format(elapsed))
    end)
  end)

  describe("answers that are odd but valid", function()
    it("read null as an absent field", function()
      local job = assert(client_for("null_fields"):get_job("j-7"))
      assert.equal("j-7", job.id)
      assert.is_nil(job.customId)
      assert.is_nil(job.timing.startedAt)
      assert.equal("1", job.timing.createdAt)
      assert.equal("PROCESSING", job:status())
    end)

    it("read integral numbers as Lua integers", function()
      local job = assert(client_for("null_fields"):get_job("j-7"))
      -- math.type on 5.3+; a whole number elsewhere (no integer subtype there)
      local math_type = require("voiceclone.compat").math_type
      assert.equal("integer", math_type(job.state))
      local done = assert(healthy:get_job("j-1"))
      assert.equal("integer", math_type(done.state))
      local output = done.outputs[1]
      assert.equal("integer", math_type(output.smartContentDescriptor.voiceCloning.type))
      assert.same({ 0 }, output.inputSelectors)
      assert.equal("integer", math_type(output.inputSelectors[1]))
      assert.is_true(done:is_final())
    end)
  end)

  describe("of new", function()
    local ENDPOINT = "http://127.0.0.1:9"

    local function assert_new_invalid(field, options)
      local client, err = voiceclone.new(options)
      assert.is_nil(client)
      assert.equal("invalid", err.kind)
      assert.equal(field, err.field)
      assert_well_formed(err)
    end

    it("refuse a missing or empty secret_id", function()
      assert_new_invalid("secret_id", { secret_id = "", secret_key = KEY, endpoint = ENDPOINT })
      if not os.getenv("VOICECLONE_SECRET_ID") then   -- else new takes it from there
        assert_new_invalid("secret_id", { secret_key = KEY, endpoint = ENDPOINT })
      end
    end)

    it("refuse a missing or empty secret_key", function()
      assert_new_invalid("secret_key", { secret_id = ID, secret_key = "", endpoint = ENDPOINT })
      if not os.getenv("VOICECLONE_SECRET_KEY") then
        assert_new_invalid("secret_key", { secret_id = ID, endpoint = ENDPOINT })
      end
    end)

    it("refuse an endpoint that is not http:// or https://", function()
      for _, endpoint in ipairs { "ftp://x", "127.0.0.1:8600", "" } do
        assert_new_invalid("endpoint", { secret_id = ID, secret_key = KEY, endpoint = endpoint })
      end
    end)

    it("refuse a timeout that is not a positive number of seconds", function()
      assert_new_invalid("timeout", { secret_id = ID, secret_key = KEY, endpoint = ENDPOINT,
                                      timeout = 0 })
      assert_new_invalid("connect_timeout", { secret_id = ID, secret_key = KEY,
                                              endpoint = ENDPOINT, connect_timeout = -1 })
    end)

    it("refuse an option they do not know, naming it", function()
      assert_new_invalid("secretKey", { secret_id = ID, secret_key = KEY, endpoint = ENDPOINT,
                                        secretKey = KEY })
    end)

    it("raise for an option of the wrong type", function()
      local good = { secret_id = ID, secret_key = KEY, endpoint = ENDPOINT }
      for key, wrong in pairs { secret_id = 5, secret_key = {}, endpoint = true, timeout = "30",
                                connect_timeout = "1" } do
        local options = {}
        for k, v in pairs(good) do options[k] = v end
        options[key] = wrong
        assert.has_error(function() voiceclone.new(options) end)
      end
      assert.has_error(function() voiceclone.new("x") end)
    end)

    it("never show the key in tostring(client)", function()
      local client = assert(voiceclone.new { secret_id = ID, secret_key = KEY, endpoint = ENDPOINT })
      assert.is_nil(tostring(client):find(KEY, 1, true), tostring(client))
      assert.truthy(tostring(client):find(ID, 1, true), tostring(client))
      client:close()
      assert.is_nil(tostring(client):find(KEY, 1, true), tostring(client))
    end)
  end)
end)
