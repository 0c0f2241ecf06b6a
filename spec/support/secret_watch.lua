--- The secret watch (issue 8 item 5): while the suite runs, every value the
-- public API returns or raises, everything the specs' process prints, the
-- output of the commands the specs run and the logs of the sandboxes they
-- start are searched for the secret keys the suite uses, in each form a
-- server or a program may quote a key: raw, JSON-escaped (with and without
-- "\/"), URL-encoded (upper- and lowercase hex) and HTML-escaped. Each
-- finding is a leak, recorded with where it came from; the test it happened
-- in then ends in an error that lists them (without the key).
--
-- spec/support/secret_helper.lua installs it for every spec file (.busted's
-- `helper`). watch.new() makes an instance of its own, installing nothing:
-- spec/secret_watch_spec.lua proves with one that each form is caught.
--
-- How the API is watched, without changing what it does:
--  * Each public function (voiceclone.*, the methods of Client, Job, Model,
--    Request and Task, the __tostring of each, voiceclone.workflow,
--    .callbacks and .batch, and the functions and objects they return) is
--    replaced in its table by a wrapper, when its module is loaded (a
--    searcher placed first in package.searchers): busted's insulation loads
--    the modules afresh for each file, and each load is wrapped again.
--  * A wrapper passes every argument and every result through (select('#')
--    and nils kept), and scans the results. An error is caught and rethrown
--    as the same value (error(e, 0)) after it is scanned; a position that
--    error(msg, level) gave the wrapper's frame is put back as the caller's,
--    so messages read as without the wrapper; a C function is called as a
--    field of its own name, so luaL_argerror still names it.
--  * Catching needs pcall, which a task's yield must cross. Lua 5.2+ and
--    LuaJIT yield across pcall; Lua 5.1 does not, so there, inside a
--    coroutine, the wrapper does not catch: it calls through, scanning the
--    results only. Such an error still ends up somewhere scanned: in the
--    task that raised it (task.error and task.traceback: the tasks spawned
--    are scanned once done, at the end of each test), or in busted's report
--    of the test it failed. (There alone, an error(msg, 2) of a wrapped Lua
--    function names "(secret watch):1:" as its position: no spec reads it.)
--  * The hooks of the output, the commands and the logs only read: print,
--    io.write, io.stdout/io.stderr:write, what io.popen's handles read;
--    helpers.run and helpers.read_file, the sandboxes' logs (helpers).
--  * Leaks found during a test end it in an error (busted's "test end"
--    event); those outside tests (setup, teardown, logs read at the end),
--    the spec file (its "file end"). The run closes with a count of what was
--    scanned (stderr, after busted's summary).
local cjson = require("cjson.safe").new()

-- LuaJIT 2.1.0-beta3 (Debian's) crashes now and then in a trace through the
-- wrappers (vararg pass-through, pcall and tail calls; tasks_spec, 2 runs
-- in 10): the watch's own functions and wrappers run in the interpreter,
-- the code they watch is compiled as ever.
if type(jit) == "table" then jit.off(true, true) end

local watch = {}

local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end

-- Keys shorter than this would match ordinary text: the product masks none
-- of them (the C core, the command and the sandbox alike), so a scenario
-- with one is a scenario the watch cannot check.
watch.MIN_KEY_LENGTH = 6

--- The forms of a key a server or a program may quote it in, as a list of
-- { name =, text = }, the same text only once.
function watch.forms(key)
  local list, seen = {}, {}
  local function add(name, text)
    if not seen[text] then
      seen[text] = true
      list[#list + 1] = { name = name, text = text }
    end
  end
  add("raw", key)
  -- JSON as the C core writes it: only " \ and control characters escaped
  add("JSON-escaped", (key:gsub('[%c"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return ("\\u%04x"):format(c:byte())
  end)))
  -- JSON as lua-cjson (and PHP, and many more) write it: "/" as "\/" too
  add("JSON-escaped (\\/)", (cjson.encode(key) or '""'):sub(2, -2))
  add("URL-encoded", (key:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)))
  add("URL-encoded (lowercase hex)",
    (key:gsub("[^%w%-%._~]", function(c) return ("%%%02x"):format(c:byte()) end)))
  add("HTML-escaped", (key:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                              ['"'] = "&quot;", ["'"] = "&#39;" })))
  return list
