-- The README's command-line walk-through, run as pasted against a sandbox:
-- the second sh block of "The command" section, with the sandbox's port in
-- place of 8600, in an empty directory, `voiceclone` on PATH.
local helpers = require "support.helpers"

local q = helpers.quote

-- The sh blocks of the README section that starts with `heading`.
local function sh_blocks(heading)
  local readme = helpers.read_file("README.md")
  local section = readme:match("\n" .. heading:gsub("%p", "%%%0") .. "\n(.-)\n## ")
  local blocks = {}
  for block in section:gmatch("```sh\n(.-)```") do blocks[#blocks + 1] = block end
  return blocks
end

describe("the README's command line", function()
  local sandbox

  lazy_setup(function()
    sandbox = helpers.start_sandbox { "--secret-id sandbox-id", "--secret-key sandbox-key" }
  end)
  lazy_teardown(function() sandbox.stop() end)

  it("works as pasted against voiceclone sandbox, sample voice included", function()
    local blocks = sh_blocks("## The command: `voiceclone`")
    assert.matches("^voiceclone sandbox ", blocks[1])
    local script = blocks[2]:gsub("127%.0%.0%.1:8600", (sandbox.url:gsub("^http://", "")))
    local dir = helpers.tmpdir(finally)
    local bin = dir .. "/bin"
    assert(helpers.run("mkdir -p " .. q(bin)))
    local wrapper = assert(io.open(bin .. "/voiceclone", "w"))
    wrapper:write("#!/bin/sh\nexec ", helpers.LUA, " ", q(helpers.ROOT .. "/scripts/voiceclone"), ' "$@"\n')
    wrapper:close()
    assert(helpers.run("chmod +x " .. q(bin .. "/voiceclone")))
    local file = assert(io.open(dir .. "/walkthrough.sh", "w"))
    file:write("set -e\n", script)
    file:close()

    local out, ok = helpers.read_command(("cd %s && PATH=%s:$PATH sh -x walkthrough.sh 2>&1")
      :format(q(dir), q(bin)))
    assert.is_true(ok, out)
    -- models lists the service's own voice first, then the one trained
    assert.matches("\ndefault%s+%(built in%)\nmy_voice ", out)
    assert.matches("COMPLETED customId=vc%-%x+ model my_voice", out)
    for _, name in ipairs { "hello.wav", "again.wav", "out/intro.wav", "out/outro.wav" } do
      local wav = helpers.read_file(dir .. "/" .. name)
      assert.equal("RIFF", wav and wav:sub(1, 4), name)
    end
    assert.equal("OggS", (helpers.read_file(dir .. "/again.ogg") or ""):sub(1, 4))   -- --format ogg
    assert.matches('"contentId":"game"', out, 1, true)
    assert.matches("batch %x+: 2 lines, 2 completed, 0 failed", out)
    assert.matches("listening on http://127.0.0.1:8700", out, 1, true)
  end)
end)
