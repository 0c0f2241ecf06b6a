--- voiceclone.compat: what differs between Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT
-- 2.1 for the Lua modules, in one place. It returns a table and changes no
-- global (never a bare `require "compat53"`, which patches them all).
local compat = {}

local unpack = table.unpack or unpack
compat.unpack = unpack

--- table.pack (5.2+).
function compat.pack(...)
  return { n = select("#", ...), ... }
end

--- utf8 (5.3+); Debian's lua-compat53 has the same C library for the others.
compat.utf8 = utf8 or require "compat53.utf8"

-- 5.3+ has an integer subtype. Elsewhere every number is a float and a whole
-- one counts as an integer: what 5.3+ sees too once JSON numbers have been
-- normalised (cjson decodes 1 and 1.0 alike). Beyond +-2^63 there is no
-- 64-bit integer to be.
local TWO_63 = 2 ^ 63

--- math.tointeger: x as an integer, or nil when x is not a whole number.
compat.tointeger = math.tointeger or function(x)
  if type(x) == "number" and x == math.floor(x) and x >= -TWO_63 and x < TWO_63 then return x end
  return nil
end

--- math.type: "integer", "float", or nil for a non-number.
compat.math_type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  return compat.tointeger(x) and "integer" or "float"
end

--- os.execute as 5.2+ has it: true|nil, "exit"|"signal", code. Lua 5.1 and
-- LuaJIT return the bare wait status of system(3).
function compat.execute(command)
  local ok, how, code = os.execute(command)
  if type(ok) ~= "number" then return ok, how, code end
  if ok == 0 then return true, "exit", 0 end
  if ok == -1 then return nil, "exit", -1 end          -- the shell could not be started
  if ok % 256 ~= 0 then return nil, "signal", ok % 128 end
  return nil, "exit", math.floor(ok / 256)
end

--- package.searchpath (5.2+; LuaJIT has it): the first file of path's
-- templates that opens for name, or nil and the files tried.
compat.searchpath = package.searchpath or function(name, path)
  local file, tried = name:gsub("%.", "/"), {}
  for template in path:gmatch("[^;]+") do
    local candidate = template:gsub("%?", function() return file end)
    local f = io.open(candidate, "r")
    if f then
      f:close()
      return candidate
    end
    tried[#tried + 1] = "\n\tno file '" .. candidate .. "'"
  end
  return nil, table.concat(tried)
end

--- The interpreter command running this code (for child Lua processes):
-- $VOICECLONE_LUA, else lua5.x or luajit as Debian names them.
function compat.interpreter()
  local lua = os.getenv("VOICECLONE_LUA")
  if lua and lua ~= "" then return lua end
  if type(jit) == "table" then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

--- An object that calls fn() once it is collected (keep it referenced as
-- long as fn must wait). 5.1 and LuaJIT run no __gc of a table: there it is
-- a userdata from newproxy. Errors in fn are swallowed (a finalizer must
-- not raise).
function compat.on_collect(fn)
  local function finalize() pcall(fn) end
  local proxy = newproxy and newproxy(true)
  if proxy then
    getmetatable(proxy).__gc = finalize
    return proxy
  end
  return setmetatable({}, { __gc = finalize })
end

----------------------------------------------------------------------------
-- pcall/xpcall that a task may yield through.
--
-- 5.2+ and LuaJIT can yield across pcall; Lua 5.1 cannot ("attempt to yield
-- across metamethod/C-call boundary"). There, f runs in a coroutine of its
-- own and its yields are passed on to ours, and what we are resumed with is
-- passed back. compat.running() sees through that inner coroutine, so code
-- that knows a task by its coroutine still finds it.

local probe = coroutine.create(function() return pcall(coroutine.yield) end)
local pcall_yields = coroutine.resume(probe) and coroutine.status(probe) == "suspended"

local outer = setmetatable({}, { __mode = "k" })   -- inner coroutine -> the one it runs for

--- The coroutine running, seen through compat.pcall's own (nil in the
-- main thread, as on 5.1).
function compat.running()
  local co, main = coroutine.running()
  if main then return nil end
  while co and outer[co] do co = outer[co] end
  return co
end

-- Resume co until it ends, yielding what it yields; returns ok, results
-- (and co, for a traceback).
local function drive(co, ...)
  local res = compat.pack(coroutine.resume(co, ...))
  if coroutine.status(co) == "suspended" and not coroutine.running() then
    return { n = 2, false, "attempt to yield from outside a coroutine" }   -- as pcall says it
  end
  while coroutine.status(co) == "suspended" do
    res = compat.pack(coroutine.resume(co, coroutine.yield(unpack(res, 2, res.n))))
  end
  return res
end

local function trampoline(f, ...)
  local co = coroutine.create(function(...) return f(...) end)   -- f may be a C function
  outer[co] = coroutine.running()
  return co, drive(co, ...)
end

if pcall_yields then
  compat.pcall = pcall
  --- xpcall(f, handler, ...): 5.1 passes no arguments to f.
  function compat.xpcall(f, handler, ...)
    local args = compat.pack(...)
    return xpcall(function() return f(unpack(args, 1, args.n)) end, handler)
  end
else
  function compat.pcall(f, ...)
    local _, res = trampoline(f, ...)
    return unpack(res, 1, res.n)
  end
  -- The error has unwound f's coroutine by the time the handler runs here:
  -- a debug.traceback handler is given that dead coroutine's stack.
  function compat.xpcall(f, handler, ...)
    local co, res = trampoline(f, ...)
    if res[1] then return unpack(res, 1, res.n) end
    if handler == debug.traceback then return false, debug.traceback(co, res[2]) end
    return false, handler(res[2])
  end
end

return compat
