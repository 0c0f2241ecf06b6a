-- Regression specs for what `make fuzz` found (lua-voiceclone/fuzz/, the
-- inputs that did it in spec/fuzz/<target>/): each failed before its fix,
-- through the public API.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"

local function new(endpoint, options)
  local settings = { endpoint = endpoint, secret_id = helpers.SECRET_ID,
                     secret_key = helpers.SECRET_KEY, retry = false }
  for k, v in pairs(options or {}) do settings[k] = v end
  return voiceclone.new(settings)
end

local function refused(endpoint, options)
  local client, err = new(endpoint, options)
  assert.is_nil(client, "accepted " .. endpoint)
  assert.equal("invalid", err.kind)
  assert.equal("endpoint", err.field)
  return err
end

describe("fuzz findings: the endpoint", function()
  -- fuzz-endpoint: "http://127.0.0.18080" (a lost ':') was taken for a
  -- loopback address because its host begins with "127.": it is a host
  -- name, which DNS may send anywhere, with the key in plain text.
  it("sends plain http only to loopback addresses, not to host names that begin like one", function()
    for _, endpoint in ipairs { "http://127.0.0.18080", "http://127.evil.example",
                                "http://127.0.0.1.example.com:8080/api" } do
      refused(endpoint)
      assert.truthy(new(endpoint, { allow_insecure = true }))
    end
    for _, endpoint in ipairs { "http://127.0.0.1:8080", "http://127.1", "http://127.255.0.9/x",
                                "http://localhost:9", "http://[::1]:9" } do
      assert.truthy(new(endpoint))
    end
  end)
end)

describe("fuzz findings: an endpoint with an empty fragment", function()
  -- fuzz-endpoint: "https:/elq#" was accepted (libcurl reports no fragment
  -- when it is empty), and every route then ended in the fragment:
  -- "http://host/#/release/job" POSTs to "/", not to /release/job.
  it("is refused, as is any '?' or '#' in the endpoint", function()
    for _, endpoint in ipairs { "https:/elq#", "http://127.0.0.1:9/#", "http://127.0.0.1:9#",
                                "http://127.0.0.1:9/api#x", "http://127.0.0.1:9/?",
                                "http://127.0.0.1:9?", "https://example.com/a?b=c#d" } do
      refused(endpoint)
      refused(endpoint, { allow_insecure = true })
    end
  end)

  it("gives a client whose calls go to the API's paths", function()
    local sandbox = helpers.start_sandbox()
    finally(sandbox.stop)
    local client = assert(new(sandbox.url .. "/"))
    assert.truthy(client:list_models())
    assert.equal("/release/music_model", helpers.last_request(sandbox).path)
  end)
end)

-- Every string reachable from v (keys too; records through totable).
local function strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "userdata" and v.totable then
    strings_of(v:totable(), out, seen)
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  end
  return out
end

describe("fuzz findings: the secret key in a successful answer", function()
  local server
  lazy_setup(function() server = helpers.start_misbehaving_server() end)
  lazy_teardown(function() server.stop() end)

  -- fuzz-response: the key written with JSON escapes ("\u0066uzzKey...")
  -- in a job's fields passed the scrubbing of the answer's raw bytes, and
  -- decoding made the key itself, in the Job and in its request id.
  for _, form in ipairs { "json", "uescape", "nul", "nulu" } do
    it("is scrubbed from the Job and the request id when quoted as " .. form, function()
      local reported = {}
      local client = assert(new(server.url_for("key_" .. form .. "_job"),
                                { on_request = function(info) reported[#reported + 1] = info end }))
      local job, err = client:get_job("j-1")
      assert.is_nil(err)
      assert.equal(1, #reported)
      assert.is_string(reported[1].request_id)
      local seen = strings_of({ job, job:result(), tostring(job), reported })
      for _, s in ipairs(seen) do
        assert.is_nil(s:find(helpers.SECRET_KEY, 1, true), ("the key reached Lua: %q"):format(s))
      end
      assert.truthy(job.id:find("***", 1, true))
    end)
  end
end)
