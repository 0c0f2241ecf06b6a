-- Shared by the specs: a real sandbox on loopback, clients for it, the
-- sandbox's record of what went over the wire, and the misbehaving server.
local socket = require "socket"
local http = require "socket.http"
local cjson = require("cjson.safe").new()
local compat = require "voiceclone.compat"
-- The secret watch, when the run installed it (.busted's helper); its calls
-- do nothing otherwise.
local watch = require "support.secret_watch"

local helpers = {}

--- The interpreter the suite runs under (scripts/run-specs exports it):
-- every child Lua of the specs is started with it.
helpers.LUA = os.getenv("VOICECLONE_LUA") or "lua5.4"
--- Where the in-tree build of voiceclone.core is: a package.cpath template.
helpers.CPATH = os.getenv("VOICECLONE_CPATH") or "build/lua5.4/?.so"
--- The Lua version of that interpreter's module paths (LuaJIT's are 5.1's),
-- and Debian's directory of C modules for it (cjson, socket...).
helpers.LUA_VERSION = helpers.LUA:find("luajit", 1, true) and "5.1"
  or helpers.LUA:match("lua(5%.%d)") or (type(jit) == "table" and "5.1" or _VERSION:match("%d+%.%d+"))
helpers.SYSTEM_CPATH = "/usr/lib/x86_64-linux-gnu/lua/" .. helpers.LUA_VERSION .. "/?.so"

--- The checkout the specs run in (scripts/run-specs starts them there).
helpers.ROOT = assert(require("voiceclone.fs").cwd())

helpers.SECRET_ID = "spec-id"
--- The key the whole suite runs with: one the secret watch recognises in
-- every form (spec/support/secret_watch.lua), each of them different: '"'
-- is JSON-escaped, URL-encoded and HTML-escaped; "/" escaped by JSON
-- encoders such as lua-cjson ("\/") and URL-encoded ("%2F", "%2f"); "+"
-- URL-encoded; "&" URL-encoded and HTML-escaped. Quote it in a command.
helpers.SECRET_KEY = [[vc-SECRET/key+7f3a&9c"4e]]
watch.add_key(helpers.SECRET_KEY, "helpers.SECRET_KEY")

local function tmpname()
  local path = os.tmpname()
  os.remove(path)
  return path
end

-- (What a spec reads of a file, a command's output, a log, a journal, the
-- sandbox's data, is scanned by the secret watch.)
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")   -- "*a": 5.1 and 5.2 need the star
  f:close()
  watch.output(s, "the file " .. tostring(path))
  return s
end
helpers.read_file = read_file

--- s as one single-quoted shell word.
function helpers.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command without the sanitizer preload (make test-asan), which
-- is meant for the Lua running the specs only: espeak-ng hangs under it.
-- Returns what os.execute does on 5.2+: true|nil, "exit"|"signal", code.
-- Under the secret watch, what the command outputs is scanned, then passed
-- on to this process's standard output.
function helpers.run(command)
  local shell = "env -u LD_PRELOAD sh -c " .. helpers.quote(command)
  if not watch.active then return compat.execute(shell) end
  local out = tmpname()
  local ok, how, code = compat.execute(shell .. " >" .. helpers.quote(out) .. " 2>&1")
  local text = read_file(out)
  os.remove(out)
  if text and text ~= "" then
    watch.output(text, "the output of " .. command:sub(1, 120))
    io.stdout:write(text)
  end
  return ok, how, code
end

--- Output of a shell command, then true|nil, "exit", its exit status (the
-- shell's: 128 + N for signal N). A popen's close tells no status on Lua 5.1,
-- so the shell prints it after the output.
-- Like helpers.run, the command runs without the sanitizer preload of make
-- test-asan (other programs are not ours to check), unless keep_preload:
-- in_a_child runs the instrumented core, and needs it.
function helpers.read_command(command, keep_preload)
  local shell = "(" .. command .. "); echo \"<exit $?>\""
  if not keep_preload then shell = "env -u LD_PRELOAD sh -c " .. helpers.quote(shell) end
  local p = assert(io.popen(shell))
  local text = p:read("*a")
  p:close()
  local output, code = text:match("^(.-)<exit (%d+)>\n?$")
  if not output then return text, nil, "exit", nil end
  code = tonumber(code)
  return output, code == 0 or nil, "exit", code
end

--- A fresh directory; pass busted's `finally` to have it removed when the
-- test ends.
function helpers.tmpdir(finally)
  local path = tmpname()
  assert(helpers.run("mkdir -p " .. helpers.quote(path)))
  if finally then finally(function() helpers.run("rm -rf " .. helpers.quote(path)) end) end
  return path
end

-- Starts a child process in the background, its output into log.
local function spawn(command, log)
  assert(helpers.run(("%s >%s 2>&1 &"):format(command, log)))
end

local function wait_for(what, check, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  repeat
    local value = check()
    if value then return value end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  error("timed out waiting for " .. what)
end

--- Starts `voiceclone sandbox --verbose` on a free port; returns
-- { url =, pid =, data =, stop = fn, log = path }. Extra flags go in args.
-- Its log (requests and job changes) is scanned by the secret watch once
-- stopped (at the end of the spec file if never).
function helpers.start_sandbox(args)
  local data = (args and args.data) or tmpname()
  local log = tmpname()
  local flags = {
    "--port 0", "--data " .. data, "--queue-seconds 0.05", "--work-seconds 0.1", "--verbose",
    "--secret-id " .. helpers.quote(helpers.SECRET_ID), "--secret-key " .. helpers.quote(helpers.SECRET_KEY),
  }
  for _, flag in ipairs(args or {}) do flags[#flags + 1] = flag end
  -- (its descriptor limit as high as it may go: specs hold thousands of connections)
  spawn('ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec ' .. helpers.LUA .. " scripts/voiceclone sandbox "
    .. table.concat(flags, " "), log)
  local line = wait_for("the sandbox to listen", function()
    -- (the line on stdout: --verbose logs one of its own on stderr first)
    return (read_file(log) or ""):match("voiceclone sandbox listening on [^\n]+ pid=%d+")
  end)
  local sandbox = {
    url = line:match("(http://%S+)"),
    pid = line:match("pid=(%d+)"),
    data = data,
    log = log,
  }
  local label = "the log of the sandbox at " .. sandbox.url
  watch.scan_file_later(log, label)
  function sandbox.stop()
    helpers.run("kill " .. sandbox.pid .. " 2>/dev/null")
    watch.scan_file(log, label)
  end
  return sandbox
end

--- A client for the sandbox (options override the defaults).
function helpers.client(sandbox, options)
  local settings = { endpoint = sandbox.url, secret_id = helpers.SECRET_ID,
                     secret_key = helpers.SECRET_KEY, timeout = 10 }
  for k, v in pairs(options or {}) do settings[k] = v end
  return assert(require("voiceclone").new(settings))   -- loaded here: sandbox specs need no core
end

--- The API requests the sandbox received after sequence number `since`,
-- each { seq =, method =, path =, headers =, body = raw text, json = decoded }.
function helpers.requests(sandbox, since)
  local body, status = http.request(sandbox.url .. "/_sandbox/requests?since=" .. (since or 0))
  assert(status == 200, "sandbox /_sandbox/requests answered " .. tostring(status))
  local list = assert(cjson.decode(body))
  for _, r in ipairs(list) do r.json = cjson.decode(r.body) end
  return list
end

--- The last request the sandbox received.
function helpers.last_request(sandbox)
  local list = helpers.requests(sandbox)
  return list[#list]
end

function helpers.last_seq(sandbox)
  local last = helpers.last_request(sandbox)
  return last and last.seq or 0
end

--- Starts spec/support/misbehaving_server.lua; returns { url_for = fn(scenario), stop = fn }.
function helpers.start_misbehaving_server()
  local port_file, log = tmpname(), tmpname()
  spawn(helpers.LUA .. " spec/support/misbehaving_server.lua " .. port_file, log)
  local port = wait_for("the misbehaving server", function()
    local text = read_file(port_file)
    return text and text:match("%d+")
  end)
  local server = {}
  function server.url_for(scenario) return ("http://127.0.0.1:%s/%s"):format(port, scenario) end
  function server.stop()
    helpers.run(("pkill -f 'misbehaving_server.lua %s' 2>/dev/null"):format(port_file))
  end
  return server
end

--- A one-shot HTTP receiver on loopback for callbacks: returns
-- { url =, wait = fn(seconds) -> body or nil, close = fn }.
function helpers.callback_receiver()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  local receiver = { url = ("http://127.0.0.1:%d/hook"):format(port) }
  function receiver.wait(seconds)
    server:settimeout(seconds or 10)
    local conn = server:accept()
    if not conn then return nil end
    conn:settimeout(5)
    local length = 0
    local line = conn:receive("*l")
    while line and line ~= "" do
      local n = line:lower():match("^content%-length:%s*(%d+)")
      if n then length = tonumber(n) end
      line = conn:receive("*l")
    end
    local body = conn:receive(length)
    conn:send("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
    conn:close()
    return body
  end
  function receiver.close() server:close() end
  return receiver
end

--- Makes a short WAV of espeak-ng speaking text, at pitch (0..99).
function helpers.make_recording(path, text, pitch)
  assert(helpers.run(("espeak-ng -p %d -w '%s' '%s'"):format(pitch or 50, path, text)))
  return path
end

--- The pitch (Hz) of a WAV file, measured as the sandbox measures voices.
function helpers.pitch_of(wav)
  local raw = tmpname()
  assert(helpers.run(("sox '%s' -t raw -r 8000 -b 16 -e signed -c 1 '%s'"):format(wav, raw)))
  local hz = require("voiceclone.sandbox.pitch").estimate(read_file(raw))
  os.remove(raw)
  return hz
end

--- A loopback port where nothing listens.
function helpers.closed_port()
  local listener = assert(socket.bind("127.0.0.1", 0))
  local _, port = listener:getsockname()
  listener:close()
  return port
end

--- Runs a Lua chunk in a new process of the suite's Lua (helpers.LUA), with
-- the same module build and the same preloads (sanitizers included), where
-- socket and new_client() (a client of `endpoint`) are at hand: a crash
-- fails one spec only. With seconds, the child is killed after that long
-- (exit code 124 or 137): a hang fails one spec too. Returns its output,
-- whether it exited with 0, and its exit code.
function helpers.in_a_child(chunk, endpoint, seconds)
  local script = helpers.tmpname() .. ".lua"
  local f = assert(io.open(script, "w"))
  f:write([[
    local path, cpath, endpoint, id, key = ...
    package.path, package.cpath = path, cpath
    local voiceclone = require "voiceclone"
    socket = require "socket"
    function new_client()
      return assert(voiceclone.new { endpoint = endpoint, secret_id = id, secret_key = key, timeout = 10 })
    end
  ]], chunk)
  f:close()
  local limit = seconds and ("timeout -k 2 %g "):format(seconds) or ""
  local output, ok, _, code = helpers.read_command(("%s%s %s %s %s %s %s %s 2>&1"):format(limit, helpers.LUA,
    script, helpers.quote(package.path), helpers.quote(package.cpath), helpers.quote(endpoint),
    helpers.quote(helpers.SECRET_ID), helpers.quote(helpers.SECRET_KEY)), true)
  os.remove(script)
  return output, ok == true, code
end

-- A child's output, with a sanitizer report cut to its gist.
function helpers.brief(output)
  if not output:find("Sanitizer", 1, true) then return output end
  local lines = {}
  for line in output:gmatch("[^\n]+") do
    if line:find("ERROR:", 1, true) or line:find("SUMMARY:", 1, true) or line:find(" by thread ", 1, true)
        or line:find("^READ") or line:find("^WRITE") or line:find("lua-voiceclone/src/", 1, true) then
      lines[#lines + 1] = line
    end
  end
  return table.concat(lines, "\n")
end

--- This process's limit on open descriptors (the soft one), or nil.
function helpers.fd_limit()
  local text = read_file("/proc/self/limits") or ""
  return tonumber(text:match("Max open files%s+(%d+)"))
end

helpers.decode = cjson.decode
helpers.wait_for = wait_for
helpers.tmpname = tmpname

return helpers
