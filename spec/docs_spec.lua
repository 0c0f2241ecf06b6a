-- The documentation keeps up with the code: the man page covers every
-- command, option, exit status and variable the command's help shows, and
-- the LDoc reference every public function, each with an example.
local helpers = require "support.helpers"

local q = helpers.quote
local MAN = "lua-voiceclone/man/voiceclone.1"
local DOC = "lua-voiceclone/doc/"

local function voiceclone(args)
  local out = helpers.read_command(("VOICECLONE_CPATH=%s %s scripts/voiceclone %s 2>&1")
    :format(q(helpers.CPATH), helpers.LUA, args))
  return out
end

local function commands()
  local list = {}
  for line in voiceclone("--help"):match("\ncommands:\n(.-)\n\n"):gmatch("[^\n]+") do
    list[#list + 1] = line:match("^  (%S+)")
  end
  return list
end

describe("the man page", function()
  local man = assert(helpers.read_file(MAN))
  -- roff escapes the minus of options: \- in the source
  local text = man:gsub("\\%-", "-"):gsub("\\f[BIRP]", "")

  it("renders without warnings", function()
    local out, ok = helpers.read_command("groff -man -Tutf8 -ww " .. MAN .. " 2>&1 >/dev/null")
    assert.is_true(ok, out)
    assert.are.equal("", out)
  end)

  it("covers every command and every option of its --help", function()
    local list = commands()
    assert.truthy(#list >= 11, table.concat(list, " "))
    for _, command in ipairs(list) do
      assert.truthy(text:find("\n.SS \"" .. command .. "[ \"]"), "no section for " .. command)
      for option in voiceclone(command .. " --help"):gmatch("%-%-[%w][%w-]+") do
        assert.truthy(text:find(option, 1, true), command .. ": " .. option .. " is not in the man page")
      end
    end
  end)

  it("lists the exit statuses and the environment variables", function()
    local exits = text:match("\n.SH EXIT STATUS\n(.-)\n.SH ")
    for status in voiceclone("--help"):match("exit status:\n(.-)\n\n"):gmatch("\n?  (%d)  ") do
      assert.truthy(exits:find("\n.B " .. status .. "\n", 1, true), "exit status " .. status)
    end
    local env = text:match("\n.SH ENVIRONMENT\n(.-)\n.SH ")
    local help = voiceclone("--help") .. voiceclone("callbacks --help") .. voiceclone("sandbox --help")
    for name in help:gmatch("VOICECLONE_[A-Z_]+") do
      assert.truthy(env:find(name, 1, true), name .. " is not in ENVIRONMENT")
    end
  end)
end)

-- The names the reference documents, per file: "name" or "Class:name".
local function documented(file)
  local text = assert(helpers.read_file(DOC .. file), file)
  local names = {}
  -- every documented function: its comment block, then `function NAME(`
  for block, name in text:gmatch("(%-%-%-.-)\nfunction ([%w_.:]+)%(") do
    names[name] = block
  end
  return names
end

local function public(t)
  local list = {}
  for name, value in pairs(t) do
    if type(value) == "function" and not name:find("^_") then list[#list + 1] = name end
  end
  table.sort(list)
  return list
end

describe("the reference", function()
  local core = require "voiceclone.core"
  local Task = getmetatable(require("voiceclone").new { secret_id = "a", secret_key = helpers.SECRET_KEY }
    :spawn(function() end))

  -- Every public function, at run time, and the file that must document it.
  local function expectations()
    local sandbox = require "voiceclone.sandbox"
    local batch = require "voiceclone.batch"
    local server = assert(sandbox.new { port = 0, data = helpers.tmpname() })
    local journal_path = helpers.tmpname()
    local journal = assert(batch.open_journal(journal_path))
    journal:close()
    os.remove(journal_path)
    local client_methods = debug.getregistry()["voiceclone.Client"].__index
    return {
      { "voiceclone.luadoc", "", require("voiceclone") },
      { "client.luadoc", "Client:", client_methods },
      { "job.luadoc", "Job:", core.Job },
      { "model.luadoc", "Model:", core.Model },
      { "task.luadoc", "Task:", Task.__index },
      { "workflow.luadoc", "", require("voiceclone.workflow") },
      { "callbacks.luadoc", "", require("voiceclone.callbacks") },
      { "batch.luadoc", "", batch },
      { "batch.luadoc", "Journal:", getmetatable(journal).__index },
      { "sandbox.luadoc", "", sandbox },
      { "sandbox.luadoc", "Sandbox:", getmetatable(server).__index },
      { "cli.luadoc", "", require("voiceclone.cli") },
    }
  end

  it("documents every public function, the C ones too, each with an example", function()
    for _, e in ipairs(expectations()) do
      local file, prefix, t = e[1], e[2], e[3]
      local names = documented(file)
      for _, name in ipairs(public(t)) do
        local block = names[prefix .. name]
        assert.truthy(block, file .. " does not document " .. prefix .. name)
        assert.truthy(block:find("@usage", 1, true), file .. ": " .. prefix .. name .. " has no @usage")
      end
    end
  end)

  it("is built by LDoc without warnings", function()
    local out, ok = helpers.read_command("ldoc -c " .. DOC .. "config.ld -d " .. q(helpers.tmpdir(finally))
      .. " . 2>&1")
    assert.is_true(ok, out)
    for line in out:gmatch("[^\n]+") do
      assert.truthy(line:find("^reading configuration") or line:find("^changing to directory")
        or line:find("^output written to") or line:find("^format: using built%-in markdown"), line)
    end
  end)
end)
