-- The rock: `make rock`, and the README's own luarocks line, build and
-- install a module that works on its own.
local helpers = require "support.helpers"

local q = helpers.quote

-- The `luarocks make` line of the README's Install section, into tree.
local function readme_luarocks_line(tree)
  local readme = assert(helpers.read_file("README.md"))
  local install = assert(readme:match("\n## Install\n(.-)\n## "), "README has no Install section")
  local line = assert(install:match("\n(luarocks make [^\n]+)"), "no luarocks line in Install")
  assert.truthy(line:find("--tree ~/rocks", 1, true), line)
  return (line:gsub("~/rocks", function() return q(tree) end))
end

-- Runs `lua` with only tree's module paths before the system ones; prints
-- where voiceclone.core came from and the version.
local function use_module(lua, tree, v, probe)
  return helpers.run(("cd /tmp && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;' "
    .. "LUA_CPATH='%s/lib/lua/%s/?.so;;' %s -e '"
    .. "local v = require \"voiceclone\" "
    .. "local c = assert(v.new{secret_id=\"a\", secret_key=\"b\"}) "
    .. "local searchpath = package.searchpath or require(\"voiceclone.compat\").searchpath "   -- 5.2+
    .. "print(searchpath(\"voiceclone.core\", package.cpath), c:endpoint(), v._VERSION)' >'%s' 2>&1")
    :format(tree, v, tree, v, tree, v, lua, probe))
end

-- A rockspec's fields (it is a Lua chunk of assignments).
local function load_rockspec(file)
  local spec, chunk = {}, nil
  if setfenv then   -- 5.1, LuaJIT
    chunk = assert(loadfile(file))
    setfenv(chunk, spec)
  else
    chunk = assert(loadfile(file, "t", spec))
  end
  chunk()
  return spec
end

describe("the rockspec", function()
  it("installs a working module and the voiceclone command into a tree", function()
    local tree = helpers.tmpname()
    local log = tree .. ".log"
    -- LUA: the interpreter whose tree the rock goes into (the suite's)
    assert.is_true(helpers.run(("make --no-print-directory rock LUA='%s' ROCK_TREE='%s' >'%s' 2>&1")
      :format(helpers.LUA, tree, log)), helpers.read_file(log))
    local probe = tree .. ".out"
    local v = helpers.LUA_VERSION   -- LuaJIT's tree paths are 5.1's
    local ok = use_module(helpers.LUA, tree, v, probe)
    local out = helpers.read_file(probe)
    assert.is_true(ok, out)
    assert.truthy(out:find(tree .. "/lib/lua/" .. v .. "/voiceclone/core.so", 1, true))
    assert.truthy(out:find("https://", 1, true))
    assert.is_true(helpers.run(("'%s/bin/voiceclone' --help >'%s' 2>&1"):format(tree, probe)))
    assert.truthy(helpers.read_file(probe):find("sandbox", 1, true))
    helpers.run(("rm -rf '%s' '%s' '%s'"):format(tree, log, probe))
  end)

  it("installs as the README says: luarocks make for LuaRocks' own Lua, offline", function()
    local dir = helpers.tmpdir(finally)
    local tree, log, probe = dir .. "/T", dir .. "/log", dir .. "/out"
    local line = readme_luarocks_line(tree)
    -- offline: no proxy and no network to reach, so nothing may be fetched
    assert.is_true(helpers.run(("%s >%s 2>&1"):format(line, q(log))), helpers.read_file(log))
    local v = assert(helpers.read_command("luarocks config lua_version")):match("%d+%.%d+")
    local lua = "lua" .. v

    -- the module, from the tree
    local ok = use_module(lua, tree, v, probe)
    local out = helpers.read_file(probe)
    assert.is_true(ok, out)
    assert.truthy(out:find(tree .. "/lib/lua/" .. v .. "/voiceclone/core.so", 1, true), out)
    assert.truthy(out:find(require("voiceclone")._VERSION, 1, true), out)

    -- only luaopen_voiceclone_core leaves the library
    local symbols = assert(helpers.read_command(("nm -D --defined-only %s | awk '$2 ~ /[TDBRVW]/ {print $3}'")
      :format(q(tree .. "/lib/lua/" .. v .. "/voiceclone/core.so"))))
    local exported = {}
    for name in symbols:gmatch("%S+") do
      if not name:find("^_") then exported[#exported + 1] = name end
    end
    assert.are.same({ "luaopen_voiceclone_core" }, exported)

    -- the command, from the tree: --version, and a sandbox that starts
    out = helpers.read_command(q(tree .. "/bin/voiceclone") .. " --version")
    assert.are.equal("voiceclone " .. require("voiceclone")._VERSION .. "\n", out)
    local sandbox_log = dir .. "/sandbox.log"
    assert(helpers.run(("cd /tmp && %s sandbox --port 0 --data %s --audio tone >%s 2>&1 &")
      :format(q(tree .. "/bin/voiceclone"), q(dir .. "/data"), q(sandbox_log))))
    local line_out = helpers.wait_for("the installed sandbox to listen", function()
      return (helpers.read_file(sandbox_log) or ""):match("listening on [^\n]+")
    end)
    helpers.run("kill " .. assert(line_out:match("pid=(%d+)")))
    assert.truthy(line_out:find("http://127.0.0.1:", 1, true))
  end)

  it("lints, the released rockspec too, and declares every dependency the code requires", function()
    for _, file in ipairs { "rockspec/lua-voiceclone-scm-1.rockspec",
                            "rockspec/lua-voiceclone-" .. require("voiceclone")._VERSION .. "-1.rockspec" } do
      local out, ok = helpers.read_command("luarocks lint " .. file .. " 2>&1")
      assert.is_true(ok, file .. ": " .. out)
      local spec = load_rockspec(file)
      local deps = table.concat(spec.dependencies, " ")
      for _, dep in ipairs { "lua >= 5.1", "lua-cjson", "luv", "compat53" } do
        assert.truthy(deps:find(dep, 1, true), file .. " lacks " .. dep)
      end
      assert.are.same({ "busted", "luasocket" }, spec.test_dependencies)
      assert.are.equal("busted", spec.test.type)
      -- every Lua module of the source tree is installed
      local listed = {}
      for _, path in pairs(spec.build.install.lua) do listed[path] = true end
      local files = helpers.read_command("ls lua-voiceclone/voiceclone/*.lua lua-voiceclone/voiceclone/sandbox/*.lua")
      for path in files:gmatch("%S+") do assert.truthy(listed[path], file .. " does not install " .. path) end
    end
  end)
end)
