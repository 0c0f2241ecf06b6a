-- The retry policy, one for every request, and each job created exactly
-- once, against a server of the spec's own (spec/support/misbehaving_server.lua)
-- whose scenarios fail a set number of times, ask for a pause, or drop a
-- CreateJob after processing it.
local voiceclone = require "voiceclone"
local core = require "voiceclone.core"
local helpers = require "support.helpers"
local http = require "socket.http"

local function speech(custom_id)
  return {
    inputs = { { sourceData = "once" } },
    outputs = { { contentId = "repo", inputSelectors = { 0 },
                  smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } } } },
    customId = custom_id,
  }
end

describe("the retry policy", function()
  local server, tag = nil, 0

  before_each(function() server = helpers.start_misbehaving_server() end)
  after_each(function() server.stop() end)

  -- A fresh scenario name (the server counts requests per name).
  local function scenario(prefix)
    tag = tag + 1
    return ("%s_t%d"):format(prefix, tag)
  end

  local function client_for(name, options)
    local settings = { endpoint = server.url_for(name), secret_id = "id", secret_key = "key-0123456789",
                       timeout = 5, retry = { base_delay = 0.01, max_delay = 0.05 } }
    for key, value in pairs(options or {}) do settings[key] = value end
    return assert(voiceclone.new(settings))
  end

  local function count(name)
    local body = http.request(server.url_for("_count"):gsub("/_count$", "") .. "/_count/" .. name)
    return tonumber(body)
  end

  local function created()
    return tonumber((http.request(server.url_for("_created"):gsub("/_created$", "") .. "/_created/x")))
  end

  it("retries 503 until it succeeds, and tells on_request of every attempt", function()
    local name = scenario("flaky_503_2")
    local seen = {}
    local client = client_for(name, { on_request = function(info) seen[#seen + 1] = info end })
    local job = assert(client:get_job("j-1"))
    assert.equal("j-1", job.id)
    assert.equal(3, count(name))
    assert.equal(3, #seen)
    for i, info in ipairs(seen) do
      assert.equal("GetJob", info.action)
      assert.equal(i, info.attempt)
      assert.is_number(info.duration)
    end
    assert.same({ 503, 503, 200 }, { seen[1].status, seen[2].status, seen[3].status })
    assert.same({ "http", "http" }, { seen[1].error_kind, seen[2].error_kind })
    assert.is_nil(seen[3].error_kind)
    assert.equal("r-g", seen[3].request_id)
    for _, info in ipairs(seen) do
      for _, value in pairs(info) do assert.falsy(tostring(value):find("key-0123456789", 1, true)) end
    end
  end)

  for _, status in ipairs { 408, 429, 500, 502, 503, 504 } do
    it("retries HTTP " .. status, function()
      local name = scenario("flaky_" .. status .. "_1")
      assert(client_for(name):list_models())
      assert.equal(2, count(name))
    end)
  end

  for _, status in ipairs { 400, 401, 403, 404, 501 } do
    it("does not retry HTTP " .. status .. ", and says so", function()
      local name = scenario("flaky_" .. status .. "_1")
      local ok, err = client_for(name):get_job("j-1")
      assert.is_nil(ok)
      assert.equal(status, err.status)
      assert.equal(1, err.attempts)
      assert.is_false(err.retryable)
      assert.equal(1, count(name))
    end)
  end

  it("gives up after its attempts, with err.attempts and err.retryable", function()
    local name = scenario("flaky_503_99")
    local ok, err = client_for(name, { retry = { attempts = 3, base_delay = 0.01 } }):get_job("j-1")
    assert.is_nil(ok)
    assert.equal("http", err.kind)
    assert.equal(3, err.attempts)
    assert.is_true(err.retryable)
    assert.equal(3, count(name))
  end)

  it("with retry = false sends each request once", function()
    local name = scenario("flaky_503_1")
    local ok, err = client_for(name, { retry = false }):get_job("j-1")
    assert.is_nil(ok)
    assert.equal(1, err.attempts)
    assert.equal(1, count(name))
  end)

  it("does not retry an answer it cannot read", function()
    local client = client_for("truncated")
    local ok, err = client:get_job("j-1")
    assert.is_nil(ok)
    assert.equal("decode", err.kind)
    assert.equal(1, err.attempts)
    assert.equal(1, count("truncated"))
  end)

  it("retries a connection that fails, and a timeout", function()
    local client = assert(voiceclone.new { endpoint = "http://127.0.0.1:" .. helpers.closed_port(),
      secret_id = "id", secret_key = helpers.SECRET_KEY, retry = { attempts = 3, base_delay = 0.01 } })
    local ok, err = client:list_models()
    assert.is_nil(ok)
    assert.equal("network", err.kind)
    assert.equal(3, err.attempts)
    local slow = client_for("hang", { timeout = 0.2, retry = { attempts = 2, base_delay = 0.01 } })
    ok, err = slow:list_models()
    assert.is_nil(ok)
    assert.equal("timeout", err.kind)
    assert.equal(2, err.attempts)
    assert.equal(2, count("hang"))
  end)

  it("honours Retry-After in seconds", function()
    local name = scenario("after_1")
    local started = core.now()
    assert(client_for(name):get_job("j-1"))
    assert.is_true(core.now() - started >= 0.9, "it did not wait")
    assert.equal(2, count(name))
  end)

  it("honours Retry-After as an HTTP date", function()
    local name = scenario("after_date2")
    local started = core.now()
    assert(client_for(name):get_job("j-1"))
    assert.is_true(core.now() - started >= 0.9, "it did not wait")
    assert.equal(2, count(name))
  end)

  it("gives the error at once when Retry-After is beyond max_retry_after", function()
    local name = scenario("after_500")
    local started = core.now()
    local ok, err = client_for(name, { retry = { max_retry_after = 120 } }):get_job("j-1")
    assert.is_nil(ok)
    assert.equal(429, err.status)
    assert.equal(500, err.retry_after)
    assert.equal(1, err.attempts)
    assert.is_true(core.now() - started < 1)
  end)

  it("pauses inside a task without holding up the other tasks", function()
    local name = scenario("after_1")
    local client = client_for(name)
    local order = {}
    client:spawn(function() assert(client:get_job("j-1")); order[#order + 1] = "retried" end)
    client:spawn(function() client:sleep(0.2); order[#order + 1] = "other" end)
    assert.is_true(client:run(10))
    assert.same({ "other", "retried" }, order)
  end)

  it("refuses options it does not know, and values out of range", function()
    for _, bad in ipairs {
      { { tries = 3 }, "retry.tries" }, { { attempts = 0 }, "retry.attempts" },
      { { attempts = 1.5 }, "retry.attempts" }, { { base_delay = -1 }, "retry.base_delay" },
      { { max_delay = "1" }, "retry.max_delay" }, { "often", "retry" },
    } do
      local client, err = voiceclone.new { endpoint = "http://127.0.0.1:9", secret_id = "a",
                                           secret_key = helpers.SECRET_KEY, retry = bad[1] }
      assert.is_nil(client)
      assert.equal("invalid", err.kind)
      assert.equal(bad[2], err.field)
    end
  end)

  describe("creating a job", function()
    it("gives every create a customId of its own, under 64 characters", function()
      local name = scenario("flaky_200_0")
      local job = assert(client_for(name):create_job(speech()))
      assert.matches("^vc%-%x+$", job.customId)
      assert.is_true(#job.customId < 64)
      local again = assert(client_for(name):create_job(speech()))
      assert.are_not.equal(job.customId, again.customId)
      assert.equal("mine", assert(client_for(name):create_job(speech("mine"))).customId)
    end)

    it("adopts the job a dropped answer hid, instead of creating it twice", function()
      local name = scenario("drop")
      local seen = {}
      local client = client_for(name, { on_request = function(info) seen[#seen + 1] = info.action end })
      local job = assert(client:create_job(speech()))
      assert.equal(1, created())                   -- one job on the service
      assert.equal("j-1", job.id)
      assert.same({ "CreateJob", "ListJobs" }, seen)
    end)

    it("sends again when ListJobs shows the create never arrived", function()
      local name = scenario("reset")
      local seen = {}
      local client = client_for(name, { on_request = function(info) seen[#seen + 1] = info.action end })
      local job = assert(client:create_job(speech("kept-id")))
      assert.equal(1, created())
      assert.equal("kept-id", job.customId)
      assert.same({ "CreateJob", "ListJobs", "CreateJob" }, seen)
    end)

    it("does not adopt a job of the same customId whose inputs differ", function()
      local name = scenario("reset")
      local client = client_for(name)
      local other = speech("shared")
      other.inputs[1].sourceData = "something else"
      assert(client:create_job(other))             -- on the service, under the same customId
      local job = assert(client:create_job(speech("shared")))   -- cut off, then sent again
      assert.equal(2, created())
      assert.equal("once", job.inputs[1].sourceData)
    end)

    it("retries a create refused before it was processed (503), creating one job", function()
      local name = scenario("flaky_503_2")
      local job = assert(client_for(name):create_job(speech()))
      assert.equal(1, created())
      assert.is_string(job.id)
    end)
  end)
end)