end

----------------------------------------------------------------------------
-- An instance: the keys, the scanning, the leaks found

local Watch = {}
Watch.__index = Watch

--- A watch of its own: options.keys, a list of keys (more with add_key).
function watch.new(options)
  local self = setmetatable({
    keys = {},            -- key -> { label =, forms = }
    key_list = {},        -- in the order added
    leaks = {},           -- { where =, form =, key =, snippet =, context = }
    gaps = {},            -- scenarios run with a key too short to recognise
    context = nil,        -- the test running (a label), if any
    reported = 0,         -- leaks (and gaps) reported so far
    counts = { calls = 0, values = 0, strings = 0, outputs = 0, bytes = 0 },
    files = {},           -- path -> label: logs to scan when their file ends
    tasks = setmetatable({}, { __mode = "k" }),   -- tasks spawned, to scan once done
    adopted = setmetatable({}, { __mode = "k" }), -- metatables of returned objects, wrapped
  }, Watch)
  for _, key in ipairs(options and options.keys or {}) do self:add_key(key, "a key of the watch") end
  return self
end

--- Stops watching key.
function Watch:remove_key(key)
  if not self.keys[key] then return end
  self.keys[key] = nil
  for i, k in ipairs(self.key_list) do
    if k == key then table.remove(self.key_list, i) break end
  end
end

