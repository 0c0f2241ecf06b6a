-- voiceclone.workflow.train_then_synthesize against a real sandbox: a model
-- trained once and reused after, lines spoken several at once, a failed line
-- that loses no other, downloads; what went over the wire checked in the
-- sandbox's request log.
local helpers = require "support.helpers"
local workflow = require "voiceclone.workflow"

local function is_wav(data)
  return data ~= nil and data:sub(1, 4) == "RIFF" and data:sub(9, 12) == "WAVE" and #data > 1000
end

-- The requests' actions in order, and the CreateJobs of a type.
local function actions(requests)
  local list = {}
  for i, r in ipairs(requests) do list[i] = r.json and r.json.action end
  return list
end

local function creates(requests, kind)
  local list = {}
  for _, r in ipairs(requests) do
    if r.json and r.json.action == "CreateJob" then
      local vc = r.json.createJobRequest.outputs[1].smartContentDescriptor.voiceCloning
      if vc.type == kind then list[#list + 1] = r end
    end
  end
  return list
end

local function first(requests, action)
  for _, r in ipairs(requests) do
    if r.json and r.json.action == action then return r end
  end
end

local function ls(dir)
  local names, p = {}, io.popen("ls -A '" .. dir .. "'")
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

describe("workflow.train_then_synthesize", function()
  local sandbox, client, sample

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    client = helpers.client(sandbox, { repositories = sandbox.url .. "/repos/{contentId}/{path}" })
    helpers.run("mkdir -p " .. sandbox.data .. "/repos/samples")
    helpers.make_recording(sandbox.data .. "/repos/samples/me.wav", "This is a sample of my voice.", 80)
    sample = sandbox.url .. "/repos/samples/me.wav"
  end)
  lazy_teardown(function() sandbox.stop() end)

  local function lines(n, prefix)
    local list = {}
    for i = 1, n do list[i] = { id = ("%s%d"):format(prefix or "line", i), text = "Line number " .. i } end
    return list
  end

  it("trains once, then reuses the model of that name without training again", function()
    local events = {}
    local before = helpers.last_seq(sandbox)
    local results, summary = workflow.train_then_synthesize(client, {
      sample = sample, model = "spec_voice", epochs = 3, lines = lines(2), content_id = "spoken",
      destination = "/first", poll_interval = 0.05,
      on_progress = function(e) events[#events + 1] = e.type end,
    })
    assert(results, summary)
    assert.is_true(summary.trained)
    assert.equal("spec_voice", summary.model)
    assert.equal("COMPLETED", summary.training_job:status())
    assert.same({ total = 2, completed = 2, failed = 0 },
                { total = summary.total, completed = summary.completed, failed = summary.failed })
    for i, r in ipairs(results) do
      assert.equal("line" .. i, r.id)
      assert.equal("Line number " .. i, r.text)
      assert.equal("COMPLETED", r.state)
      assert.is_nil(r.error)
      assert.equal(r.job.id, r.job_id)
      assert.matches("^first/.*%.wav$", r.path)
      assert.is_nil(r.file)
      assert.is_true(is_wav(helpers.read_file(sandbox.data .. "/repos/spoken/" .. r.path)))
      -- spoken in the trained voice
      assert.equal("spec_voice", r.job.outputs[1].smartContentDescriptor.voiceCloning.modelName)
    end
    local wire = helpers.requests(sandbox, before)
    assert.equal("ListModels", wire[1].json.action)
    assert.equal("/release/music_model", wire[1].path)
    local trainings = creates(wire, 2)
    assert.equal(1, #trainings)
    local request = trainings[1].json.createJobRequest
    assert.same({ url = sample }, request.inputs[1])
    assert.same({ type = 2, modelName = "spec_voice", totalEpoch = 3 },
                request.outputs[1].smartContentDescriptor.voiceCloning)
    assert.equal(2, #creates(wire, 1))
    assert.equal("training", events[1])
    assert.truthy(table.concat(events, " "):find("trained line", 1, true))

    before = helpers.last_seq(sandbox)
    local again, summary2 = workflow.train_then_synthesize(client, {
      sample = sample, model = "spec_voice", lines = lines(1), content_id = "spoken",
      poll_interval = 0.05,
    })
    assert(again, summary2)
    assert.is_false(summary2.trained)
    assert.is_nil(summary2.training_job)
    assert.equal("COMPLETED", again[1].state)
    wire = helpers.requests(sandbox, before)
    assert.equal("ListModels", wire[1].json.action)
    assert.equal(0, #creates(wire, 2))                -- no second training on the wire
    assert.equal(1, #creates(wire, 1))
  end)

  it("needs no sample when the model exists, and never lists or trains 'default'", function()
    local before = helpers.last_seq(sandbox)
    local results, summary = workflow.train_then_synthesize(client, {
      model = "default", lines = lines(1), content_id = "spoken", poll_interval = 0.05,
    })
    assert(results, summary)
    assert.is_false(summary.trained)
    assert.equal(1, summary.completed)
    local wire = helpers.requests(sandbox, before)
    assert.is_nil(first(wire, "ListModels"))
    assert.equal(0, #creates(wire, 2))
  end)

  it("speaks the lines concurrently: every CreateJob before the first line is done", function()
    local before = helpers.last_seq(sandbox)
    local results, summary = workflow.train_then_synthesize(client, {
      model = "default", lines = lines(5), content_id = "spoken", poll_interval = 0.05,
    })
    assert(results, summary)
    assert.equal(5, summary.completed)
    local wire = helpers.requests(sandbox, before)
    local speak = creates(wire, 1)
    assert.equal(5, #speak)
    local first_poll = first(wire, "GetJob")
    for _, r in ipairs(speak) do assert.is_true(r.seq < first_poll.seq) end
    -- and on the service's clock: all were created before any completed
    local last_created, first_completed = 0, math.huge
    for _, r in ipairs(results) do
      last_created = math.max(last_created, tonumber(r.job.timing.createdAt))
      first_completed = math.min(first_completed, tonumber(r.job.timing.completedAt))
    end
    assert.is_true(last_created < first_completed)
  end)

  it("keeps to `concurrency`: one at a time speaks line after line", function()
    local before = helpers.last_seq(sandbox)
    local results = assert(workflow.train_then_synthesize(client, {
      model = "default", lines = lines(3), content_id = "spoken", concurrency = 1,
      poll_interval = 0.05,
    }))
    local wire = helpers.requests(sandbox, before)
    local list = actions(wire)
    assert.equal("CreateJob", list[1])
    assert.equal(3, #creates(wire, 1))
    for i = 2, 3 do
      -- line i was created only after line i-1 was seen COMPLETED
      assert.is_true(tonumber(results[i].job.timing.createdAt)
                     >= tonumber(results[i - 1].job.timing.completedAt))
    end
  end)

  it("gives a failed line its error and still speaks the others", function()
    local list = lines(3)
    list[2].text = ("x"):rep(513)
    local failures = {}
    local results, summary = workflow.train_then_synthesize(client, {
      model = "spec_voice", sample = sample, lines = list, content_id = "spoken",
      poll_interval = 0.05,
      on_progress = function(e) if e.type == "failed" then failures[#failures + 1] = e.line.id end end,
    })
    assert(results, summary)
    assert.equal(2, summary.completed)
    assert.equal(1, summary.failed)
    assert.equal("invalid", results[2].error.kind)
    assert.equal("text", results[2].error.field)
    assert.is_nil(results[2].job_id)
    assert.is_nil(results[2].state)
    assert.same({ "line2" }, failures)
    for _, i in ipairs { 1, 3 } do
      assert.is_nil(results[i].error)
      assert.equal("COMPLETED", results[i].state)
      assert.is_string(results[i].path)
    end
  end)

  it("downloads every line's audio into the directory as <id>.wav, whole", function()
    local dir = helpers.tmpname() .. "/nested"            -- made when missing
    local seen = {}
    local results, summary = workflow.train_then_synthesize(client, {
      model = "spec_voice", sample = sample, content_id = "spoken", destination = "/dl",
      download = dir, poll_interval = 0.05,
      lines = { { id = "intro", text = "Hello there" }, { id = "outro-2", text = "Goodbye now" },
                { id = 7, text = "Seven" } },
      on_progress = function(e) if e.type == "downloaded" then seen[#seen + 1] = e.file end end,
    })
    assert(results, summary)
    assert.equal(3, summary.completed)
    assert.same({ "7.wav", "intro.wav", "outro-2.wav" }, ls(dir))   -- no partial files left
    assert.equal(3, #seen)
    for _, r in ipairs(results) do
      assert.equal(("%s/%s.wav"):format(dir, r.id), r.file)
      local data = helpers.read_file(r.file)
      assert.is_true(is_wav(data))
      assert.equal(helpers.read_file(sandbox.data .. "/repos/spoken/" .. r.path), data)
    end
    helpers.run("rm -rf '" .. dir .. "'")
  end)

  it("inside a task, waits for its lines by yielding: other tasks go on", function()
    local ticks, results, summary = 0, nil, nil
    local done = false
    client:spawn(function()
      results, summary = workflow.train_then_synthesize(client, {
        model = "spec_voice", lines = lines(3), content_id = "spoken", poll_interval = 0.05,
      })
      done = true
    end)
    client:spawn(function()
      while not done do
        ticks = ticks + 1
        client:sleep(0.01)
      end
    end)
    assert(client:run(60))
    assert(results, summary)
    assert.equal(3, summary.completed)
    assert.is_true(ticks > 5)
  end)

  it("returns nil and the error when training fails", function()
    local results, err = workflow.train_then_synthesize(client, {
      model = "never_trained", sample = sandbox.url .. "/repos/samples/missing.wav",
      lines = lines(1), content_id = "spoken", poll_interval = 0.05,
    })
    assert.is_nil(results)
    assert.equal("job", err.kind)
    assert.equal("ERROR", err.job:status())
  end)

  it("raises for wrong types", function()
    local ok_options = { model = "default", lines = {}, content_id = "r" }
    local function with(key, value)
      local o = {}
      for k, v in pairs(ok_options) do o[k] = v end
      o[key] = value
      return o
    end
    assert.has_error(function() workflow.train_then_synthesize({}, ok_options) end)
    assert.has_error(function() workflow.train_then_synthesize(client, "x") end)
    assert.has_error(function() workflow.train_then_synthesize(client, with("lines", "x")) end)
    assert.has_error(function() workflow.train_then_synthesize(client, with("lines", { "x" })) end)
    assert.has_error(function() workflow.train_then_synthesize(client, with("lines", { { text = 5 } })) end)
    assert.has_error(function()
      workflow.train_then_synthesize(client, with("lines", { { text = "a", id = {} } }))
    end)
    assert.has_error(function() workflow.train_then_synthesize(client, with("sample", 5)) end)
    assert.has_error(function() workflow.train_then_synthesize(client, with("on_progress", "x")) end)
    assert.has_error(function() workflow.train_then_synthesize(client, with("concurrency", "2")) end)
  end)

  it("gives an 'invalid' error naming the option for bad values, sending nothing", function()
    local function invalid_field(options)
      local before = helpers.last_seq(sandbox)
      local results, err = workflow.train_then_synthesize(client, options)
      assert.is_nil(results)
      assert.equal("invalid", err.kind)
      local wire = helpers.requests(sandbox, before)
      for _, r in ipairs(wire) do assert.equal("ListModels", r.json.action) end
      return err.field
    end
    local l = { { text = "hi" } }
    assert.equal("model", invalid_field { lines = l, content_id = "r" })
    assert.equal("content_id", invalid_field { model = "default", lines = l })
    assert.equal("lines", invalid_field { model = "default", content_id = "r" })
    assert.equal("contentId", invalid_field { model = "default", lines = l, contentId = "r" })
    assert.equal("concurrency", invalid_field { model = "default", lines = l, content_id = "r",
                                                concurrency = 0 })
    assert.equal("lines[1].text", invalid_field { model = "default", content_id = "r", lines = { {} } })
    assert.equal("lines[2].id", invalid_field { model = "default", content_id = "r", lines = {
                                                  { id = "a", text = "1" }, { id = "a", text = "2" } } })
    assert.equal("lines[1].id", invalid_field { model = "default", content_id = "r", download = "/tmp",
                                                lines = { { id = "../evil", text = "1" } } })
    assert.equal("lines", invalid_field { model = "default", content_id = "r",
                                          lines = { { text = "1" }, [3] = { text = "3" } } })
    -- a model that does not exist needs a sample
    assert.equal("sample", invalid_field { model = "nobody_trained_me", content_id = "r", lines = l })
    -- the core's own rules, in the workflow's terms
    assert.equal("model", invalid_field { model = "bad name!", sample = sample, content_id = "r", lines = l })
    assert.equal("sample.path", invalid_field { model = "new_one", sample = { contentId = "samples" },
                                                content_id = "r", lines = l })
    assert.equal("epochs", invalid_field { model = "new_one", sample = sample, epochs = 99,
                                           content_id = "r", lines = l })
    -- downloads need the client's repositories option
    local bare = helpers.client(sandbox)
    local results, err = workflow.train_then_synthesize(bare, { model = "default", content_id = "r",
                                                                lines = l, download = "/tmp" })
    assert.is_nil(results)
    assert.equal("repositories", err.field)
    bare:close()
  end)

  it("raises again an error raised by on_progress, once the lines in flight are done", function()
    assert.has_error(function()
      workflow.train_then_synthesize(client, {
        model = "default", lines = lines(2), content_id = "spoken", poll_interval = 0.05,
        on_progress = function(e) if e.type == "line" then error("boom") end end,
      })
    end, "boom")
  end)
end)
