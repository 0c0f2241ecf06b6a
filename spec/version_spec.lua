-- The version lives in one place, VC_VERSION in lua-voiceclone/src/vc.h:
-- everything that shows a version agrees with it.
local helpers = require "support.helpers"

local function version()
  local vc_h = assert(helpers.read_file("lua-voiceclone/src/vc.h"))
  return assert(vc_h:match('#define VC_VERSION "([^"]+)"'))
end

describe("the version", function()
  local V = version()

  it("is the module's _VERSION and the core's", function()
    assert.are.equal(V, require("voiceclone")._VERSION)
    assert.are.equal(V, require("voiceclone.core")._VERSION)
  end)

  it("is what voiceclone --version prints", function()
    local out, ok = helpers.read_command(("VOICECLONE_CPATH='%s' %s scripts/voiceclone --version")
      :format(helpers.CPATH, helpers.LUA))
    assert.is_true(ok, out)
    assert.are.equal("voiceclone " .. V .. "\n", out)
  end)

  it("is the released rockspec's, and scm-1 differs from it only in version and tag", function()
    local released = helpers.read_file("rockspec/lua-voiceclone-" .. V .. "-1.rockspec")
    assert.truthy(released, "no rockspec/lua-voiceclone-" .. V .. "-1.rockspec")
    assert.truthy(released:find('\nversion = "' .. V:gsub("%p", "%%%0") .. '%-1"\n'))
    assert.truthy(released:find('tag = "v' .. V .. '"', 1, true))
    local scm = assert(helpers.read_file("rockspec/lua-voiceclone-scm-1.rockspec"))
    local function strip(s)
      return (s:gsub('\nversion = "[^"]*"', ""):gsub('\n  tag = "[^"]*",', ""))
    end
    assert.are.equal(strip(scm), strip(released))
  end)

  it("is the man page's and the newest CHANGELOG entry's", function()
    local man = assert(helpers.read_file("lua-voiceclone/man/voiceclone.1"))
    assert.truthy(man:find('\n.TH VOICECLONE 1 %d+ "lua%-voiceclone ' .. V:gsub("%p", "%%%0") .. '"'))
    local changelog = assert(helpers.read_file("CHANGELOG.md"))
    assert.are.equal(V, changelog:match("\n## (%d+%.%d+%.%d+)"))
  end)

  it("is sent as the User-Agent", function()
    local sandbox = helpers.start_sandbox { "--audio tone" }
    finally(sandbox.stop)
    local client = helpers.client(sandbox)
    assert(client:list_models())
    local request = helpers.last_request(sandbox)
    local agent
    for name, value in pairs(request.headers) do
      if name:lower() == "user-agent" then agent = value end
    end
    assert.are.equal("lua-voiceclone/" .. V, agent)
    client:close()
  end)
end)
