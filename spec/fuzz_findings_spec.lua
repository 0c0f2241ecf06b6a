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