--- Watches key too (from now on). A key too short to recognise is recorded
-- as a gap instead, with where it came from.
function Watch:add_key(key, label)
  if type(key) ~= "string" or key == "" or self.keys[key] then return end
  if #key < watch.MIN_KEY_LENGTH then
    self.gaps[#self.gaps + 1] = { label = label, context = self.context, length = #key }
    return
  end
  self.keys[key] = { label = label, forms = watch.forms(key) }
  self.key_list[#self.key_list + 1] = key
end

-- text with every form of every key watched shown as <key:form>: what a
-- report may show. Longest forms first, so none is half replaced.
function Watch:mask(text)
  local all = {}
  for _, key in ipairs(self.key_list) do
    for _, form in ipairs(self.keys[key].forms) do all[#all + 1] = form end
  end
  table.sort(all, function(a, b) return #a.text > #b.text end)
  for _, form in ipairs(all) do
    local at, out = 1, {}
    while true do
      local s, e = text:find(form.text, at, true)
      if not s then break end
      out[#out + 1] = text:sub(at, s - 1)
      out[#out + 1] = "<key:" .. form.name .. ">"
      at = e + 1
    end
    out[#out + 1] = text:sub(at)
    text = table.concat(out)
  end
  return text
end

-- A leak in string s at `where` (at its field `at`, if given), if any form
-- of a key is in it. (Where is told only once found: a scan makes no garbage
-- of its own beyond a table of what it has seen.)
function Watch:check_string(s, where, at)
  self.counts.strings = self.counts.strings + 1
  for _, key in ipairs(self.key_list) do
    for _, form in ipairs(self.keys[key].forms) do
      local found = s:find(form.text, 1, true)
      if found then
        -- the text around it, every key in it masked first (a cut never shows a piece)
        local masked = self:mask(s)
        local label = masked:find("<key:", 1, true) or 1
        local snippet = masked:sub(math.max(1, label - 30), label + 60)
        if at ~= nil then where = ("%s, at %s"):format(where, tostring(at)) end
        self.leaks[#self.leaks + 1] = {
          where = where, form = form.name, key = self.keys[key].label, context = self.context,
          snippet = (("%q"):format(snippet):gsub("\\\n", "\\n")),
        }
        return   -- one leak a string is enough to tell
      end
    end
  end
end

-- The originals of the methods a scan calls (never the wrappers: a scan
-- counts no call of its own and cannot recurse).
local originals = setmetatable({}, { __mode = "k" })   -- wrapper -> function
local function original(f) return originals[f] or f end

-- A metatable's name: "voiceclone.Job" ...; "voiceclone.Task" for tasks.
local task_metatables = setmetatable({}, { __mode = "k" })
local function type_name(value)
  local mt = debug.getmetatable(value)
  if type(mt) ~= "table" then return nil, mt end
  if task_metatables[mt] then return "voiceclone.Task", mt end
  local name = rawget(mt, "__name")
  return type(name) == "string" and name or nil, mt
end

local MAX_DEPTH = 12
local TASK_FIELDS = { "ok", "results", "error", "traceback" }

-- Scans value (recursively: tables' keys and values; a Job's or Model's
-- data, an error's fields; the tostring of each of ours) for the keys.
function Watch:scan(value, where, at, seen, depth)
  local t = type(value)
  if t == "string" then return self:check_string(value, where, at) end
  if t ~= "table" and t ~= "userdata" then return end
  depth = depth or 0
  if (seen and seen[value]) or depth > MAX_DEPTH then return end
  local name, mt = type_name(value)
  if name ~= "voiceclone.Task" then   -- (a task needs no record: its fields are scanned alone)
    seen = seen or {}
    seen[value] = true
  end
  if name and name:find("^voiceclone%.") then
    local tostring_of = rawget(mt, "__tostring")
    if tostring_of then
      local ok, text = pcall(original(tostring_of), value)   -- C or plain Lua: never yields
      if ok then
        self:check_string(tostring(text), where, at and (tostring(at) .. ", its tostring") or "tostring")
      end
    end
    if name == "voiceclone.Job" or name == "voiceclone.Model" then
      local totable = rawget(mt, "__watch_totable")
      if totable then
        local ok, data = pcall(totable, value)
        if ok then self:scan(data, where, at or "its data", seen, depth + 1) end
      end
      return
    end
    if name == "voiceclone.Task" then
      -- what a task tells: not its scheduler (every other task of the client)
      if rawget(value, "done") then self.tasks[value] = nil end
      for _, field in ipairs(TASK_FIELDS) do
        self:scan(rawget(value, field), where, field, seen, depth + 1)
      end
      return
    end
  end
  if t == "table" then
    for k, v in next, value do
      self:scan(k, where, "a key", seen, depth + 1)
      self:scan(v, where, k, seen, depth + 1)
    end
  end
end

--- Scans every value of ... (as returned at `where`).
function Watch:scan_values(where, ...)
  local n = select("#", ...)
  self.counts.values = self.counts.values + n
  for i = 1, n do
    self:scan((select(i, ...)), where, n > 1 and ("result " .. i) or nil)
  end
end

--- Scans text that was printed, written or output by a command.
function Watch:output(text, where)
  if type(text) ~= "string" then return end
  self.counts.outputs = self.counts.outputs + 1
  self.counts.bytes = self.counts.bytes + #text
  self:check_string(text, where)
end

--- Scans the file at path now (a log), if it is there.
function Watch:scan_file(path, label)
  self.files[path] = nil
  local f = io.open(path, "rb")
  if not f then return end
  local text = f:read("*a")
  f:close()
  self:output(text, label or path)
end

--- Scans the file at path later: when it is passed to scan_file, or at the
-- end of the spec file at the latest (a sandbox never stopped).
function Watch:scan_file_later(path, label)
  self.files[path] = label or path
end

function Watch:scan_pending_files()
  local paths = {}
  for path in pairs(self.files) do paths[#paths + 1] = path end
  table.sort(paths)
  for _, path in ipairs(paths) do self:scan_file(path, self.files[path]) end
end

-- Tasks spawned are scanned once done (their error on Lua 5.1 too).
function Watch:sweep_tasks()
  local done = {}
  for task in pairs(self.tasks) do
    if rawget(task, "done") then done[#done + 1] = task end
  end
  for _, task in ipairs(done) do
    self.tasks[task] = nil
    self:scan(task, "a task spawned (once done)")
  end
end

--- The leaks (and gaps) found since the last call, as one report; nil when
-- none. With `only_context`, only those of that test.
function Watch:take_report(only_context)
  local lines, keep, keep_gaps = {}, {}, {}
  for _, leak in ipairs(self.leaks) do
    if only_context == nil or leak.context == only_context then
      lines[#lines + 1] = ("  the %s key (%s) in %s: %s"):format(leak.form, leak.key,
        leak.where, leak.snippet)
    else
      keep[#keep + 1] = leak
    end
  end
  for _, gap in ipairs(self.gaps) do
    if only_context == nil or gap.context == only_context then
      lines[#lines + 1] = ("  a key of %d characters (%s), too short to recognise: give the scenario a "
        .. "recognisable key (helpers.SECRET_KEY)"):format(gap.length, gap.label)
    else
      keep_gaps[#keep_gaps + 1] = gap
    end
  end
  self.leaks, self.gaps = keep, keep_gaps
  if #lines == 0 then return nil end
  self.reported = self.reported + #lines
  return self:mask(("the secret watch found %d:\n%s"):format(#lines, table.concat(lines, "\n")))
end

----------------------------------------------------------------------------
-- Wrapping functions

-- Lua 5.1 cannot yield across pcall (LuaJIT and 5.2+ can).
local pcall_yields
do
  local probe = coroutine.create(function() return pcall(coroutine.yield) end)
  pcall_yields = coroutine.resume(probe) and coroutine.status(probe) == "suspended"
end
watch.PCALL_YIELDS = pcall_yields

-- The chunk every wrapper is made from, NAME its function's name; one line,
-- so that any position in it reads WHERE. The function is called as the
-- field NAME of a table (a constant key), so a C function's argument errors
-- still say "bad argument #1 to 'NAME'"; and not as a tail call, so error()'s
-- levels find `call` where they found the caller (finish puts the caller's
-- position back). Results go on through tail calls: no table is made.
local CHUNK_NAME = "=(secret watch)"
local WHERE = "(secret watch):1: "
local WRAPPER_SOURCE = table.concat({
  "local M, self, label, before, pcall_yields, running, done = ...",
  "local function pass(...) return ... end",
  "local function call(...) return pass(M.NAME(...)) end",
  "return function(...)",
  "  self.counts.calls = self.counts.calls + 1",
  "  if before then before(self, ...) end",
  "  if not pcall_yields and running() then return done(self, label, true, call(...)) end",
  "  return done(self, label, pcall(call, ...))",
  "end",
}, " ")

-- Rethrows e as it was raised; a position error() gave the wrapper's frame
-- (level 2 from the function wrapped) is the caller's, as it would have been.
local function finish(self, label, e)
  if type(e) == "string" and e:sub(1, #WHERE) == WHERE then
    -- 1 finish, 2 done (in the wrapper's place: a tail call), then the
    -- caller (Lua 5.1 has a "(tail call)" level before it)
    local level, caller = 3, nil
    repeat
      caller = debug.getinfo(level, "Sl")
      level = level + 1
    until not caller or caller.what ~= "tail"
    local where = caller and caller.currentline and caller.currentline > 0
      and (caller.short_src .. ":" .. caller.currentline .. ": ") or ""
    e = where .. e:sub(#WHERE + 1)
  end
  self.counts.values = self.counts.values + 1
  self:scan(e, "the error raised by " .. label)
  error(e, 0)
end

-- Lua functions of lua-voiceclone's own files.
local function ours(f)
  local info = debug.getinfo(f, "S")
  return info.what ~= "C" and (info.source or ""):find("voiceclone/", 1, true) ~= nil
end

-- Whether a result is to be passed on changed (a function of ours, wrapped)
-- or to be looked at (an object whose methods may want wrapping, a task).
local function notable(self, v)
  local t = type(v)
  if t == "function" then return not originals[v] and ours(v) end
  if t ~= "table" then return false end
  local mt = debug.getmetatable(v)
  if type(mt) ~= "table" then return false end
  if task_metatables[mt] then
    self.tasks[v] = true
    return false
  end
  return not self.adopted[mt]
end

-- The results of a call (after pcall's ok): scanned, then passed on.
local function done(self, label, ok, ...)
  if not ok then finish(self, label, (...)) end
  self:scan_values(label, ...)
  if label == "voiceclone.new()" and (...) then
    self:add_key(self.new_key, "a key given to voiceclone.new")
  end
  for i = 1, select("#", ...) do
    if notable(self, (select(i, ...))) then return self:adopt(label, pack(...)) end
  end
  return ...
end

local load_chunk = loadstring or load

-- Wrappers made by this process, whichever instance made them.
local wrapper_of = setmetatable({}, { __mode = "k" })   -- function -> wrapper

--- Whether f is a wrapper (of any instance).
function watch.is_wrapper(f) return originals[f] ~= nil end

--- A wrapper of f (labelled `label` in reports) that scans all f returns or
-- raises and passes everything through. before(watch, ...), if given, sees
-- the arguments first.
function Watch:wrap(f, label, name, before)
  if originals[f] then return f end                       -- already a wrapper
  local cached = wrapper_of[f]
  if cached then return cached end
  name = type(name) == "string" and name:find("^[%a_][%w_]*$") and name or "f"
  local make = assert(load_chunk((WRAPPER_SOURCE:gsub("NAME", name)), CHUNK_NAME))
  if type(jit) == "table" then jit.off(make, true) end
  local w = make({ [name] = f }, self, label, before, pcall_yields,
    function() return (coroutine.running()) ~= nil end, done)
  originals[w] = f
  wrapper_of[f] = w
  return w
end

-- Results r[1..r.n] with something notable: the functions of ours among
-- them passed on wrapped, the methods of our objects wrapped, the tasks
-- remembered (scanned once done).
function Watch:adopt(label, r)
  for i = 1, r.n do
    local v = r[i]
    local t = type(v)
    if t == "function" and not originals[v] and ours(v) then
      r[i] = self:wrap(v, "the function " .. label .. " returned")
    elseif t == "table" then
      local mt = debug.getmetatable(v)
      if type(mt) == "table" and not self.adopted[mt] then
        self.adopted[mt] = true
        if label == "Client:spawn()" then task_metatables[mt] = true end
        self:wrap_metatable(mt, "(what " .. label .. " returned)")
      end
      if task_metatables[mt or false] then self.tasks[v] = true end
    end
  end
  return unpack(r, 1, r.n)
end

----------------------------------------------------------------------------
-- The API's tables

-- Wraps every function of t (in place), naming them prefix .. key.
function Watch:wrap_table(t, prefix, filter)
  if type(t) ~= "table" then return end
  for key, value in pairs(t) do
    if type(key) == "string" and type(value) == "function" and not originals[value]
        and (not filter or filter(key, value)) then
      rawset(t, key, self:wrap(value, prefix .. key .. "()", key))
    end
  end
end

-- Wraps the methods and the __tostring of a metatable of ours.
function Watch:wrap_metatable(mt, prefix)
  if type(mt) ~= "table" then return end
  local tostring_of = rawget(mt, "__tostring")
  if type(tostring_of) == "function" and not originals[tostring_of] then
    rawset(mt, "__tostring", self:wrap(tostring_of, "tostring(" .. prefix .. ")", "__tostring"))
  end
  local index = rawget(mt, "__index")
  if type(index) == "table" then
    self:wrap_table(index, prefix .. ":", function(_, f) return ours(f) end)   -- Lua objects' methods
  end
end

-- The module tables of the public API and the method tables of its types,
-- wrapped again after each load of a voiceclone module (idempotent).
function Watch:wrap_api(just_loaded, module)
  -- (a module's loader returns it before require puts it in package.loaded)
  local loaded = setmetatable({}, { __index = function(_, name)
    if name == just_loaded and module ~= nil then return module end
    return package.loaded[name]
  end })
  local core = loaded["voiceclone.core"]
  if type(core) == "table" then
    local registry = debug.getregistry()
    for _, type_name_ in ipairs { "Client", "Job", "Model", "Request", "Error" } do
      local mt = registry["voiceclone." .. type_name_]
      if type(mt) == "table" then
        local tostring_of = rawget(mt, "__tostring")
        if type(tostring_of) == "function" and not originals[tostring_of] then
          rawset(mt, "__tostring", self:wrap(tostring_of, "tostring(" .. type_name_ .. ")", "__tostring"))
        end
        if (type_name_ == "Job" or type_name_ == "Model") and type(core.totable) == "function" then
          rawset(mt, "__watch_totable", original(core.totable))   -- for scans of a job's data
        end
        if type(rawget(mt, "__index")) == "table" then
          self:wrap_table(rawget(mt, "__index"), type_name_ .. ":")
        end
      end
    end
    self:wrap_table(core.Client, "Client:")
    self:wrap_table(core.Job, "Job:")
    self:wrap_table(core.Model, "Model:")
  end
  local init = loaded["voiceclone"]
  if type(init) == "table" then
    self:wrap_new(init)
    self:wrap_table(init, "voiceclone.")
  end
  for _, name in ipairs { "workflow", "callbacks", "batch" } do
    local m = loaded["voiceclone." .. name]
    if type(m) == "table" then self:wrap_table(m, "voiceclone." .. name .. ".") end
  end
end

-- voiceclone.new: the key of each client it makes is watched from then on
-- (one too short to recognise is a gap); a key from the environment too.
local function key_of_new(self, options)
  local key = type(options) == "table" and rawget(options, "secret_key")   -- rawget: no __index run
  if key == nil then key = os.getenv("VOICECLONE_SECRET_KEY") end
  self.new_key = key
end

function Watch:wrap_new(init)
  local new = rawget(init, "new")
  if type(new) ~= "function" or originals[new] then return end
  rawset(init, "new", self:wrap(new, "voiceclone.new()", "new", key_of_new))
end

----------------------------------------------------------------------------
-- Installing it for a busted run

--- The instance installed (nil when none is: helpers used outside busted).
watch.active = nil

--- Scans text output at `where` (no-op without an installed watch).
function watch.output(text, where)
  if watch.active then watch.active:output(text, where) end
end

--- Registers key as one the installed watch looks for.
function watch.add_key(key, label)
  if watch.active then watch.active:add_key(key, label) end
end

function watch.scan_file(path, label)
  if watch.active then watch.active:scan_file(path, label) end
end

function watch.scan_file_later(path, label)
  if watch.active then watch.active:scan_file_later(path, label) end
end

-- Where printing goes: print, io.write (to the standard output), and the
-- write method of io.stdout and io.stderr; what the commands io.popen starts
-- output (their handles' read and lines).
-- What the hooks pass on to: the functions they replaced (the self-test
-- swaps them to keep its canary off the terminal).
watch.raw = {}

local function hook_output(self)
  local stdout, stderr = io.stdout, io.stderr
  local raw = watch.raw
  raw.print, raw.write, raw.popen = print, io.write, io.popen
  local popened = setmetatable({}, { __mode = "k" })   -- handle -> its command (masked when shown)

  print = function(...)    -- luacheck: ignore (the global, on purpose)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    self:output(table.concat(parts, "\t"), "print()")
    return raw.print(...)
  end
  io.write = function(...)
    if io.output() == stdout then
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "string" then self:output(v, "io.write()") end
      end
    end
    return raw.write(...)
  end
  io.popen = function(command, ...)
    local r = pack(raw.popen(command, ...))
    if r[1] then popened[r[1]] = tostring(command) end
    return unpack(r, 1, r.n)
  end

  local methods = debug.getmetatable(stdout).__index
  raw.file_write, raw.file_read, raw.file_lines = methods.write, methods.read, methods.lines
  local read, lines = methods.read, methods.lines
  local function what(f) return "the output of " .. (popened[f] or "?"):sub(1, 120) end
  methods.write = function(f, ...)
    if f == stdout or f == stderr then
      for i = 1, select("#", ...) do
        local v = select(i, ...)
        if type(v) == "string" then
          self:output(v, f == stdout and "io.stdout:write()" or "io.stderr:write()")
        end
      end
    end
    return raw.file_write(f, ...)
  end
  methods.read = function(f, ...)
    if not popened[f] then return read(f, ...) end
    local r = pack(read(f, ...))
    for i = 1, r.n do self:output(r[i], what(f)) end
    return unpack(r, 1, r.n)
  end
  methods.lines = function(f, ...)
    local iterator = lines(f, ...)
    if not popened[f] then return iterator end
    return function(...)
      local r = pack(iterator(...))
      for i = 1, r.n do self:output(r[i], what(f)) end
      return unpack(r, 1, r.n)
    end
  end
end

-- After each load of a voiceclone module, the API is wrapped (again): a
-- searcher, first in package.searchers, passes every other searcher's
-- loader on in a loader that wraps what it loaded.
local function hook_modules(self)
  local searchers = package.searchers or package.loaders
  local function searcher(name)
    if name ~= "voiceclone" and not name:find("^voiceclone%.") then return nil end
    for i = 1, #searchers do
      local s = searchers[i]
      if s ~= searcher then
        local r = pack(s(name))
        if type(r[1]) == "function" then
          local loader = r[1]
          r[1] = function(...)
            local results = pack(loader(...))
            self:wrap_api(name, results[1])
            return unpack(results, 1, results.n)
          end
          return unpack(r, 1, r.n)
        end
      end
    end
    return nil   -- require goes on to the others, and says what they say
  end
  table.insert(searchers, 1, searcher)
  -- a require of an already loaded module runs no loader: wrap those now
  self:wrap_api()
end

-- The name of a busted element with its describes.
local function full_name(busted, element)
  local names, e = {}, element
  while e and e.descriptor ~= "file" and e.descriptor ~= "suite" do
    if e.name then table.insert(names, 1, e.name) end
    e = busted.parent(e)
  end
  return table.concat(names, " ")
end

-- busted: each test ends in an error listing the leaks found during it;
-- each spec file, the leaks found outside its tests (setup, teardown, the
-- logs of its sandboxes); the run closes with what was scanned.
local function hook_busted(self, busted)
  local file_name
  busted.subscribe({ "file", "start" }, function(file)
    file_name = file.name
    return nil, true
  end)
  busted.subscribe({ "test", "start" }, function(element)
    self.context = (file_name or "?") .. ": " .. full_name(busted, element)
    return nil, true
  end)
  busted.subscribe({ "test", "end" }, function()
    local context = self.context
    self:sweep_tasks()
    self.context = nil
    local report = self:take_report(context)
    if report then error(report, 0) end
    return nil, true
  end)
  -- what busted reports is scanned as it is reported (printed at the end)
  for _, kind in ipairs { "failure", "error" } do
    busted.subscribe({ kind }, function(_, _, message, trace)
      self:output(tostring(message), "busted's " .. kind .. " report")
      if type(trace) == "table" then
        self:output(tostring(trace.traceback), "busted's " .. kind .. " traceback")
      end
      return nil, true
    end)
  end
  busted.subscribe({ "file", "end" }, function(file)
    self:sweep_tasks()
    self:scan_pending_files()
    local report = self:take_report()
    if report then error(("%s, outside its tests: %s"):format(file.name, report), 0) end
    return nil, true
  end)
  busted.subscribe({ "suite", "end" }, function()
    local c = self.counts
    io.stderr:write(("secret watch: %d API calls, %d values (%d strings) and %d outputs (%d bytes) "
      .. "scanned for %d keys; %d leaks\n"):format(c.calls, c.values, c.strings, c.outputs, c.bytes,
      #self.key_list, self.reported))
    return nil, true
  end)
end

--- Installs a watch for this busted run (once): returns it.
function watch.install(busted)
  if watch.active then return watch.active end
  local self = watch.new()
  watch.active = self
  hook_output(self)
  hook_modules(self)
  if busted then hook_busted(self, busted) end
  return self
end

return watch
