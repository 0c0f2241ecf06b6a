-- Tasks (voiceclone/tasks.lua and the C core's yielding calls): inside
-- client:spawn every API call gives way instead of blocking, with the same
-- results and errors as outside; step() never blocks; run() drives tasks to
-- the end; a failing task stops no other. Against a real sandbox, with what
-- went over the wire checked in its request log.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"
local socket = require "socket"
local compat = require "voiceclone.compat"

local ID, KEY = helpers.SECRET_ID, helpers.SECRET_KEY

-- The API requests `fn` made, from the sandbox's log; then fn's results.
local function on_the_wire(sandbox, fn)
  local before = helpers.last_seq(sandbox)
  local results = compat.pack(fn())
  return helpers.requests(sandbox, before), compat.unpack(results, 1, results.n)
end

-- Runs fn(...) as a task of client and drives it to its end; returns what
-- fn returned. A task making an API call gives way there: after the first
-- step it is still unfinished.
local function in_task(client, fn, ...)
  local task = client:spawn(fn, ...)
  assert.is_false(task.done)                        -- nothing runs before a step
  assert.equal(1, client:step())
  assert.is_false(task.done, "the task did not give way at its API call")
  local ok, failed = client:run(60)
  assert(ok, failed and (failed.message or failed[1] and failed[1].traceback))
  assert.is_true(task.done and task.ok)
  return compat.unpack(task.results, 1, task.results.n)
end

local function copy(value)
  if type(value) ~= "table" then return value end
  local t = {}
  for k, v in pairs(value) do t[k] = copy(v) end
  return t
end

-- A job's data without what differs between two jobs made alike.
local function shape(job)
  local data = copy(job:totable())
  data.id, data.timing = nil, nil
  return data
end

-- The request's JSON without what differs between two calls made alike.
local function request_of(request)
  local json = request.json
  json.secretKey = nil   -- masked by the sandbox anyway
  return json
end

local function by_id(jobs)
  local map = {}
  for _, job in ipairs(jobs) do map[job.id] = job:totable() end
  return map
end

local function model_list(models)
  local list = {}
  for i, model in ipairs(models) do list[i] = { name = model.name, createdAt = model.createdAt } end
  return list
end


local in_a_child, brief = helpers.in_a_child, helpers.brief

-- The message fn raised with (what: the call, for when it does not raise).
local function pcall_message(fn, what)
  local ok, err = pcall(fn)
  assert.is_false(ok, (what or "the call") .. " did not raise")
  return tostring(err)
end

describe("a task", function()
  local sandbox, client
  local slow          -- a sandbox answering each request 300 ms after it came

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    slow = helpers.start_sandbox { "--latency", "300" }
    helpers.run("mkdir -p " .. sandbox.data .. "/repos/samples")
    helpers.make_recording(sandbox.data .. "/repos/samples/x.wav", "A sample of a voice to clone.", 70)
  end)
  lazy_teardown(function()
    sandbox.stop()
    slow.stop()
  end)

  before_each(function() client = helpers.client(sandbox) end)
  after_each(function() client:close() end)

  describe("gets from every call the same result as a blocking call", function()
    local function request(custom)
      return {
        inputs = { { sourceData = "same either way" } },
        outputs = { { contentId = "repo", destination = "/same", inputSelectors = { 0 },
                      smartContentDescriptor = { outputPrefix = "s_",
                                                 voiceCloning = { type = 1, modelName = "default" } } } },
        customId = custom,
      }
    end

    it("from create_job, sending the same request", function()
      local outside_wire, outside = on_the_wire(sandbox, function()
        return assert(client:create_job(request("create-same")))
      end)
      local inside_wire, inside, err = on_the_wire(sandbox, function()
        return in_task(client, function() return client:create_job(request("create-same")) end)
      end)
      assert.is_nil(err)
      assert.equal("voiceclone.Job", getmetatable(inside).__name)
      assert.not_equal(outside.id, inside.id)
      assert.same(shape(outside), shape(inside))
      assert.equal(1, #outside_wire)
      assert.equal(1, #inside_wire)
      assert.equal("CreateJob", inside_wire[1].json.action)
      assert.same(request_of(outside_wire[1]), request_of(inside_wire[1]))
    end)

    it("from get_job, list_jobs and list_models, with their totals", function()
      local custom = "listed-" .. tostring(math.random(1e9))
      local a = assert(client:synthesize { text = "one", content_id = "repo", custom_id = custom })
      assert(client:synthesize { text = "two", content_id = "repo", custom_id = custom })
      assert(a:wait { interval = 0.05 })

      local got = assert(client:get_job(a.id))
      local jobs, total = assert(client:list_jobs(custom))
      local models, model_total = assert(client:list_models(0, 100))
      local wire, got2, jobs2, total2, models2, model_total2 = on_the_wire(sandbox, function()
        return in_task(client, function()
          local job = assert(client:get_job(a.id))
          local list, n = assert(client:list_jobs(custom))
          local ms, mn = assert(client:list_models(0, 100))
          return job, list, n, ms, mn
        end)
      end)
      assert.same(got:totable(), got2:totable())
      assert.equal(2, total)
      assert.equal(total, total2)
      assert.equal(2, #jobs2)
      assert.same(by_id(jobs), by_id(jobs2))
      assert.equal(model_total, model_total2)
      assert.same(model_list(models), model_list(models2))
      assert.same({ "GetJob", "ListJobs", "ListModels" },
                  { wire[1].json.action, wire[2].json.action, wire[3].json.action })
      assert.same({ id = a.id }, wire[1].json.getJobRequest)
      assert.same({ customId = custom }, wire[2].json.listJobsRequest)
      assert.same({ offset = 0, limit = 100 }, wire[3].json.listModelsRequest)
      assert.equal(3, #wire)
    end)

    it("from synthesize and convert, sending the same requests", function()
      local options = {
        synthesize = { text = "Hello from a task", content_id = "repo", destination = "out/",
                       prefix = "t_", custom_id = "syn" },
        convert = { source = { contentId = "samples", path = "x.wav" }, content_id = "repo",
                    destination = "converted/", custom_id = "conv" },
      }
      for _, method in ipairs { "synthesize", "convert" } do
        local outside_wire, outside = on_the_wire(sandbox, function()
          return assert(client[method](client, options[method]))
        end)
        local inside_wire, inside, err = on_the_wire(sandbox, function()
          return in_task(client, function() return client[method](client, options[method]) end)
        end)
        assert.is_nil(err, method)
        assert.same(shape(outside), shape(inside))
        assert.equal(1, #inside_wire)
        assert.same(request_of(outside_wire[1]), request_of(inside_wire[1]))
        -- and both finish alike
        assert(outside:wait { interval = 0.05 })
        local done = in_task(client, function() return inside:wait { interval = 0.05 } end)
        assert.equal(inside, done)
        assert.equal(outside:result().destination, inside:result().destination)
        assert.matches("%.wav$", inside:result().path)
      end
    end)

    it("from train, wait and the models() iterator", function()
      local before = {}
      for model, err in client:models() do
        assert.is_nil(err)
        before[#before + 1] = model.name
      end
      local training, names, updates = in_task(client, function()
        local job = assert(client:train { source = { contentId = "samples", path = "x.wav" },
                                          model = "task_voice", epochs = 3 })
        local seen = {}
        assert(job:wait { interval = 0.05, on_update = function(j) seen[#seen + 1] = j:status() end })
        local list = {}
        -- Lua 5.1 cannot yield from a generic for's iterator (a C-call
        -- boundary there): the README's form for tasks calls it by hand
        local next_model = client:models()
        local model, err = next_model()
        while model ~= nil do
          assert(not err, err and tostring(err))
          list[#list + 1] = model.name
          model, err = next_model()
        end
        return job, list, seen
      end)
      assert.equal("COMPLETED", training:status())
      assert.equal("task_voice", training:result().modelName)
      assert.equal(3, training.outputs[1].smartContentDescriptor.voiceCloning.totalEpoch)
      assert.equal("COMPLETED", updates[#updates])
      local outside = {}
      for model in client:models() do outside[#outside + 1] = model.name end
      assert.same(outside, names)
      assert.equal(#before + 1, #names)
      local found = false
      for _, name in ipairs(names) do found = found or name == "task_voice" end
      assert.is_true(found)
    end)

    it("from job:refresh, job:wait with on_update, and job:result", function()
      local job = assert(client:synthesize { text = "refresh and wait", content_id = "repo",
                                              destination = "w/" })
      local wire, refreshed, status = on_the_wire(sandbox, function()
        return in_task(client, function()
          local same = assert(job:refresh())
          return same, same:status()
        end)
      end)
      assert.equal(job, refreshed)                       -- updated in place
      assert.is_string(status)
      assert.equal(1, #wire)
      assert.equal("GetJob", wire[1].json.action)
      assert.same({ id = job.id }, wire[1].json.getJobRequest)

      local seen, waited_result
      local waited, err = in_task(client, function()
        seen = {}
        local done, e = job:wait { interval = 0.05, on_update = function(j) seen[#seen + 1] = j:status() end }
        waited_result = done and done:result()
        return done, e
      end)
      assert.is_nil(err)
      assert.equal(job, waited)
      assert.equal("COMPLETED", job:status())
      assert.equal("COMPLETED", seen[#seen])
      local outside = assert(client:get_job(job.id))
      assert.same(outside:totable(), job:totable())
      assert.same(outside:result(), waited_result)
      assert.equal("w/" .. waited_result.voiceName, waited_result.path)
    end)
  end)

  describe("gets the same kinds of error as a blocking call", function()
    local server

    lazy_setup(function() server = helpers.start_misbehaving_server() end)
    lazy_teardown(function() server.stop() end)

    local function client_for(endpoint, options)
      local settings = { endpoint = endpoint, secret_id = ID, secret_key = KEY, timeout = 5 }
      for k, v in pairs(options or {}) do settings[k] = v end
      return assert(voiceclone.new(settings))
    end

    -- fn(c) fails the same way outside and inside a task; returns both errors.
    -- The task gives way while its request is out; an "invalid" call sends
    -- nothing, so its task ends within its first step.
    local function both_fail(c, fn)
      local result, outside = fn(c)
      assert.is_nil(result)
      assert.is_table(outside)
      local task = c:spawn(fn, c)
      c:step()
      assert.equal(outside.kind == "invalid", task.done)
      assert.is_true(c:run(30))
      assert.is_true(task.ok)
      local inside = task.results[2]
      assert.is_nil(task.results[1])
      assert.is_table(inside)
      assert.equal(outside.kind, inside.kind)
      for _, field in ipairs { "field", "status", "code", "retryable", "curl_code" } do
        assert.equal(outside[field], inside[field], field)
      end
      assert.equal("voiceclone.Error", getmetatable(inside).__name)
      return outside, inside
    end

    it("invalid, naming the field, with nothing sent", function()
      local before = helpers.last_seq(sandbox)
      local _, err = both_fail(client, function(c) return c:synthesize { text = "x", content_id = "repo",
                                                                        prefix = string.rep("p", 30) } end)
      assert.equal("invalid", err.kind)
      assert.equal("prefix", err.field)
      local _, err2 = both_fail(client, function(c)
        return c:create_job { inputs = { { sourceData = "x" } }, outputs = { { contentId = "r" } },
                              customID = "typo" }
      end)
      assert.equal("invalid", err2.kind)
      assert.equal("customID", err2.field)
      assert.equal(before, helpers.last_seq(sandbox))
      -- nothing to wait for: the task ends within its first step
      local task = client:spawn(function() return client:list_models(0, 101) end)
      assert.equal(0, client:step())
      assert.is_true(task.done)
      assert.equal("limit", task.results[2].field)
    end)

    it("auth 401 for a wrong key", function()
      local wrong = helpers.client(sandbox, { secret_key = "wrong-key-0123456789" })
      finally(function() wrong:close() end)
      local wire, outside, inside = on_the_wire(sandbox, function()
        return both_fail(wrong, function(c) return c:get_job("j-1") end)
      end)
      assert.equal("auth", inside.kind)
      assert.equal(401, inside.status)
      assert.is_false(inside.retryable)
      assert.is_string(inside.request_id)
      assert.not_equal(outside.request_id, inside.request_id)
      assert.equal(2, #wire)
      assert.same(request_of(wire[1]), request_of(wire[2]))
    end)

    it("network when nothing listens", function()
      local c = client_for(("http://127.0.0.1:%d"):format(helpers.closed_port()))
      finally(function() c:close() end)
      local _, err = both_fail(c, function(cl) return cl:list_jobs("c-1") end)
      assert.equal("network", err.kind)
      assert.is_true(err.retryable)
    end)

    it("timeout from a server that never answers", function()
      local c = client_for(server.url_for("hang"), { timeout = 0.5 })
      finally(function() c:close() end)
      local _, err = both_fail(c, function(cl) return cl:get_job("j-1") end)
      assert.equal("timeout", err.kind)
      assert.is_true(err.retryable)
    end)

    it("decode and api from broken answers", function()
      for scenario, kind in pairs { not_json = "decode", truncated = "decode", no_key = "api",
                                    error_object = "api" } do
        local c = client_for(server.url_for(scenario))
        local _, err = both_fail(c, function(cl) return cl:get_job("j-1") end)
        c:close()
        assert.equal(kind, err.kind, scenario)
      end
    end)

    it("job from waiting on a job that ends in ERROR", function()
      local job, err = in_task(client, function()
        local j = assert(client:synthesize { text = "x", content_id = "repo", model = "no_such_model" })
        return j, select(2, j:wait { interval = 0.05 })
      end)
      assert.equal("job", err.kind)
      assert.equal(job, err.job)
      assert.equal("ERROR", job:status())
      assert.truthy(err.message:find("no_such_model", 1, true), err.message)
    end)

    it("timeout from waiting longer than wait's timeout", function()
      local job, err = in_task(client, function()
        local j = assert(client:synthesize { text = "slow", content_id = "repo" })
        return j, select(2, j:wait { timeout = 0.05 })
      end)
      assert.equal("timeout", err.kind)
      assert.equal(job, err.job)
      assert.is_false(job:is_final())
    end)
  end)

  describe("runs alongside many others", function()
    it("300 tasks creating and waiting for a job, over at most max_in_flight connections", function()
      local c = helpers.client(sandbox, { max_in_flight = 8 })
      finally(function() c:close() end)
      local before = helpers.last_seq(sandbox)
      local tasks = {}
      for i = 1, 300 do
        tasks[i] = c:spawn(function(n)
          local job = assert(c:synthesize { text = "task " .. n, content_id = "many",
                                            custom_id = "many-" .. n })
          return assert(job:wait { interval = 0.1, timeout = 120 })
        end, i)
      end

      -- Drive with step() as an outside loop would, reading the request log
      -- as it goes (the sandbox keeps the last 1000 requests only).
      local seen, last = {}, before
      local function collect()
        for _, r in ipairs(helpers.requests(sandbox, last)) do
          assert.equal(last + 1, r.seq, "a request fell out of the sandbox's log")
          seen[#seen + 1], last = r, r.seq
        end
      end
      local counts, deadline, next_collect = {}, socket.gettime() + 120, 0
      repeat
        local n = c:step()
        if n ~= counts[#counts] then counts[#counts + 1] = n end
        if socket.gettime() >= next_collect then
          collect()
          next_collect = socket.gettime() + 0.2
        end
        socket.sleep(math.min(c:timeout() or 0.01, 0.01))
      until n == 0 or socket.gettime() > deadline
      collect()

      assert.equal(0, counts[#counts])
      for i = 2, #counts do assert.is_true(counts[i] < counts[i - 1]) end
      assert.is_true(#counts > 2)                       -- they ended at different times
      for i, task in ipairs(tasks) do
        assert.is_true(task.done and task.ok, task.traceback)
        assert.equal("COMPLETED", task.results[1]:status())
        assert.equal("many-" .. i, task.results[1].customId)
      end

      -- each CreateJob on a connection of its own (libcurl never resends one);
      -- the polls share at most max_in_flight
      local connections, created, ids = {}, {}, {}
      for _, r in ipairs(seen) do
        if r.json.action == "CreateJob" then
          local custom = r.json.createJobRequest.customId
          created[custom] = (created[custom] or 0) + 1
          assert.is_nil(connections[r.connection], "a connection reused for a CreateJob")
          connections[r.connection] = "create"
        end
      end
      local polls = 0
      for _, r in ipairs(seen) do
        if r.json.action ~= "CreateJob" and not connections[r.connection] then
          connections[r.connection] = "poll"
          polls = polls + 1
        end
        assert.is_true(r.json.action ~= "CreateJob" or connections[r.connection] == "create")
      end
      assert.is_true(polls >= 1 and polls <= 8, polls .. " connections for the polls")
      for i = 1, 300 do assert.equal(1, created["many-" .. i], "many-" .. i) end
      for _, task in ipairs(tasks) do ids[task.results[1].id] = true end
      for _, r in ipairs(seen) do
        if r.json.action == "GetJob" then assert.is_true(ids[r.json.getJobRequest.id]) end
      end
    end)
  end)

  describe("with others started together", function()
    it("has its request on the wire with theirs, even on a client with no connection yet", function()
      local before = helpers.last_seq(slow)
      local c = helpers.client(slow, { max_in_flight = 8 })
      finally(function() c:close() end)
      local tasks = {}
      for i = 1, 4 do tasks[i] = c:spawn(function() return c:get_job("j-" .. i) end) end
      -- Step until libcurl waits for four answers, or an answer came first:
      -- then a request waited for another's answer before it was sent.
      local reading, answered
      helpers.wait_for("the requests to be sent", function()
        c:step()
        reading = 0
        for _, what in pairs(c:sockets()) do reading = reading + (what == "r" and 1 or 0) end
        for _, task in ipairs(tasks) do answered = answered or task.done end
        return reading == 4 or answered
      end)
      assert.is_falsy(answered, "an answer came back before every request was sent")
      assert.equal(4, reading)
      assert.is_true(c:run(30))
      local ids, connections, n = {}, {}, 0
      for _, r in ipairs(helpers.requests(slow, before)) do
        ids[#ids + 1] = r.json.getJobRequest.id
        if not connections[r.connection] then n = n + 1 end
        connections[r.connection] = true
      end
      table.sort(ids)
      assert.same({ "j-1", "j-2", "j-3", "j-4" }, ids)
      assert.equal(4, n)                               -- HTTP/1.1: one connection each
      for _, task in ipairs(tasks) do assert.equal(404, task.results[2].status) end
    end)
  end)

  describe("waiting on a server that never answers", function()
    local server

    lazy_setup(function() server = helpers.start_misbehaving_server() end)
    lazy_teardown(function() server.stop() end)

    it("leaves step() returning at once, sockets() and timeout() to wait on, until it times out", function()
      local c = assert(voiceclone.new { endpoint = server.url_for("hang"), secret_id = ID,
                                        secret_key = KEY, timeout = 2 })
      finally(function() c:close() end)
      assert.is_nil(c:timeout())                     -- nothing to do yet
      assert.same({}, c:sockets())
      local task = c:spawn(function() return c:get_job("j-1") end)
      assert.equal(0, c:timeout())                   -- a task is ready to start
      -- until the request is sent and libcurl waits for the answer
      local waiting
      for _ = 1, 200 do
        assert.equal(1, c:step())
        for _, what in pairs(c:sockets()) do waiting = waiting or what == "r" end
        if waiting then break end
        socket.sleep(0.01)
      end
      assert.is_true(waiting, "libcurl never waited for an answer")
      for _ = 1, 5 do
        assert.equal(1, c:step())
        assert.is_false(task.done)
        assert.is_not_nil(next(c:sockets()))
        local fd, what = next(c:sockets())
        assert.equal("integer", compat.math_type(fd))   -- math.type on 5.3+
        assert.is_truthy(({ r = true, w = true, rw = true })[what])
        local wait = c:timeout()
        assert.is_number(wait)
        assert.is_true(wait >= 0 and wait <= 2)
      end
      assert.is_true(c:run())
      assert.is_true(task.done and task.ok)
      assert.is_nil(task.results[1])
      assert.equal("timeout", task.results[2].kind)
      assert.equal(0, c:step())
      assert.same({}, c:sockets())
    end)
  end)

  describe("that raises", function()
    it("stops no other task, and run() returns it among the failed", function()
      local boom = setmetatable({}, { __tostring = function() return "boom!" end })
      local fine = {}
      local failing = client:spawn(function()
        assert(client:list_models())
        error(boom)
      end)
      for i = 1, 3 do
        fine[i] = client:spawn(function()
          local models, total = assert(client:list_models())
          return i, total, #models
        end)
      end
      local broken_early = client:spawn(function() error("at once", 0) end)
      local ok, failed = client:run(30)
      assert.is_false(ok)
      assert.equal(2, #failed)
      local set = { [failed[1]] = true, [failed[2]] = true }
      assert.is_true(set[failing] and set[broken_early])
      assert.equal(boom, failing.error)
      assert.equal("at once", broken_early.error)
      assert.is_false(failing.ok)
      assert.is_true(failing.done)
      assert.is_string(failing.traceback)
      assert.truthy(failing.traceback:find("boom!", 1, true), failing.traceback)
      assert.matches("failed", tostring(failing))
      for i, task in ipairs(fine) do
        assert.is_true(task.done and task.ok)
        assert.equal(i, task.results[1])
        assert.equal(3, task.results.n)
      end
      -- reported once: the next run has nothing to report
      assert.is_true(client:run(1))
    end)

    it("goes to on_error(err, task) when set, and run() returns true", function()
      local got = {}
      client:on_error(function(err, task) got[#got + 1] = { err = err, task = task } end)
      local failing = client:spawn(function()
        assert(client:list_models())
        error({ code = 42 })
      end)
      local other = client:spawn(function() return (assert(client:list_models())) end)
      assert.is_true(client:run(30))
      assert.equal(1, #got)
      assert.equal(failing, got[1].task)
      assert.equal(failing.error, got[1].err)
      assert.equal(42, got[1].err.code)
      assert.is_string(got[1].task.traceback)
      assert.is_true(other.ok)
      -- cleared again: run() reports failures itself
      client:on_error(nil)
      local again = client:spawn(function() error("again", 0) end)
      local ok, failed = client:run(30)
      assert.is_false(ok)
      assert.same({ again }, failed)
      assert.equal(1, #got)
    end)
  end)

  describe("still sleeping when run(timeout) ends", function()
    it("makes it return nil and a 'timeout' error, and a later run() finishes it", function()
      local task = client:spawn(function()
        client:sleep(0.3)
        return "woke"
      end)
      local ok, err = client:run(0.05)
      assert.is_nil(ok)
      assert.equal("timeout", err.kind)
      assert.is_false(task.done)
      assert.is_true(client:run())
      assert.is_true(task.done)
      assert.equal("woke", task.results[1])
    end)
  end)

  describe("giving way", function()
    it("with client:sleep, lets the other tasks go on meanwhile", function()
      local order = {}
      local function worker(name)
        for i = 1, 3 do
          order[#order + 1] = name .. i
          client:sleep(0.02)
        end
      end
      client:spawn(worker, "a")
      client:spawn(worker, "b")
      assert.is_true(client:run(10))
      assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, order)
    end)

    it("with a plain coroutine.yield(), goes on at the next step, after the others", function()
      local order = {}
      for _, name in ipairs { "a", "b" } do
        client:spawn(function()
          for i = 1, 2 do
            order[#order + 1] = name .. i
            coroutine.yield()
          end
        end)
      end
      assert.equal(2, client:step())
      assert.same({ "a1", "b1" }, order)
      assert.equal(2, client:step())
      assert.equal(0, client:step())
      assert.same({ "a1", "b1", "a2", "b2" }, order)
    end)
  end)

  describe("beside blocking calls", function()
    it("still lets the main thread make blocking calls between steps", function()
      local c = helpers.client(sandbox, { max_in_flight = 1 })
      finally(function() c:close() end)
      local job = assert(c:synthesize { text = "between steps", content_id = "repo" })
      local before = helpers.last_seq(sandbox)
      local tasks = {}
      for i = 1, 3 do tasks[i] = c:spawn(function() return assert(c:get_job(job.id)).id end) end
      assert.equal(3, c:step())                        -- one on the wire, two waiting for room
      -- blocks until the task's request made room for it, and resumes no task
      local got = assert(c:get_job(job.id))
      assert.equal(job.id, got.id)
      for _, task in ipairs(tasks) do assert.is_false(task.done) end
      assert.is_true(c:run(30))
      for _, task in ipairs(tasks) do assert.equal(job.id, task.results[1]) end
      local wire = helpers.requests(sandbox, before)
      assert.equal(4, #wire)
      for _, r in ipairs(wire) do assert.same({ id = job.id }, r.json.getJobRequest) end
    end)

    it("leaves client:sleep outside any task a plain pause, even in a coroutine of one's own", function()
      local started = socket.gettime()
      assert.is_nil(client:sleep(0.05))
      assert.is_true(socket.gettime() - started >= 0.045)
      local co = coroutine.wrap(function()
        client:sleep(0.01)
        return "slept without yielding"
      end)
      assert.equal("slept without yielding", co())
    end)
  end)

  describe("whose client is closed", function()
    it("from the main thread, makes step() and run() raise 'closed', without crashing", function()
      local c = helpers.client(slow)
      local calling = c:spawn(function() return c:get_job("j-1") end)
      local sleeping = c:spawn(function() c:sleep(5) end)
      assert.equal(2, c:step())
      c:close()
      assert.matches("closed", pcall_message(function() c:step() end))
      assert.matches("closed", pcall_message(function() c:run(1) end))
      assert.matches("closed", pcall_message(function() c:sockets() end))
      assert.is_false(calling.done)
      assert.is_false(sleeping.done)
      c:close()
      collectgarbage()
      collectgarbage()
    end)

    it("refuses new tasks, and timeout() raises, as every use of a closed client does", function()
      local c = helpers.client(sandbox)
      local yielding = c:spawn(function() coroutine.yield() end)
      assert.equal(1, c:step())                        -- it waits for its turn at the next step
      c:close()
      assert.matches("closed", pcall_message(function() c:spawn(function() end) end,
                                             "spawn on a closed client"))
      assert.matches("closed", pcall_message(function() c:timeout() end, "timeout() of a closed client"))
      assert.matches("closed", pcall_message(function() c:step() end))
      assert.is_false(yielding.done)
    end)

    it("from inside a task, fails the tasks waiting on it with 'closed', without crashing", function()
      -- In a process of its own, so that a crash fails this spec only.
      -- Two requests are out at once (a connection already open, so neither
      -- waits for the other's); their answers arrive together, and the task
      -- resumed first closes the client before the other is resumed.
      local output, ok, code = in_a_child([[
        local c = new_client()
        assert(c:list_models())
        local waiting = c:spawn(function() return c:get_job("j-waiting") end)
        local closing = c:spawn(function()
          c:get_job("j-closing")
          c:close()
          return "closed it"
        end)
        local deadline = socket.gettime() + 10
        local reading
        repeat
          c:step()
          reading = 0
          for _, what in pairs(c:sockets()) do reading = reading + (what == "r" and 1 or 0) end
          socket.sleep(0.005)
        until reading == 2 or waiting.done or closing.done or socket.gettime() > deadline
        print("sent together", reading == 2 and not waiting.done and not closing.done)
        socket.sleep(0.6)                              -- both answers are in by now
        print("step", pcall(c.step, c))
        print("closing", closing.done, closing.ok, closing.results and closing.results[1])
        print("waiting", waiting.done, waiting.ok, tostring(waiting.error))
        print("next step", pcall(c.step, c))
      ]], slow.url)
      assert.is_true(ok, ("the process ended with %s:\n%s"):format(tostring(code), brief(output)))
      assert.matches("sent together\ttrue\n", output)
      assert.matches("step\ttrue\t0\n", output)
      assert.matches("closing\ttrue\ttrue\tclosed it\n", output)
      assert.matches("waiting\ttrue\tfalse\t[^\n]*closed", output)
      assert.matches("next step\tfalse\t[^\n]*closed", output)
    end)
  end)

  describe("is collected", function()
    it("once finished: its client keeps no hold on it", function()
      local weak = setmetatable({}, { __mode = "v" })
      weak.task = client:spawn(function() return client:list_models() end)
      assert.is_true(client:run(30))
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak.task)
    end)

    it("unfinished, with its client once the client is unreachable", function()
      local weak = setmetatable({}, { __mode = "v" })
      do
        local c = helpers.client(sandbox)
        weak.client = c
        weak.calling = c:spawn(function() return c:list_models() end)
        weak.sleeping = c:spawn(function() c:sleep(60) end)
        assert.equal(2, c:step())
        assert.equal(2, c:step())
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak.client)
      assert.is_nil(weak.calling)
      assert.is_nil(weak.sleeping)
    end)
  end)

  describe("and its functions", function()
    it("raise for arguments of the wrong type: spawn, on_error, run and sleep", function()
      assert.has_error(function() client:spawn(42) end)
      assert.has_error(function() client:spawn() end)
      assert.has_error(function() client:on_error("handler") end)
      assert.has_error(function() client:run("1") end)
      assert.has_error(function() client:sleep("1") end)
      assert.has_error(function() client:sleep() end)
      client:on_error(nil)                             -- nil clears: no error
      -- inside a task too: the task fails with the argument error
      local task = client:spawn(function() client:sleep({}) end)
      assert.equal(0, client:step())
      assert.is_false(task.ok)
      assert.matches("bad argument #1 to 'sleep'", tostring(task.error))
    end)
  end)
end)

describe("step with a budget", function()
  it("resumes tasks until the budget is spent and leaves the rest, in order, for the next step", function()
    local client = assert(require("voiceclone").new { secret_id = "a", secret_key = KEY,
                                                      endpoint = "http://127.0.0.1:9" })
    local order = {}
    for i = 1, 5 do client:spawn(function() order[#order + 1] = i end) end
    assert.equal(4, client:step(0))      -- a zero budget still resumes one task
    assert.same({ 1 }, order)
    assert.equal(0, client:timeout())    -- the others are due at once
    assert.equal(3, client:step(0))
    assert.same({ 1, 2 }, order)
    assert.equal(0, client:step())       -- no budget: all the rest
    assert.same({ 1, 2, 3, 4, 5 }, order)
    assert.has_error(function() client:step("soon") end)
  end)
end)
