-- The luv example: a client driven by an outside event loop.
local helpers = require "support.helpers"
local watch = require "support.secret_watch"

describe("the luv example", function()
  it("voices its lines from inside a libuv loop", function()
    local sandbox = helpers.start_sandbox()
    local out = helpers.tmpname()
    local ok = helpers.run(("VOICECLONE_ENDPOINT=%s VOICECLONE_SECRET_ID=%s VOICECLONE_SECRET_KEY=%s "
      .. "LUA_PATH='lua-voiceclone/?.lua;lua-voiceclone/?/init.lua;;' LUA_CPATH='%s;;' "
      .. "%s lua-voiceclone/examples/luv.lua 5 >'%s' 2>&1")
      :format(sandbox.url, helpers.quote(helpers.SECRET_ID), helpers.quote(helpers.SECRET_KEY), helpers.CPATH,
        helpers.LUA, out))
    local report = helpers.read_file(out)
    watch.output(report, "the output of examples/luv.lua")
    os.remove(out)
    local creates = 0
    for _, request in ipairs(helpers.requests(sandbox)) do
      if request.json.action == "CreateJob" then creates = creates + 1 end
    end
    sandbox.stop()
    assert.is_true(ok, report)
    assert.matches("5 of 5 lines voiced", report)
    assert.equal(5, creates)
  end)
end)
