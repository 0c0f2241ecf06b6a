rockspec_format = "3.0"
package = "lua-voiceclone"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-voiceclone/lua-voiceclone.git",
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
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",
  -- the HTTP server of the sandbox and callbacks.listen, and the file system
  -- calls of batch, workflow and the sandbox (Debian: lua-luv)
  "luv",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["voiceclone.core"] = {
      sources = {
        "lua-voiceclone/src/buffer.c",
        "lua-voiceclone/src/call.c",
        "lua-voiceclone/src/client.c",
        "lua-voiceclone/src/compat.c",
        "lua-voiceclone/src/download.c",
        "lua-voiceclone/src/error.c",
        "lua-voiceclone/src/job.c",
        "lua-voiceclone/src/loop.c",
        "lua-voiceclone/src/model.c",
        "lua-voiceclone/src/record.c",
        "lua-voiceclone/src/response.c",
        "lua-voiceclone/src/rules.c",
        "lua-voiceclone/src/secret.c",
        "lua-voiceclone/src/transport.c",
        "lua-voiceclone/src/voiceclone.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl", "m" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["voiceclone"] = "lua-voiceclone/voiceclone/init.lua",
    ["voiceclone.client"] = "lua-voiceclone/voiceclone/client.lua",
    ["voiceclone.job"] = "lua-voiceclone/voiceclone/job.lua",
    ["voiceclone.model"] = "lua-voiceclone/voiceclone/model.lua",
    ["voiceclone.compat"] = "lua-voiceclone/voiceclone/compat.lua",
    ["voiceclone.fs"] = "lua-voiceclone/voiceclone/fs.lua",
    ["voiceclone.httpd"] = "lua-voiceclone/voiceclone/httpd.lua",
    ["voiceclone.tasks"] = "lua-voiceclone/voiceclone/tasks.lua",
    ["voiceclone.workflow"] = "lua-voiceclone/voiceclone/workflow.lua",
    ["voiceclone.callbacks"] = "lua-voiceclone/voiceclone/callbacks.lua",
    ["voiceclone.batch"] = "lua-voiceclone/voiceclone/batch.lua",
    ["voiceclone.cli"] = "lua-voiceclone/voiceclone/cli.lua",
    ["voiceclone.sandbox"] = "lua-voiceclone/voiceclone/sandbox.lua",
    ["voiceclone.sandbox.faults"] = "lua-voiceclone/voiceclone/sandbox/faults.lua",
    ["voiceclone.sandbox.jobs"] = "lua-voiceclone/voiceclone/sandbox/jobs.lua",
    ["voiceclone.sandbox.pitch"] = "lua-voiceclone/voiceclone/sandbox/pitch.lua",
    ["voiceclone.sandbox.util"] = "lua-voiceclone/voiceclone/sandbox/util.lua",
    ["voiceclone.sandbox.validate"] = "lua-voiceclone/voiceclone/sandbox/validate.lua",
    ["voiceclone.sandbox.work"] = "lua-voiceclone/voiceclone/sandbox/work.lua",
  },
  install = {
    bin = { voiceclone = "scripts/voiceclone" },
  },
}
