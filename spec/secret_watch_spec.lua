-- The secret watch itself (spec/support/secret_watch.lua): a watch that
-- could not fail would prove nothing. A key fed through each path it
-- watches is reported, in each of its forms; its wrappers change nothing
-- of what they wrap (results, errors, positions, yields); and this run is
-- watched: the suite's key, the API, the output and the commands.
local watch = require "support.secret_watch"
local helpers = require "support.helpers"
local voiceclone = require "voiceclone"

local function pack(...) return { n = select("#", ...), ... } end

-- A key with a character each escaping changes: every form is its own.
local KEY = [[vc-TEST/key+5&6"7<8>'9]]

local function forms_by_name()
  local by = {}
  for _, form in ipairs(watch.forms(KEY)) do by[form.name] = form.text end
  return by
end

describe("the secret watch", function()
  it("knows six forms of a key, each different for this one", function()
    local by = forms_by_name()
    assert.same({
      ["raw"] = KEY,
      ["JSON-escaped"] = [[vc-TEST/key+5&6\"7<8>'9]],
      ["JSON-escaped (\\/)"] = [[vc-TEST\/key+5&6\"7<8>'9]],
      ["URL-encoded"] = "vc-TEST%2Fkey%2B5%266%227%3C8%3E%279",
      ["URL-encoded (lowercase hex)"] = "vc-TEST%2fkey%2b5%266%227%3c8%3e%279",
      ["HTML-escaped"] = "vc-TEST/key+5&amp;6&quot;7&lt;8&gt;&#39;9",
    }, by)
    assert.equal(6, #watch.forms(KEY))
  end)

  it("reports the key in each form, after a NUL, nested in tables and in what tostring shows", function()
    for name, text in pairs(forms_by_name()) do
      local w = watch.new { keys = { KEY } }
      w:scan("an answer quoting \0" .. text .. " back", "a string")
      assert.equal(1, #w.leaks, name)
      assert.equal(name, w.leaks[1].form)
      w = watch.new { keys = { KEY } }
      w:scan({ ok = 1, deep = { { message = "x" .. text } } }, "a table")
      w:scan({ [text] = true }, "a table's key")
      local object = setmetatable({}, { __name = "voiceclone.Error",
                                        __tostring = function() return text end })
      w:scan(object, "an error")
      assert.equal(3, #w.leaks, name)
    end
    local w = watch.new { keys = { KEY } }
    w:scan({ "nothing", 42, true, { "here" } }, "clean")
    w:output("clean output", "clean")
    assert.same({}, w.leaks)
    assert.is_true(w.counts.strings > 0)
  end)

  it("reports the leaks, and gaps, without ever showing the key", function()
    local w = watch.new { keys = { KEY } }
    for _, form in ipairs(watch.forms(KEY)) do w:output("said " .. form.text, "an output") end
    w:add_key("b", "a one-letter key")
    local report = w:take_report()
    assert.is_string(report)
    for _, form in ipairs(watch.forms(KEY)) do
      assert.is_nil(report:find(form.text, 1, true), form.name)
      assert.truthy(report:find("the " .. form.name .. " key", 1, true), form.name)
    end
    assert.truthy(report:find("too short to recognise", 1, true))
    assert.is_nil(w:take_report())   -- once reported, gone
  end)

  describe("wrapping a function", function()
    it("scans what it returns, passing every result on, nils and their count kept", function()
      local w = watch.new { keys = { KEY } }
      local f = w:wrap(function(...) return nil, { message = "m " .. KEY }, nil, select("#", ...) end, "f()")
      local r = pack(f(nil, nil))
      assert.equal(4, r.n)
      assert.is_nil(r[1])
      assert.equal("m " .. KEY, r[2].message)
      assert.is_nil(r[3])
      assert.equal(2, r[4])
      assert.equal(1, #w.leaks)
      assert.truthy(w.leaks[1].where:find("f()", 1, true))
      assert.equal(0, select("#", w:wrap(function() end, "g()")()))
    end)

    it("rethrows the error it scans as the same value", function()
      local w = watch.new { keys = { KEY } }
      local e = { message = KEY }
      local ok, got = pcall(w:wrap(function() error(e) end, "raises()"))
      assert.is_false(ok)
      assert.equal(e, got)
      ok, got = pcall(w:wrap(function() error("plain " .. KEY, 0) end, "raises()"))
      assert.equal("plain " .. KEY, got)
      assert.equal(2, #w.leaks)
    end)

    it("leaves an error's position at the caller, as error(msg, 2) and (msg, 3) put it", function()
      local w = watch.new()
      local function level2() error("bad argument", 2) end
      local function check() error("bad option", 3) end
      local function level3() check() end
      local wrapped2, wrapped3 = w:wrap(level2, "level2()"), w:wrap(level3, "level3()")
      local _, plain = pcall(function() level2() end)
      local _, through = pcall(function() wrapped2() end)
      assert.equal(plain:gsub(":%d+:", ":N:"), through:gsub(":%d+:", ":N:"))
      assert.truthy(through:find("^spec/secret_watch_spec%.lua:%d+: bad argument$"), through)
      _, through = pcall(function() wrapped3() end)
      assert.truthy(through:find("^spec/secret_watch_spec%.lua:%d+: bad option$"), through)
    end)

    it("leaves a C function's argument errors naming it", function()
      local w = watch.new()
      local rep = w:wrap(string.rep, "string.rep()", "rep")
      -- (not in a tail call: 5.4 then gives a C function's error its caller's position)
      local _, plain = pcall(function() local r = string.rep({}, 1) return r end)
      local _, through = pcall(function() local r = rep({}, 1) return r end)
      assert.equal((plain:gsub(":%d+:", ":N:")), (through:gsub(":%d+:", ":N:")))
      assert.truthy(through:find("bad argument #1 to 'rep'", 1, true), through)
    end)

    it("lets what it wraps yield, and resumes it with what it is given", function()
      local w = watch.new { keys = { KEY } }
      local f = w:wrap(function(a)
        local b = coroutine.yield(a + 1)
        local c = coroutine.yield(b + 1)
        return c, KEY
      end, "yields()")
      local co = coroutine.create(f)
      assert.same({ true, 2 }, { coroutine.resume(co, 1) })
      assert.same({ true, 11 }, { coroutine.resume(co, 10) })
      assert.same({ true, 100, KEY }, { coroutine.resume(co, 100) })
      assert.equal("dead", coroutine.status(co))
      assert.equal(1, #w.leaks)
      -- and an error inside a coroutine is still the same value
      local e = {}
      co = coroutine.create(w:wrap(function() coroutine.yield() error(e) end, "raises()"))
      coroutine.resume(co)
      assert.same({ false, e }, { coroutine.resume(co) })
    end)
  end)

  describe("in this run", function()
    local active = watch.active
    local CANARY = "vc-CANARY/key+0&1"   -- not a secret: shown nowhere, as the sinks are swapped

    it("is installed, watching the suite's key and the API", function()
      assert.is_table(active, "the secret watch is not installed: .busted's helper is missing")
      assert.truthy(active.keys[helpers.SECRET_KEY])
      assert.equal(6, #watch.forms(helpers.SECRET_KEY))   -- every form of the suite's key differs
      assert.is_true(watch.is_wrapper(voiceclone.new))
      assert.is_true(watch.is_wrapper(voiceclone.job_from_callback))
      local Client = require("voiceclone.core").Client
      for _, method in ipairs { "get_job", "create_job", "synthesize", "spawn", "run", "close" } do
        assert.is_true(watch.is_wrapper(Client[method]), method)
      end
      assert.is_true(watch.is_wrapper(require("voiceclone.core").Job.wait))
      assert.is_true(watch.is_wrapper(debug.getregistry()["voiceclone.Request"].__index.finish))
      assert.is_true(watch.is_wrapper(require("voiceclone.workflow").train_then_synthesize))
    end)

    it("catches a key printed, written, output by a command, in a file read, or returned", function()
      local raw, swapped = watch.raw, {}
      for _, name in ipairs { "print", "write", "file_write" } do swapped[name] = raw[name] end
      finally(function()
        for name, f in pairs(swapped) do raw[name] = f end
        active:remove_key(CANARY)
      end)
      raw.print, raw.write = function() end, function() return io.stdout end
      raw.file_write = function(f, ...)
        if f == io.stdout or f == io.stderr then return f end
        return swapped.file_write(f, ...)
      end
      active:add_key(CANARY, "the self-test's canary")
      local file = helpers.tmpname()
      local f = assert(io.open(file, "w"))
      f:write("a log line with ", CANARY, "\n")   -- a file: no output of its own
      f:close()

      print("print", CANARY)
      io.write("io.write ", CANARY)
      io.stdout:write("io.stdout:write ", CANARY)
      io.stderr:write("io.stderr:write ", CANARY)
      helpers.read_command("printf '%s' " .. helpers.quote(CANARY))
      helpers.run("printf '%s' " .. helpers.quote(CANARY))
      watch.scan_file(file, "a log scanned")
      helpers.read_file(file)
      os.remove(file)
      voiceclone.error("invalid", "the message " .. CANARY)

      local found = {}
      for _, leak in ipairs(active.leaks) do
        if leak.context == active.context then found[#found + 1] = leak.where end
      end
      local reported = active.reported
      local report = active:take_report(active.context)
      active.reported = reported   -- (the canary is no leak of the run's)
      assert.is_string(report)
      assert.is_nil(report:find(CANARY, 1, true))
      for _, where in ipairs { "print()", "io.write()", "io.stdout:write()", "io.stderr:write()",
                               "the output of printf", "the output of env -u LD_PRELOAD",
                               "a log scanned", "the file " .. file, "voiceclone.error()" } do
        local seen = false
        for _, w in ipairs(found) do seen = seen or w:find(where, 1, true) == 1 end
        assert.is_true(seen, where .. " was not caught; caught: " .. table.concat(found, "; "))
      end
    end)
  end)
end)
