rockspec_format = "3.0"
package = "lua-voiceclone"
version = "0.3.0-1"
source = {
  url = "git+https://github.com/lua-voiceclone/lua-voiceclone.git",
  tag = "v0.3.0",
}
description = {
  summary = "Voice cloning for Lua: train a voice, then speak or convert in it",
  detailed = [[
    A Lua client (5.1 to 5.4, LuaJIT) for the voice cloning service (train a voice model from
    a recording, speak text or convert a recording in that voice), with a C
    core on libcurl and lua-cjson, and a local sandbox of the service for
    offline development.
  ]],
  license = "MIT",
  homepage = "https://github.com/lua-voiceclone/lua-voiceclone",
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",   -- cjson.safe: the C core and the command (Debian: lua-cjson)
  "luv",         -- the HTTP server of the sandbox and callbacks.listen, file system calls, running sox (Debian: lua-luv)
  "compat53",    -- utf8 and string.pack below Lua 5.3 (Debian: lua-compat53)
  "lua-term",    -- the command: is stderr a terminal (Debian: lua-term)
}
-- luasocket: the specs' own servers and clients
test_dependencies = { "busted", "luasocket" }
external_dependencies = {
  -- no `header`: Debian keeps curl/curl.h under the multiarch include
  -- directory, which the compiler searches and LuaRocks does not
  CURL = { library = "curl" },
  -- libcrypto: HMAC-SHA1 and Base64 of the API gateway's signature (Debian: libssl-dev)
  OPENSSL = { header = "openssl/hmac.h", library = "crypto" },
}
-- The C core is built by the Makefile (target rock-core) with the project's
-- own flags (-std=c99 -fvisibility=hidden: only luaopen_voiceclone_core is
-- exported) plus LuaRocks' CFLAGS; LuaRocks installs what it built, the Lua
-- modules and the command.
build = {
  type = "make",
  build_target = "rock-core",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CURL_INCDIR = "$(CURL_INCDIR)",
    CURL_LIBDIR = "$(CURL_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
  },
  install_pass = false,
  install = {
    lib = { ["voiceclone.core"] = "build/luarocks/voiceclone/core.so" },
    lua = {
      ["voiceclone"] = "lua-voiceclone/voiceclone/init.lua",
      ["voiceclone.audio"] = "lua-voiceclone/voiceclone/audio.lua",
      ["voiceclone.batch"] = "lua-voiceclone/voiceclone/batch.lua",
      ["voiceclone.callbacks"] = "lua-voiceclone/voiceclone/callbacks.lua",
      ["voiceclone.cli"] = "lua-voiceclone/voiceclone/cli/init.lua",
      ["voiceclone.cli.api"] = "lua-voiceclone/voiceclone/cli/api.lua",
      ["voiceclone.cli.batch"] = "lua-voiceclone/voiceclone/cli/batch.lua",
      ["voiceclone.cli.callbacks"] = "lua-voiceclone/voiceclone/cli/callbacks.lua",
      ["voiceclone.cli.convert"] = "lua-voiceclone/voiceclone/cli/convert.lua",
      ["voiceclone.cli.download"] = "lua-voiceclone/voiceclone/cli/download.lua",
      ["voiceclone.cli.job"] = "lua-voiceclone/voiceclone/cli/job.lua",
      ["voiceclone.cli.jobs"] = "lua-voiceclone/voiceclone/cli/jobs.lua",
      ["voiceclone.cli.models"] = "lua-voiceclone/voiceclone/cli/models.lua",
      ["voiceclone.cli.options"] = "lua-voiceclone/voiceclone/cli/options.lua",
      ["voiceclone.cli.output"] = "lua-voiceclone/voiceclone/cli/output.lua",
      ["voiceclone.cli.sandbox"] = "lua-voiceclone/voiceclone/cli/sandbox.lua",
      ["voiceclone.cli.say"] = "lua-voiceclone/voiceclone/cli/say.lua",
      ["voiceclone.cli.train"] = "lua-voiceclone/voiceclone/cli/train.lua",
      ["voiceclone.cli.wait"] = "lua-voiceclone/voiceclone/cli/wait.lua",
      ["voiceclone.client"] = "lua-voiceclone/voiceclone/client.lua",
      ["voiceclone.compat"] = "lua-voiceclone/voiceclone/compat.lua",
      ["voiceclone.fs"] = "lua-voiceclone/voiceclone/fs.lua",
      ["voiceclone.httpd"] = "lua-voiceclone/voiceclone/httpd.lua",
      ["voiceclone.job"] = "lua-voiceclone/voiceclone/job.lua",
      ["voiceclone.model"] = "lua-voiceclone/voiceclone/model.lua",
      ["voiceclone.retry"] = "lua-voiceclone/voiceclone/retry.lua",
      ["voiceclone.sandbox"] = "lua-voiceclone/voiceclone/sandbox.lua",
      ["voiceclone.sandbox.faults"] = "lua-voiceclone/voiceclone/sandbox/faults.lua",
      ["voiceclone.sandbox.gateway"] = "lua-voiceclone/voiceclone/sandbox/gateway.lua",
      ["voiceclone.sandbox.jobs"] = "lua-voiceclone/voiceclone/sandbox/jobs.lua",
      ["voiceclone.sandbox.pitch"] = "lua-voiceclone/voiceclone/sandbox/pitch.lua",
      ["voiceclone.sandbox.util"] = "lua-voiceclone/voiceclone/sandbox/util.lua",
      ["voiceclone.sandbox.validate"] = "lua-voiceclone/voiceclone/sandbox/validate.lua",
      ["voiceclone.sandbox.work"] = "lua-voiceclone/voiceclone/sandbox/work.lua",
      ["voiceclone.tasks"] = "lua-voiceclone/voiceclone/tasks.lua",
      ["voiceclone.workflow"] = "lua-voiceclone/voiceclone/workflow.lua",
    },
    bin = { voiceclone = "scripts/voiceclone" },
  },
}
test = { type = "busted" }
