-- The rock: `make rock` builds and installs a module that works on its own.
local helpers = require "support.helpers"

describe("the rockspec", function()
  it("installs a working module and the voiceclone command into a tree", function()
    local tree = helpers.tmpname()
    local log = tree .. ".log"
    assert.is_true(helpers.run(("make --no-print-directory rock ROCK_TREE='%s' >'%s' 2>&1")
      :format(tree, log)), helpers.read_file(log))
    local probe = tree .. ".out"
    local ok = helpers.run(("cd /tmp && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' "
      .. "LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e '"
      .. "local v = require \"voiceclone\" "
      .. "local c = assert(v.new{secret_id=\"a\", secret_key=\"b\"}) "
      .. "print(package.searchpath(\"voiceclone.core\", package.cpath), c:endpoint())' >'%s' 2>&1")
      :format(tree, tree, tree, probe))
    local out = helpers.read_file(probe)
    assert.is_true(ok, out)
    assert.truthy(out:find(tree .. "/lib/lua/5.4/voiceclone/core.so", 1, true))
    assert.truthy(out:find("https://", 1, true))
    assert.is_true(helpers.run(("'%s/bin/voiceclone' --help >'%s' 2>&1"):format(tree, probe)))
    assert.truthy(helpers.read_file(probe):find("sandbox", 1, true))
    helpers.run(("rm -rf '%s' '%s' '%s'"):format(tree, log, probe))
  end)
end)
