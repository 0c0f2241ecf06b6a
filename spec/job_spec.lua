-- Jobs through their whole life on the sandbox: create, poll, wait, result.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"

local function is_wav(path)
  local data = helpers.read_file(path)
  return data ~= nil and data:sub(1, 4) == "RIFF" and data:sub(9, 12) == "WAVE" and #data > 1000
end

describe("a job", function()
  local sandbox, client

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    client = helpers.client(sandbox)
  end)
  lazy_teardown(function() sandbox.stop() end)

  it("starts SUBMITTED with the fields the API names", function()
    local job = assert(client:synthesize { text = "你好, world", content_id = "repo",
                                            destination = "/lines", prefix = "hi_", custom_id = "c-1" })
    assert.matches("^voiceclone%.Job", tostring(job))
    assert.truthy(tostring(job):find(job.id, 1, true))
    assert.is_string(job.id)
    assert.equal(voiceclone.state.SUBMITTED, job.state)
    assert.equal("SUBMITTED", job:status())
    assert.is_false(job:is_final())
    assert.equal("c-1", job.customId)
    assert.equal("你好, world", job.inputs[1].sourceData)
    assert.same({ 0 }, job.outputs[1].inputSelectors)       -- the service's own value
    assert.equal("repo", job.outputs[1].contentId)
    assert.equal("/lines", job.outputs[1].destination)
    assert.equal("hi_", job.outputs[1].smartContentDescriptor.outputPrefix)
    assert.equal(voiceclone.type.GENERATE, job.outputs[1].smartContentDescriptor.voiceCloning.type)
    assert.equal("default", job.outputs[1].smartContentDescriptor.voiceCloning.modelName)
    assert.is_string(job.timing.createdAt)
    assert.equal("0", job.timing.completedAt)
    assert.is_nil(job:result())
  end)

  it("has read-only fields", function()
    local job = assert(client:synthesize { text = "x", content_id = "repo" })
    assert.has_error(function() job.state = 3 end)
  end)

  it("waits until COMPLETED, reporting each change, and gives its result", function()
    local job = assert(client:synthesize { text = "Hello there", content_id = "repo",
                                            destination = "out/", prefix = "p_" })
    local seen = {}
    local done, err = job:wait { interval = 0.05, on_update = function(j) seen[#seen + 1] = j:status() end }
    assert.is_nil(err)
    assert.equal(job, done)
    assert.equal("COMPLETED", job:status())
    assert.is_true(job:is_final())
    assert.equal("COMPLETED", seen[#seen])
    assert.is_true(#seen >= 1 and #seen <= 2)
    assert.not_equal("0", job.timing.completedAt)

    local result = job:result()
    assert.equal("repo", result.contentId)
    assert.equal("out/", result.destination)
    assert.matches("^p_.*%.wav$", result.voiceName)
    assert.equal("out/" .. result.voiceName, result.path)
    assert.is_true(is_wav(("%s/repos/repo/%s"):format(sandbox.data, result.path)))
  end)

  it("refreshes in place from GetJob", function()
    local job = assert(client:synthesize { text = "refresh me", content_id = "repo" })
    local before = helpers.last_seq(sandbox)
    helpers.wait_for("the job to finish", function()
      assert(job:refresh())
      return job:is_final()
    end)
    assert.equal("COMPLETED", job:status())
    local request = helpers.requests(sandbox, before)[1]
    assert.equal("GetJob", request.json.action)
    assert.equal(job.id, request.json.getJobRequest.id)
  end)

  it("is found again by get_job and, with its siblings, by list_jobs", function()
    local custom = "batch-" .. tostring(os.time()) .. tostring(math.random(1e6))
    local a = assert(client:synthesize { text = "one", content_id = "repo", custom_id = custom })
    local b = assert(client:synthesize { text = "two", content_id = "repo", custom_id = custom })
    local again = assert(client:get_job(a.id))
    assert.equal(a.id, again.id)
    assert.equal("one", again.inputs[1].sourceData)
    local jobs, total = assert(client:list_jobs(custom))
    assert.equal(2, total)
    assert.equal(2, #jobs)
    local ids = { [jobs[1].id] = true, [jobs[2].id] = true }
    assert.is_true(ids[a.id] and ids[b.id])
    local none, zero = assert(client:list_jobs("nobody-uses-this-id"))
    assert.same({}, none)
    assert.equal(0, zero)
  end)

  it("fails to wait with kind 'job' and the job's own reason when it ends in ERROR", function()
    local job = assert(client:synthesize { text = "x", content_id = "repo", model = "no_such_model" })
    local ok, err = job:wait { interval = 0.05 }
    assert.is_nil(ok)
    assert.equal("job", err.kind)
    assert.equal(job, err.job)
    assert.equal("ERROR", err.job:status())
    assert.is_string(job:reason())
    assert.truthy(err.message:find(job:reason(), 1, true))
    assert.truthy(err.message:find("no_such_model", 1, true))
  end)

  it("gives up with kind 'timeout' when the job is not final in time", function()
    local job = assert(client:synthesize { text = "slow", content_id = "repo" })
    local ok, err = job:wait { timeout = 0.01, interval = 0.005 }
    assert.is_nil(ok)
    assert.equal("timeout", err.kind)
    assert.equal(job, err.job)
    assert.is_false(job:is_final())
  end)

  it("checks wait's options", function()
    local job = assert(client:synthesize { text = "x", content_id = "repo" })
    assert.has_error(function() job:wait { timeout = "long" } end)
    local ok, err = job:wait { interval = 0 }
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    assert.equal("interval", err.field)
  end)
end)

describe("a voice model", function()
  local sandbox, client, sample_url

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    client = helpers.client(sandbox)
    helpers.run("mkdir -p " .. sandbox.data .. "/repos/samples")
    helpers.make_recording(sandbox.data .. "/repos/samples/high.wav",
                           "This is a sample of my voice.", 90)
    helpers.make_recording(sandbox.data .. "/repos/samples/low.wav",
                           "And this is somebody else, speaking much lower.", 5)
    sample_url = sandbox.url .. "/repos/samples/high.wav"
  end)
  lazy_teardown(function() sandbox.stop() end)

  it("is trained from a recording, listed, and then speaks and converts", function()
    local training = assert(client:train { url = sample_url, model = "high_voice", epochs = 5 })
    assert.equal(voiceclone.type.TRAIN, training.outputs[1].smartContentDescriptor.voiceCloning.type)
    assert.equal(5, training.outputs[1].smartContentDescriptor.voiceCloning.totalEpoch)
    assert(training:wait { interval = 0.05 })
    assert.equal("high_voice", training:result().modelName)

    local models, total = assert(client:list_models(0, 100))
    assert.equal(1, total)
    assert.equal("high_voice", models[1].name)
    assert.is_string(models[1].createdAt)
    assert.matches("high_voice", tostring(models[1]))

    local spoken = assert(client:synthesize { text = "Now in my voice", model = "high_voice",
                                               content_id = "repo" })
    local plain = assert(client:synthesize { text = "Now in my voice", content_id = "repo" })
    assert(spoken:wait { interval = 0.05 })
    assert(plain:wait { interval = 0.05 })
    local spoken_wav = sandbox.data .. "/repos/repo/" .. spoken:result().path
    assert.is_true(is_wav(spoken_wav))
    -- the trained voice is the sample's: well above the default voice's pitch
    local sample_hz = helpers.pitch_of(sandbox.data .. "/repos/samples/high.wav")
    local spoken_hz = helpers.pitch_of(spoken_wav)
    local plain_hz = helpers.pitch_of(sandbox.data .. "/repos/repo/" .. plain:result().path)
    assert.is_true(math.abs(spoken_hz - sample_hz) < 0.15 * sample_hz)
    assert.is_true(spoken_hz > plain_hz * 1.25)

    local converted = assert(client:convert { source = { contentId = "samples", path = "low.wav" },
                                               model = "high_voice", content_id = "repo" })
    assert.equal("samples", converted.inputs[1].source.contentId)
    assert(converted:wait { interval = 0.05 })
    local converted_wav = sandbox.data .. "/repos/repo/" .. converted:result().path
    assert.is_true(is_wav(converted_wav))
    -- a low voice, converted, comes out at the model's pitch
    assert.is_true(helpers.pitch_of(sandbox.data .. "/repos/samples/low.wav") < 0.7 * sample_hz)
    assert.is_true(math.abs(helpers.pitch_of(converted_wav) - sample_hz) < 0.15 * sample_hz)
  end)

  it("pages through every model with client:models()", function()
    local jobs = {}
    for i = 1, 102 do
      jobs[i] = assert(client:train { source = { contentId = "samples", path = "high.wav" },
                                      model = ("m_%03d"):format(i) })
    end
    for _, job in ipairs(jobs) do assert(job:wait { interval = 0.1, timeout = 120 }) end

    local before = helpers.last_seq(sandbox)
    local names = {}
    for model, err in client:models() do
      assert.is_nil(err)
      names[#names + 1] = model.name
    end
    assert.equal(103, #names)                      -- high_voice and m_001..m_102
    local pages = helpers.requests(sandbox, before)
    assert.equal(2, #pages)
    assert.same({ offset = 0, limit = 100 }, pages[1].json.listModelsRequest)
    assert.same({ offset = 100, limit = 100 }, pages[2].json.listModelsRequest)
  end)

  it("reports a failed page through the iterator", function()
    local broken = helpers.client(sandbox, { secret_key = "wrong-key-0123456789" })
    local results = {}
    for model, err in broken:models() do results[#results + 1] = { model, err } end
    assert.equal(1, #results)
    assert.is_false(results[1][1])
    assert.equal("auth", results[1][2].kind)
    assert.equal(401, results[1][2].status)
  end)
end)

describe("a callback", function()
  local sandbox, client

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    client = helpers.client(sandbox)
  end)
  lazy_teardown(function() sandbox.stop() end)

  it("is received, turned into a Job and confirmed with GetJob", function()
    local receiver = helpers.callback_receiver()
    local job = assert(client:synthesize { text = "call me back", content_id = "repo",
                                            callback = receiver.url })
    assert.equal(receiver.url, job.callback)
    local body = receiver.wait(20)
    receiver.close()
    assert.is_string(body)
    local posted = assert(voiceclone.job_from_callback(body, client))
    assert.equal(job.id, posted.id)
    assert.equal("COMPLETED", posted:status())
    local before = helpers.last_seq(sandbox)
    assert(posted:refresh())
    assert.equal("GetJob", helpers.requests(sandbox, before)[1].json.action)
    assert.equal("COMPLETED", posted:status())
  end)

  it("bodies that are not jobs are refused", function()
    local job, err = voiceclone.job_from_callback("<html>")
    assert.is_nil(job)
    assert.equal("decode", err.kind)
    job, err = voiceclone.job_from_callback('{"state":3}')
    assert.is_nil(job)
    assert.equal("invalid", err.kind)
    assert.equal("id", err.field)
    job, err = voiceclone.job_from_callback('{"id":"x","state":"done"}')
    assert.is_nil(job)
    assert.equal("state", err.field)
    assert.has_error(function() voiceclone.job_from_callback(42) end)
  end)

  it("accepts a job wrapped as {job = ...}; without a client it cannot refresh", function()
    local job = assert(voiceclone.job_from_callback(
      '{"job":{"id":"j","state":4,"errorCode":"Boom","outputs":[{"inputSelectors":[0]}]}}'))
    assert.equal("ERROR", job:status())
    assert.same({ 0 }, job.outputs[1].inputSelectors)
    assert.equal("errorCode=Boom", job:reason())
    assert.is_nil(job:client())
    assert.has_error(function() job:refresh() end)
  end)
end)
