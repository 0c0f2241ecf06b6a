-- make install: the module, the command and the man page, staged with
-- DESTDIR, used from there.
local helpers = require "support.helpers"

local q = helpers.quote
local LUA, V = helpers.LUA, helpers.LUA_VERSION

local function pkg_config(variable, prefix)
  local out = helpers.read_command(("pkg-config --define-variable=prefix=%s --variable=%s %s")
    :format(prefix, variable, LUA))
  return (out:gsub("%s+$", ""))
end

describe("make install", function()
  it("stages the module, the command and the man page under DESTDIR, and they work from there", function()
    local dest = helpers.tmpdir(finally)
    local log = dest .. ".log"
    finally(function() os.remove(log) end)
    assert.is_true(helpers.run(("make --no-print-directory install LUA=%s DESTDIR=%s >%s 2>&1")
      :format(LUA, q(dest), q(log))), helpers.read_file(log))
    -- PREFIX /usr/local: Lua's own default path there (Debian's multiarch
    -- INSTALL_CMOD is searched under /usr only)
    local lmod = pkg_config("INSTALL_LMOD", "/usr/local")
    assert.are.equal("/usr/local/share/lua/" .. V, lmod)
    local cmod = "/usr/local/lib/lua/" .. V
    for _, file in ipairs {
      cmod .. "/voiceclone/core.so", lmod .. "/voiceclone/init.lua", lmod .. "/voiceclone/cli/init.lua", lmod .. "/voiceclone/cli/say.lua",
      lmod .. "/voiceclone/sandbox/faults.lua", "/usr/local/bin/voiceclone",
      "/usr/local/share/man/man1/voiceclone.1",
    } do
      assert.truthy(helpers.read_file(dest .. file), "not installed: " .. file)
    end

    -- the command: its #! is the Lua it was installed for
    local bin = dest .. "/usr/local/bin/voiceclone"
    local shebang = helpers.read_file(bin):match("^#!(%S+)")
    local lua_path = helpers.read_command("command -v " .. LUA):gsub("%s+$", "")
    assert.are.equal(lua_path, shebang)

    -- module and command from the staged tree, nothing from the checkout
    local env = ("cd /tmp && LUA_PATH=%s LUA_CPATH=%s ")
      :format(q(dest .. lmod .. "/?.lua;" .. dest .. lmod .. "/?/init.lua;;"), q(dest .. cmod .. "/?.so;;"))
    local out, ok = helpers.read_command(env .. LUA .. " -e " .. q(
      "local v = require 'voiceclone'; local c = assert(v.new{secret_id='a', secret_key='b'}); "
      .. "print(package.loaded['voiceclone.core'] and v._VERSION, c:endpoint())") .. " 2>&1")
    assert.is_true(ok, out)
    assert.truthy(out:find(require("voiceclone")._VERSION .. "\thttps://", 1, true), out)
    out, ok = helpers.read_command(env .. q(bin) .. " --version 2>&1")
    assert.is_true(ok, out)
    assert.are.equal("voiceclone " .. require("voiceclone")._VERSION .. "\n", out)
    out, ok = helpers.read_command(env .. q(bin) .. " --help 2>&1")
    assert.is_true(ok, out)
    assert.truthy(out:find("sandbox", 1, true))
  end)

  it("follows pkg-config's INSTALL_CMOD and INSTALL_LMOD for PREFIX=/usr (a Debian package)", function()
    local dest = helpers.tmpdir(finally)
    local log = dest .. ".log"
    finally(function() os.remove(log) end)
    assert.is_true(helpers.run(("make --no-print-directory install LUA=%s PREFIX=/usr DESTDIR=%s >%s 2>&1")
      :format(LUA, q(dest), q(log))), helpers.read_file(log))
    local cmod, lmod = pkg_config("INSTALL_CMOD", "/usr"), pkg_config("INSTALL_LMOD", "/usr")
    assert.truthy(helpers.read_file(dest .. cmod .. "/voiceclone/core.so"), cmod)
    assert.truthy(helpers.read_file(dest .. lmod .. "/voiceclone/init.lua"), lmod)
    assert.truthy(helpers.read_file(dest .. "/usr/bin/voiceclone"))
  end)

  it("honours CPPFLAGS, CFLAGS and LDFLAGS; -Werror only in make test", function()
    local build = helpers.read_command(("make -n -B --no-print-directory build/%s/voiceclone/core.so LUA=%s "
      .. "CPPFLAGS=-D_FORTIFY_SOURCE=2 CFLAGS='-O1 -g' LDFLAGS=-Wl,-z,relro"):format(LUA, LUA))
    for _, flag in ipairs { "-D_FORTIFY_SOURCE=2", "-O1 -g", "-Wl,-z,relro", "-fvisibility=hidden" } do
      assert.truthy(build:find(flag, 1, true), flag .. " not in: " .. build)
    end
    assert.falsy(build:find("-Werror", 1, true))
    local test = helpers.read_command(("make -n -B --no-print-directory test LUA=%s BOOTSTRAP=:"):format(LUA))
    assert.truthy(test:find("-Werror", 1, true), test)
  end)
end)
