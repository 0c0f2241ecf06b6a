-- The rock: `make rock` builds and installs a module that works on its own.
local helpers = require "support.helpers"

describe("the rockspec", function()
  it("installs a working module and the voiceclone command into a tree", function()
    local tree = helpers.tmpname()
    local log = tree .. ".log"
    -- LUA: the interpreter whose tree the rock goes into (the suite's)
    assert.is_true(helpers.run(("make --no-print-directory rock LUA='%s' ROCK_TREE='%s' >'%s' 2>&1")
      :format(helpers.LUA, tree, log)), helpers.read_file(log))
    local probe = tree .. ".out"
    local v = helpers.LUA_VERSION   -- LuaJIT's tree paths are 5.1's
    local ok = helpers.run(("cd /tmp && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' "
      .. "LUA_CPATH='%s/lib/lua/%s/?.so;;' %s -e '"
      .. "local v = require \"voiceclone\" "
      .. "local c = assert(v.new{secret_id=\"a\", secret_key=\"b\"}) "
      .. "local searchpath = package.searchpath or require(\"voiceclone.compat\").searchpath "   -- 5.2+
      .. "print(searchpath(\"voiceclone.core\", package.cpath), c:endpoint())' >'%s' 2>&1")
      :format(tree, v, tree, v, tree, v, helpers.LUA, probe))
    local out = helpers.read_file(probe)
    assert.is_true(ok, out)
    assert.truthy(out:find(tree .. "/lib/lua/" .. v .. "/voiceclone/core.so", 1, true))
    assert.truthy(out:find("https://", 1, true))
    assert.is_true(helpers.run(("'%s/bin/voiceclone' --help >'%s' 2>&1"):format(tree, probe)))
    assert.truthy(helpers.read_file(probe):find("sandbox", 1, true))
    helpers.run(("rm -rf '%s' '%s' '%s'"):format(tree, log, probe))
  end)
end)
