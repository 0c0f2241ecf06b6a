--- The voiceclone command: the subcommands, dispatched.
--
--   os.exit(require("voiceclone.cli").main(arg))
--
-- Each subcommand is a module voiceclone.cli.<name> returning { summary =,
-- usage =, options = { [name] = kind }, aliases = { [old] = "new" },
-- min_args =, max_args =, run = fn(ctx, options, args) -> exit status }.
-- They share one option parser (voiceclone.cli.options) and one output
-- layer (voiceclone.cli.output), and what the API commands have in common
-- (voiceclone.cli.api). voiceclone.core is loaded only by the commands that
-- talk to the service: `voiceclone --help` and `sandbox` work without it.
local compat = require "voiceclone.compat"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

local cli = {}

local PROGRAM = output.PROGRAM
local EXIT = output.EXIT

cli.EXIT = EXIT
cli.parse = options.parse
cli.encode = output.encode
cli.status_for = output.status_for
cli.api_job = function(job) return require("voiceclone.cli.api").job(job) end

local NAMES = { "batch", "callbacks", "convert", "download", "job", "jobs", "models", "sandbox",
                "say", "train", "wait" }

local function load_commands(extra)
  local commands = {}
  for _, name in ipairs(NAMES) do commands[name] = require("voiceclone.cli." .. name) end
  for name, command in pairs(extra or {}) do commands[name] = command end
  return commands
end

local function main_usage(commands)
  local names = {}
  for name in pairs(commands) do names[#names + 1] = name end
  table.sort(names)
  local lines = { "usage: voiceclone <command> [options]", "", "commands:" }
  for _, name in ipairs(names) do
    lines[#lines + 1] = string.format("  %-12s %s", name, commands[name].summary)
  end
  return table.concat(lines, "\n") .. [[


Run 'voiceclone <command> --help' for a command's options, 'voiceclone
--version' for the version.

Credentials and endpoint come from the environment (VOICECLONE_SECRET_ID,
VOICECLONE_SECRET_KEY, VOICECLONE_ENDPOINT, VOICECLONE_REPOSITORIES) or from
the global options below; the secret key is never printed.

exit status:
  0  done (every job or line COMPLETED)
  1  failed: a job ended ERROR or CANCELED, a batch line failed, or the
     service refused the request
  2  usage: a bad command line, no credentials, or a request breaking a
     documented rule (nothing was sent)
  3  network failure or timeout (or a retryable service error): try again
  4  a local file could not be read or written, or a download converted (--format: no sox)

]] .. options.GLOBAL_USAGE
end

-- Global options may come before the command: returns them and the index
-- of the command's name.
local function leading_options(args)
  local i, pre = 1, {}
  while args[i] and args[i]:sub(1, 2) == "--" and args[i] ~= "--help" and args[i] ~= "--"
    and args[i] ~= "--version" do
    local name = args[i]:match("^%-%-([%w-]+)")
    pre[#pre + 1] = args[i]
    if options.GLOBAL[name] and options.GLOBAL[name] ~= "flag" and not args[i]:find("=", 1, true) then
      i = i + 1
      pre[#pre + 1] = args[i]
    end
    i = i + 1
  end
  return pre, i
end

-- Whether flag is among the options (before a "--").
local function given(args, ...)
  for _, a in ipairs(args) do
    if a == "--" then return false end
    for k = 1, select("#", ...) do if a == select(k, ...) then return true end end
  end
  return false
end

--- Runs the command line args (arg) and returns the exit status. extra:
-- more commands, name = { summary =, usage =, options =, run = fn(ctx,
-- options, args) }.
function cli.main(args, extra)
  local commands = load_commands(extra)
  local ctx = output.context(options.secrets_in(args))
  local rest, i = leading_options(args)
  local name = args[i]
  if name == "--version" then
    ctx:out(PROGRAM, " ", require("voiceclone")._VERSION, "\n")
    return EXIT.OK
  end
  if not name or name == "-h" or name == "--help" or name == "help" then
    local topic = name == "help" and commands[args[i + 1] or ""]
    ctx:out(topic and topic.usage or main_usage(commands))
    return name and EXIT.OK or EXIT.USAGE
  end
  local command = commands[name]
  if not command then
    ctx:err(PROGRAM, ": unknown command ", name, "\n", main_usage(commands))
    return EXIT.USAGE
  end
  ctx.command = name
  for j = i + 1, #args do rest[#rest + 1] = args[j] end
  if given(rest, "-h", "--help") then
    ctx:out(command.usage)
    return EXIT.OK
  end
  -- a usage error found while parsing is JSON too under --json
  ctx.json_output = command.options.json and given(rest, "--json")
  local parsed, positional = options.parse(rest, command.options, command.max_args, command.aliases)
  if not parsed then return ctx:usage(positional) end
  if #positional < (command.min_args or 0) then
    return ctx:usage("missing argument: " .. command.usage:match("^usage: (%C+)"))
  end
  ctx.json_output = parsed.json
  local ok, status = compat.xpcall(command.run, debug.traceback, ctx, parsed, positional)
  if not ok then
    if tostring(status):find("interrupted!", 1, true) then   -- Ctrl-C (lua's own SIGINT hook)
      ctx:err(PROGRAM, " ", name, ": interrupted\n")
      return 130
    end
    ctx:err(PROGRAM, " ", name, ": internal error: ", status, "\n")
    return EXIT.FAILED
  end
  return status
end

return cli
