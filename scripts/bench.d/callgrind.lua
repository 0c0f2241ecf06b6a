-- Row 2 of scripts/bench: instructions per GetJob from callgrind runs of
-- getjob.lua with N=0 and N=K requests (the same start-up and warm-up call
-- in both), and where they go.
--   lua5.4 callgrind.lua K vc_0 vc_K luasocket_0 luasocket_K profile_out [LUA]
-- (LUA: the interpreter the runs were made under, for the profile's title)
-- Prints vc_ir=, luasocket_ir= (per request); writes to profile_out the
-- per-request cost of voiceclone by ELF object (exclusive) and by named
-- function (inclusive: the module's own C functions, libcurl's and
-- lua-cjson's entry points), each the difference of the two runs over K.
local k = tonumber(arg[1])
local files = { vc0 = arg[2], vck = arg[3], ls0 = arg[4], lsk = arg[5] }
local profile_out = arg[6]
local lua_name = arg[7] or "lua5.4"

local function totals(file)
  local f = assert(io.open(file, "r"))
  local total
  for line in f:lines() do
    total = tonumber(line:match("^totals:%s*(%d+)")) or tonumber(line:match("^summary:%s*(%d+)")) or total
  end
  f:close()
  return assert(total, "no totals in " .. file)
end

-- { [function] = Ir, ... } and { [object] = Ir } from callgrind_annotate.
local function annotate(file, inclusive)
  local p = assert(io.popen("callgrind_annotate --threshold=100 --inclusive="
    .. (inclusive and "yes" or "no") .. " '" .. file .. "' 2>/dev/null"))
  local by_fn, by_obj = {}, {}
  for line in p:lines() do
    local n, name = line:match("^%s*([%d,]+) %(%s*[%d.]+%%%)%s+(.+)$")
    if n and name ~= "PROGRAM TOTALS" then
      n = tonumber((n:gsub(",", "")))
      local obj = name:match("%[(.-)%]%s*$")
      local fn = name:gsub("%s*%[.-%]%s*$", ""):gsub("^.*:", ""):gsub("'%d+$", "")
      if obj then
        obj = obj:match("([^/]+)$")
        fn = fn .. " (" .. obj .. ")"
      end
      -- one function may be listed under several file names: keep the largest
      if inclusive then by_fn[fn] = math.max(by_fn[fn] or 0, n)
      else by_fn[fn] = (by_fn[fn] or 0) + n end
      obj = obj or "?"
      by_obj[obj] = (by_obj[obj] or 0) + n
    end
  end
  p:close()
  return by_fn, by_obj
end

-- The call tree: { [caller] = { [callee] = inclusive Ir } }, recursion
-- levels ('2) left out, the listings of one function under several file
-- names merged.
local function short_name(name)
  local obj = name:match("%[(.-)%]%s*$")
  local fn = name:gsub("%s*%[.-%]%s*$", ""):gsub("%s*%(%d[%d,]*x%)", ""):gsub("^.*:", "")
  if fn:match("^0x") and obj then fn = fn .. " (" .. obj:match("([^/]+)$") .. ")" end
  return fn
end

local function call_tree(file)
  local p = assert(io.popen("callgrind_annotate --tree=calling --inclusive=yes --threshold=100 '"
    .. file .. "' 2>/dev/null"))
  local tree, caller = { [""] = {} }, nil
  for line in p:lines() do
    local n, mark, name = line:match("^%s*([%d,]+) %(%s*[%d.]+%%%)%s+([*>])%s+(.+)$")
    if n then
      n = tonumber((n:gsub(",", "")))
      local fn = short_name(name)
      if mark == "*" then
        caller = not fn:find("'%d") and fn or nil
        if caller then
          tree[caller] = tree[caller] or {}
          tree[""][caller] = math.max(tree[""][caller] or 0, n)   -- its own inclusive cost
        end
      elseif caller and not fn:find("'%d") then
        tree[caller][fn] = math.max(tree[caller][fn] or 0, n)
      end
    end
  end
  p:close()
  return tree
end

local function per_request(a, b)
  local list = {}
  for name, v in pairs(b) do
    local d = (v - (a[name] or 0)) / k
    if d >= 1 then list[#list + 1] = { name = name, ir = d } end
  end
  table.sort(list, function(x, y) return x.ir > y.ir end)
  return list
end

local vc = (totals(files.vck) - totals(files.vc0)) / k
local ls = (totals(files.lsk) - totals(files.ls0)) / k
io.write(string.format("vc_ir=%.0f\nluasocket_ir=%.0f\n", vc, ls))

local out = assert(io.open(profile_out, "w"))
local function section(title, list, filter, limit)
  out:write(title, "\n")
  local shown = 0
  for _, e in ipairs(list) do
    if shown >= limit then break end
    if not filter or filter(e.name) then
      out:write(string.format("    %9.0f  %5.1f%%  %s\n", e.ir, 100 * e.ir / vc, e.name))
      shown = shown + 1
    end
  end
end

local fn0, obj0 = annotate(files.vc0, false)
local fnk, objk = annotate(files.vck, false)
local _, lobj0 = annotate(files.ls0, false)
local _, lobjk = annotate(files.lsk, false)
local tree0, treek = call_tree(files.vc0), call_tree(files.vck)

out:write(string.format("%s: voiceclone: %.0f instructions per GetJob; luasocket + cjson: %.0f\n",
  lua_name, vc, ls))
out:write("  voiceclone, call tree per GetJob from the C core's entry points (inclusive; callees over "
  .. "1.5% shown; the rest is the Lua layer: client.lua, tasks.lua's await):\n")
-- What a call of the Lua API stands for, by caller (lua_call is a macro
-- for lua_callk from 5.2 on, a function in 5.1 and LuaJIT).
local LABELS = {
  ["vc_response_decode/lua_callk"] = "lua_callk: cjson decode of the answer",
  ["vc_response_decode/lua_call"] = "lua_call: cjson decode of the answer",
  ["vc_call_start/lua_callk"] = "lua_callk: cjson encode of the request",
  ["vc_call_start/lua_call"] = "lua_call: cjson encode of the request",
}
local function walk(fn, ir, depth, parent)
  out:write(string.format("    %9.0f  %5.1f%%  %s%s\n", ir, 100 * ir / vc, ("  "):rep(depth),
    LABELS[parent .. "/" .. fn] or fn))
  -- the Lua API and stripped code have callees from every caller mixed: stop
  if depth >= 6 or fn:find("^0x") or fn:find("^lua") then return end
  local children = {}
  for callee, v in pairs(treek[fn] or {}) do
    local d = (v - ((tree0[fn] or {})[callee] or 0)) / k
    if d >= 0.015 * vc and callee ~= fn then children[#children + 1] = { fn = callee, ir = d } end
  end
  table.sort(children, function(a, b) return a.ir > b.ir end)
  for _, c in ipairs(children) do walk(c.fn, c.ir, depth + 1, fn) end
end
-- A blocking client:get_job is core.get_job (call_get_job starts the
-- Request), request:done() and core.drive until it is done (loop_drive),
-- then request:finish() (request_finish decodes the answer).
for _, root in ipairs { "call_get_job", "loop_drive", "request_done", "request_finish" } do
  local ir = ((treek[""][root] or 0) - (tree0[""][root] or 0)) / k
  if ir >= 1 then walk(root, ir, 0, "") end
end
local in0, ink = annotate(files.vc0, true), annotate(files.vck, true)
local TOP_LEVEL = { curl_multi_socket_action = true, curl_easy_setopt = true,
                    curl_multi_add_handle = true, curl_multi_remove_handle = true }
section("  named helpers inside libcurl's work per GetJob (inclusive; curl's own and libc's):",
  per_request(in0, ink), function(name)
    local fn = name:match("^(%S+)")
    return (fn:find("^curl_") and not TOP_LEVEL[fn]) or fn == "getenv" or fn:find("scanf")
      or fn == "poll" or fn == "recv" or fn == "send" or fn == "sendto" or fn == "recvfrom"
  end, 10)
section("  voiceclone, by object (exclusive):", per_request(obj0, objk), nil, 7)
section("  voiceclone, hottest functions (exclusive; 0x... = in a stripped library):",
  per_request(fn0, fnk), nil, 12)
out:write("  luasocket + cjson loop, by object (exclusive):\n")
for i, e in ipairs(per_request(lobj0, lobjk)) do
  if i > 5 then break end
  out:write(string.format("    %9.0f  %s\n", e.ir, e.name))
end
out:close()
