-- Every documented request rule, at its boundary, through the public API:
-- a broken rule gives nil and an "invalid" error naming the field, and
-- nothing is sent; a request that keeps the rules goes over the wire in the
-- shape the contract gives, as the sandbox received it.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"
local socket = require "socket"

local CLONING = "outputs[1].smartContentDescriptor.voiceCloning."

local sandbox, client

-- A valid text-to-speech createJobRequest; edit(request) may change it.
local function speech(edit)
  local request = {
    inputs = { { sourceData = "Hello" } },
    outputs = { {
      contentId = "repo",
      inputSelectors = { 0 },
      smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } },
    } },
  }
  if edit then edit(request) end
  return request
end

local model_count = 0

-- A unique model name, for training requests.
local function new_model_name()
  model_count = model_count + 1
  return ("spec_model_%d_%d"):format(os.time(), model_count)
end

-- A valid training createJobRequest (type 2, no contentId); edit may change it.
local function training(edit)
  local request = {
    inputs = { { url = sandbox.url .. "/repos/spec/voice.wav" } },
    outputs = { {
      inputSelectors = { 0 },
      smartContentDescriptor = { voiceCloning = { type = 2, modelName = new_model_name() } },
    } },
  }
  if edit then edit(request) end
  return request
end

local function voice_cloning(request) return request.outputs[1].smartContentDescriptor.voiceCloning end

-- Asserts that call() gives nil and an "invalid" error for field, and that
-- no request reached the sandbox meanwhile.
local function assert_invalid(field, call)
  local before = helpers.last_seq(sandbox)
  local result, err = call()
  assert.is_nil(result)
  assert.is_not_nil(err)
  assert.equal("invalid", err.kind)
  assert.equal(field, err.field)
  assert.equal(before, helpers.last_seq(sandbox))
end

local function assert_create_invalid(field, request)
  assert_invalid(field, function() return client:create_job(request) end)
end

-- Runs call(), which must succeed; returns the one API request the sandbox
-- received meanwhile, and what call returned.
local function sent_by(call)
  local before = helpers.last_seq(sandbox)
  local result, err = call()
  assert.is_not_nil(result, err and tostring(err))
  local received = helpers.requests(sandbox, before)
  assert.equal(1, #received)
  return received[1], result
end

-- The createJobRequest the sandbox received for request, and the job.
local function created(request)
  local sent, job = sent_by(function() return client:create_job(request) end)
  return sent.json.createJobRequest, sent, job
end

local function header(request, name)
  for key, value in pairs(request.headers) do
    if key:lower() == name:lower() then return value end
  end
end

local function sorted_keys(t)
  local keys = {}
  for key in pairs(t) do keys[#keys + 1] = key end
  table.sort(keys)
  return keys
end

-- What every call shares: a JSON POST to path whose body holds action, the
-- credentials (the key masked by the sandbox) and the request object under
-- member, and nothing else.
local function assert_envelope(sent, path, action, member)
  assert.equal("POST", sent.method)
  assert.equal(path, sent.path)
  assert.equal("application/json", header(sent, "Content-Type"))
  assert.is_table(sent.json)
  assert.same(sorted_keys { action = 1, secretId = 1, secretKey = 1, [member] = 1 },
              sorted_keys(sent.json))
  assert.equal(action, sent.json.action)
  assert.equal(helpers.SECRET_ID, sent.json.secretId)
  assert.equal("***", sent.json.secretKey)
  assert.is_table(sent.json[member])
end

-- A port on loopback where nothing listens.
local function closed_port()
  local server = assert(socket.bind("127.0.0.1", 0))
  local _, port = server:getsockname()
  server:close()
  return port
end

describe("requests", function()
  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    client = helpers.client(sandbox)
  end)

  lazy_teardown(function()
    if client then client:close() end
    if sandbox then sandbox.stop() end
  end)

  describe("create_job", function()
    it("sends CreateJob as a JSON POST to /release/job with the credentials", function()
      local _, sent, job = created(speech())
      assert_envelope(sent, "/release/job", "CreateJob", "createJobRequest")
      assert.equal(1, job.state)
    end)

    it("sends inputs, outputs and inputSelectors as JSON arrays, even of one element", function()
      local _, sent = created(speech())
      assert.truthy(sent.body:find('"inputs":[{', 1, true), sent.body)
      assert.truthy(sent.body:find('"outputs":[{', 1, true), sent.body)
      assert.truthy(sent.body:find('"inputSelectors":[0]', 1, true), sent.body)
    end)

    it("sends only the documented fields, as given", function()
      local wire = created(speech(function(r)
        r.customId = "order-1"
        r.timeout = 60
        r.callback = "http://127.0.0.1:9/hook"
        r.outputs[1].destination = "/voices"
        r.outputs[1].smartContentDescriptor.outputPrefix = "hello"
      end))
      assert.same({
        inputs = { { sourceData = "Hello" } },
        outputs = { {
          contentId = "repo",
          destination = "/voices",
          inputSelectors = { 0 },
          smartContentDescriptor = {
            outputPrefix = "hello",
            voiceCloning = { type = 1, modelName = "default" },
          },
        } },
        customId = "order-1",
        timeout = 60,
        callback = "http://127.0.0.1:9/hook",
      }, wire)
    end)

    describe("inputSelectors", function()
      it("count from 0 as the service documents them, sent and read back unchanged", function()
        local wire, sent, job = created(speech(function(r)
          r.inputs = { { sourceData = "one" }, { sourceData = "two" } }
          r.outputs[1].inputSelectors = { 1, 0 }
        end))
        assert.same({ 1, 0 }, wire.outputs[1].inputSelectors)
        assert.truthy(sent.body:find('"inputSelectors":[1,0]', 1, true), sent.body)
        assert.same({ 1, 0 }, job.outputs[1].inputSelectors)
        assert.same({ 1, 0 }, job:totable().outputs[1].inputSelectors)
      end)

      it("take the service's own example, {0}: [0] on the wire, 0 read back", function()
        local wire, sent, job = created(speech(function(r) r.outputs[1].inputSelectors = { 0 } end))
        assert.same({ 0 }, wire.outputs[1].inputSelectors)
        assert.truthy(sent.body:find('"inputSelectors":[0]', 1, true), sent.body)
        assert.equal(0, job.outputs[1].inputSelectors[1])
        local again = assert(client:get_job(job.id))
        assert.equal(0, again.outputs[1].inputSelectors[1])
      end)

      it("accept the last input's index", function()
        local wire = created(speech(function(r)
          r.inputs = { { sourceData = "one" }, { sourceData = "two" }, { sourceData = "three" } }
          r.outputs[1].inputSelectors = { 2 }
        end))
        assert.same({ 2 }, wire.outputs[1].inputSelectors)
      end)

      it("refuse -1, below the first input", function()
        assert_create_invalid("outputs[1].inputSelectors[1]", speech(function(r)
          r.outputs[1].inputSelectors = { -1 }
        end))
      end)

      it("refuse the index after the last input", function()
        assert_create_invalid("outputs[1].inputSelectors[2]", speech(function(r)
          r.inputs = { { sourceData = "one" }, { sourceData = "two" } }
          r.outputs[1].inputSelectors = { 0, 2 }
        end))
      end)

      it("refuse an index that is not an integer", function()
        assert_create_invalid("outputs[1].inputSelectors[1]", speech(function(r)
          r.outputs[1].inputSelectors = { 0.5 }
        end))
        assert_create_invalid("outputs[1].inputSelectors[1]", speech(function(r)
          r.outputs[1].inputSelectors = { "0" }
        end))
      end)

      it("refuses missing, empty or non-sequence selectors", function()
        assert_create_invalid("outputs[1].inputSelectors", speech(function(r)
          r.outputs[1].inputSelectors = nil
        end))
        assert_create_invalid("outputs[1].inputSelectors", speech(function(r)
          r.outputs[1].inputSelectors = {}
        end))
        assert_create_invalid("outputs[1].inputSelectors", speech(function(r)
          r.outputs[1].inputSelectors = 1
        end))
      end)
    end)

    describe("sourceData", function()
      it("accepts 512 ASCII characters", function()
        local text = string.rep("a", 512)
        local wire = created(speech(function(r) r.inputs[1].sourceData = text end))
        assert.equal(text, wire.inputs[1].sourceData)
      end)

      it("accepts 512 Chinese characters, counted as characters, and sends them intact", function()
        local text = string.rep("字", 512)
        assert.equal(1536, #text)
        local wire, sent, job = created(speech(function(r) r.inputs[1].sourceData = text end))
        assert.equal(text, wire.inputs[1].sourceData)
        assert.truthy(sent.body:find(text, 1, true))
        assert.equal(text, job.inputs[1].sourceData)
      end)

      it("refuses 513 Chinese characters", function()
        assert_create_invalid("inputs[1].sourceData", speech(function(r)
          r.inputs[1].sourceData = string.rep("字", 513)
        end))
      end)

      it("refuses 513 ASCII characters", function()
        assert_create_invalid("inputs[1].sourceData", speech(function(r)
          r.inputs[1].sourceData = string.rep("a", 513)
        end))
      end)

      it("refuses text that is not valid UTF-8", function()
        for _, bad in ipairs {
          "caf\233",            -- Latin-1 (decimal escapes: Lua 5.1 has no \x)
          "\229\173",           -- a character cut short
          "\192\175",           -- an overlong "/"
          "\237\160\128",       -- a UTF-16 surrogate
        } do
          assert_create_invalid("inputs[1].sourceData", speech(function(r)
            r.inputs[1].sourceData = bad
          end))
        end
      end)

      it("refuses a value that is not a string", function()
        assert_create_invalid("inputs[1].sourceData", speech(function(r)
          r.inputs[1].sourceData = 42
        end))
      end)
    end)

    describe("an input", function()
      it("refuses two of sourceData, url and source", function()
        assert_create_invalid("inputs[1]", speech(function(r)
          r.inputs[1] = { sourceData = "Hello", url = "http://127.0.0.1:9/a.wav" }
        end))
        assert_create_invalid("inputs[2]", speech(function(r)
          r.inputs[2] = { url = "http://127.0.0.1:9/a.wav", source = { contentId = "r", path = "a.wav" } }
        end))
      end)

      it("refuses none of sourceData, url and source", function()
        assert_create_invalid("inputs[1]", speech(function(r) r.inputs[1] = {} end))
      end)

      it("sends a source with its contentId and path", function()
        local wire = created(speech(function(r)
          r.inputs[1] = { source = { contentId = "repo", path = "in/voice.wav" } }
        end))
        assert.same({ { source = { contentId = "repo", path = "in/voice.wav" } } }, wire.inputs)
      end)

      it("refuses a source without a path or a contentId", function()
        assert_create_invalid("inputs[1].source.path", speech(function(r)
          r.inputs[1] = { source = { contentId = "repo" } }
        end))
        assert_create_invalid("inputs[1].source.contentId", speech(function(r)
          r.inputs[1] = { source = { path = "voice.wav" } }
        end))
      end)

      it("refuses a source that is not a table", function()
        assert_create_invalid("inputs[1].source", speech(function(r)
          r.inputs[1] = { source = "repo/voice.wav" }
        end))
      end)
    end)

    describe("inputs and outputs", function()
      for _, name in ipairs { "inputs", "outputs" } do
        it("refuses missing " .. name, function()
          assert_create_invalid(name, speech(function(r) r[name] = nil end))
        end)

        it("refuses empty " .. name, function()
          assert_create_invalid(name, speech(function(r) r[name] = {} end))
        end)

        it("refuses " .. name .. " that are not a sequence", function()
          local one = speech()[name][1]
          assert_create_invalid(name, speech(function(r) r[name] = one end))
          assert_create_invalid(name, speech(function(r) r[name] = { first = one } end))
          assert_create_invalid(name, speech(function(r) r[name] = { [2] = one } end))
          assert_create_invalid(name, speech(function(r) r[name] = "x" end))
        end)
      end
    end)

    describe("customId", function()
      it("accepts 63 characters", function()
        local id = string.rep("c", 63)
        assert.equal(id, created(speech(function(r) r.customId = id end)).customId)
      end)

      it("accepts 63 Chinese characters", function()
        local id = string.rep("号", 63)
        assert.equal(id, created(speech(function(r) r.customId = id end)).customId)
      end)

      it("refuses 64 characters", function()
        assert_create_invalid("customId", speech(function(r) r.customId = string.rep("c", 64) end))
      end)
    end)

    describe("outputPrefix", function()
      local PREFIX = "outputs[1].smartContentDescriptor.outputPrefix"

      it("accepts 19 characters", function()
        local prefix = string.rep("p", 19)
        local wire = created(speech(function(r)
          r.outputs[1].smartContentDescriptor.outputPrefix = prefix
        end))
        assert.equal(prefix, wire.outputs[1].smartContentDescriptor.outputPrefix)
      end)

      it("refuses 20 characters", function()
        assert_create_invalid(PREFIX, speech(function(r)
          r.outputs[1].smartContentDescriptor.outputPrefix = string.rep("p", 20)
        end))
      end)
    end)

    describe("modelName", function()
      local MODEL = CLONING .. "modelName"

      it("accepts letters, digits and _", function()
        local name = "Voice_of_" .. new_model_name() .. "_X9"
        local wire = created(training(function(r) voice_cloning(r).modelName = name end))
        assert.equal(name, voice_cloning(wire).modelName)
      end)

      it("accepts 63 characters", function()
        local name = new_model_name()
        name = name .. string.rep("m", 63 - #name)
        local wire = created(training(function(r) voice_cloning(r).modelName = name end))
        assert.equal(name, voice_cloning(wire).modelName)
      end)

      it("refuses 64 characters", function()
        assert_create_invalid(MODEL, training(function(r)
          voice_cloning(r).modelName = string.rep("m", 64)
        end))
      end)

      it("refuses a -, a space or a letter outside ASCII", function()
        for _, name in ipairs { "my-voice", "my voice", "modèle" } do
          assert_create_invalid(MODEL, training(function(r) voice_cloning(r).modelName = name end))
        end
      end)

      it("refuses a missing or empty name", function()
        assert_create_invalid(MODEL, training(function(r) voice_cloning(r).modelName = nil end))
        assert_create_invalid(MODEL, training(function(r) voice_cloning(r).modelName = "" end))
      end)
    end)

    describe("totalEpoch", function()
      local EPOCHS = CLONING .. "totalEpoch"

      it("accepts 50 on a training job", function()
        local wire = created(training(function(r) voice_cloning(r).totalEpoch = 50 end))
        assert.equal(50, voice_cloning(wire).totalEpoch)
        assert.equal(2, voice_cloning(wire).type)
      end)

      it("refuses 51", function()
        assert_create_invalid(EPOCHS, training(function(r) voice_cloning(r).totalEpoch = 51 end))
      end)

      it("refuses 0", function()
        assert_create_invalid(EPOCHS, training(function(r) voice_cloning(r).totalEpoch = 0 end))
      end)

      it("refuses a number that is not an integer", function()
        assert_create_invalid(EPOCHS, training(function(r) voice_cloning(r).totalEpoch = 10.5 end))
      end)

      it("refuses epochs on a generate job (type 1)", function()
        assert_create_invalid(EPOCHS, speech(function(r) voice_cloning(r).totalEpoch = 10 end))
      end)
    end)

    describe("voiceCloning.type", function()
      it("refuses 3, and anything but 1 and 2", function()
        for _, type in ipairs { 3, 0, "1" } do
          assert_create_invalid(CLONING .. "type", speech(function(r)
            voice_cloning(r).type = type
          end))
        end
      end)
    end)

    describe("contentId", function()
      it("is required on a generate job (type 1)", function()
        assert_create_invalid("outputs[1].contentId", speech(function(r)
          r.outputs[1].contentId = nil
        end))
      end)

      it("may be left out of a training job (type 2)", function()
        local wire = created(training())
        assert.is_nil(wire.outputs[1].contentId)
      end)
    end)

    describe("unknown fields", function()
      it("are refused at every level, by their path", function()
        assert_create_invalid("customID", speech(function(r) r.customID = "x" end))
        assert_create_invalid("inputs[1].text", speech(function(r) r.inputs[1].text = "x" end))
        assert_create_invalid("outputs[1].contentID", speech(function(r)
          r.outputs[1].contentID = "x"
        end))
        assert_create_invalid("outputs[1].smartContentDescriptor.prefix", speech(function(r)
          r.outputs[1].smartContentDescriptor.prefix = "x"
        end))
        assert_create_invalid(CLONING .. "epochs", training(function(r)
          voice_cloning(r).epochs = 10
        end))
        assert_create_invalid("inputs[1].source.file", speech(function(r)
          r.inputs[1] = { source = { contentId = "r", path = "a.wav", file = "a.wav" } }
        end))
      end)
    end)

    describe("timeout", function()
      it("accepts 1 second", function()
        assert.equal(1, created(speech(function(r) r.timeout = 1 end)).timeout)
      end)

      it("refuses 0, a negative or a fractional number of seconds", function()
        for _, timeout in ipairs { 0, -1, 1.5 } do
          assert_create_invalid("timeout", speech(function(r) r.timeout = timeout end))
        end
      end)
    end)

    describe("callback", function()
      it("accepts an http:// or https:// URL, its scheme in any case as URLs allow", function()
        for _, url in ipairs { "http://127.0.0.1:9/hook", "https://example.com/hook",
                               "HTTPS://example.com/hook", "Http://127.0.0.1:9/hook" } do
          assert.equal(url, created(speech(function(r) r.callback = url end)).callback)
        end
      end)

      it("refuses any other URL", function()
        for _, url in ipairs { "ftp://example.com/hook", "example.com/hook", "" } do
          assert_create_invalid("callback", speech(function(r) r.callback = url end))
        end
      end)
    end)
  end)

  describe("get_job", function()
    it("sends GetJob with the id under getJobRequest", function()
      local job = assert(client:create_job(speech()))
      local sent, found = sent_by(function() return client:get_job(job.id) end)
      assert_envelope(sent, "/release/job", "GetJob", "getJobRequest")
      assert.same({ id = job.id }, sent.json.getJobRequest)
      assert.equal(job.id, found.id)
    end)

    it("refuses an empty id", function()
      assert_invalid("id", function() return client:get_job("") end)
    end)
  end)

  describe("list_jobs", function()
    it("sends ListJobs with a 63-character customId under listJobsRequest", function()
      local id = new_model_name()
      id = id .. string.rep("L", 63 - #id)
      assert(client:create_job(speech(function(r) r.customId = id end)))
      local sent, jobs = sent_by(function() return client:list_jobs(id) end)
      assert_envelope(sent, "/release/job", "ListJobs", "listJobsRequest")
      assert.same({ customId = id }, sent.json.listJobsRequest)
      assert.is_true(#jobs >= 1)
      assert.equal(id, jobs[1].customId)
    end)

    it("refuses a 64-character customId", function()
      assert_invalid("customId", function() return client:list_jobs(string.rep("L", 64)) end)
    end)
  end)

  describe("list_models", function()
    it("sends ListModels to /release/music_model, not /release/job", function()
      local sent = sent_by(function() return client:list_models(0, 100) end)
      assert_envelope(sent, "/release/music_model", "ListModels", "listModelsRequest")
      assert.same({ offset = 0, limit = 100 }, sent.json.listModelsRequest)
    end)

    it("sends offset 0 and limit 10 when they are left out", function()
      local sent = sent_by(function() return client:list_models() end)
      assert.same({ offset = 0, limit = 10 }, sent.json.listModelsRequest)
    end)

    it("accepts a limit of 1 and a large offset", function()
      local sent = sent_by(function() return client:list_models(1000, 1) end)
      assert.same({ offset = 1000, limit = 1 }, sent.json.listModelsRequest)
    end)

    it("refuses a limit of 101", function()
      assert_invalid("limit", function() return client:list_models(0, 101) end)
    end)

    it("refuses a limit of 0", function()
      assert_invalid("limit", function() return client:list_models(0, 0) end)
    end)

    it("refuses an offset of -1", function()
      assert_invalid("offset", function() return client:list_models(-1, 10) end)
    end)
  end)

  describe("the task helpers", function()
    -- The createJobRequest a helper sent. Without a custom_id the client
    -- gives it one of its own (every create carries one: see retry_spec),
    -- taken out here after it is checked.
    local function built_by(method, options)
      local sent = sent_by(function() return client[method](client, options) end)
      assert_envelope(sent, "/release/job", "CreateJob", "createJobRequest")
      local request = sent.json.createJobRequest
      if options.custom_id == nil then
        assert.matches("^vc%-%x+$", request.customId)
        assert.is_true(#request.customId < 64)
        request.customId = nil
      end
      return request
    end

    local function assert_helper_invalid(field, method, options)
      assert_invalid(field, function() return client[method](client, options) end)
    end

    it("synthesize sends text to speak in the default voice", function()
      assert.same({
        inputs = { { sourceData = "你好, hello" } },
        outputs = { {
          contentId = "repo",
          inputSelectors = { 0 },
          smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } },
        } },
      }, built_by("synthesize", { text = "你好, hello", content_id = "repo" }))
    end)

    it("synthesize sends every option under its API name", function()
      assert.same({
        inputs = { { sourceData = "Hello" } },
        outputs = { {
          contentId = "repo",
          destination = "/out",
          inputSelectors = { 0 },
          smartContentDescriptor = {
            outputPrefix = "greeting",
            voiceCloning = { type = 1, modelName = "my_voice" },
          },
        } },
        customId = "order-7",
        callback = "https://example.com/hook",
        timeout = 120,
      }, built_by("synthesize", {
        text = "Hello", model = "my_voice", content_id = "repo", destination = "/out",
        prefix = "greeting", custom_id = "order-7", callback = "https://example.com/hook",
        timeout = 120,
      }))
    end)

    it("convert sends a recording by url", function()
      assert.same({
        inputs = { { url = "http://127.0.0.1:9/in.wav" } },
        outputs = { {
          contentId = "repo",
          destination = "/converted",
          inputSelectors = { 0 },
          smartContentDescriptor = {
            outputPrefix = "conv",
            voiceCloning = { type = 1, modelName = "my_voice" },
          },
        } },
        customId = "c-1",
      }, built_by("convert", {
        url = "http://127.0.0.1:9/in.wav", model = "my_voice", content_id = "repo",
        destination = "/converted", prefix = "conv", custom_id = "c-1",
      }))
    end)

    it("convert sends a recording in a repository", function()
      assert.same({
        inputs = { { source = { contentId = "repo", path = "in/voice.wav" } } },
        outputs = { {
          contentId = "out_repo",
          inputSelectors = { 0 },
          smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } },
        } },
      }, built_by("convert", {
        source = { contentId = "repo", path = "in/voice.wav" }, content_id = "out_repo",
      }))
    end)

    it("train sends a training job (type 2) without a contentId", function()
      local name = new_model_name()
      assert.same({
        inputs = { { url = "http://127.0.0.1:9/voice.wav" } },
        outputs = { {
          inputSelectors = { 0 },
          smartContentDescriptor = { voiceCloning = { type = 2, modelName = name, totalEpoch = 50 } },
        } },
        timeout = 3600,
      }, built_by("train", {
        url = "http://127.0.0.1:9/voice.wav", model = name, epochs = 50, timeout = 3600,
      }))
    end)

    it("name the option, not the wire field, in an invalid error", function()
      assert_helper_invalid("text", "synthesize", { text = string.rep("a", 513), content_id = "r" })
      assert_helper_invalid("text", "synthesize", { content_id = "r" })
      assert_helper_invalid("content_id", "synthesize", { text = "Hello" })
      assert_helper_invalid("prefix", "synthesize",
                            { text = "Hello", content_id = "r", prefix = string.rep("p", 20) })
      assert_helper_invalid("model", "synthesize",
                            { text = "Hello", content_id = "r", model = "my-voice" })
      assert_helper_invalid("custom_id", "synthesize",
                            { text = "Hello", content_id = "r", custom_id = string.rep("c", 64) })
      assert_helper_invalid("timeout", "synthesize", { text = "Hello", content_id = "r", timeout = 0 })
      assert_helper_invalid("callback", "synthesize",
                            { text = "Hello", content_id = "r", callback = "ftp://x" })
      assert_helper_invalid("source.path", "convert",
                            { source = { contentId = "r" }, content_id = "r" })
      assert_helper_invalid("epochs", "train",
                            { url = "http://127.0.0.1:9/a.wav", model = "m", epochs = 51 })
      assert_helper_invalid("epochs", "train",
                            { url = "http://127.0.0.1:9/a.wav", model = "m", epochs = 0 })
      assert_helper_invalid("model", "train", { url = "http://127.0.0.1:9/a.wav" })
    end)

    it("refuse an option they do not know, naming it", function()
      assert_helper_invalid("contentId", "synthesize", { text = "Hello", contentId = "r" })
      assert_helper_invalid("epochs", "convert",
                            { url = "http://127.0.0.1:9/a.wav", content_id = "r", epochs = 3 })
      assert_helper_invalid("content_id", "train",
                            { url = "http://127.0.0.1:9/a.wav", model = "m", content_id = "r" })
    end)

    it("refuse both or neither of url and source", function()
      local url, source = "http://127.0.0.1:9/a.wav", { contentId = "r", path = "a.wav" }
      assert_helper_invalid("url", "convert", { content_id = "r" })
      assert_helper_invalid("url", "convert", { url = url, source = source, content_id = "r" })
      assert_helper_invalid("url", "train", { model = "m" })
      assert_helper_invalid("url", "train", { url = url, source = source, model = "m" })
    end)
  end)

  describe("arguments of the wrong Lua type", function()
    -- A client where nothing listens: what matters is that the call raises.
    local offline

    before_each(function()
      offline = assert(voiceclone.new {
        endpoint = ("http://127.0.0.1:%d"):format(closed_port()),
        secret_id = helpers.SECRET_ID, secret_key = helpers.SECRET_KEY, timeout = 2,
      })
    end)

    after_each(function() offline:close() end)

    it("raise in create_job", function()
      assert.has_error(function() offline:create_job("x") end)
      assert.has_error(function() offline:create_job() end)
    end)

    it("raise in get_job for a table or nil", function()
      assert.has_error(function() offline:get_job({}) end)
      assert.has_error(function() offline:get_job() end)
    end)

    it("raise in get_job for a number", function()
      assert.has_error(function() offline:get_job(5) end)
    end)

    it("raise in list_jobs for a table or nil", function()
      assert.has_error(function() offline:list_jobs({}) end)
      assert.has_error(function() offline:list_jobs() end)
    end)

    it("raise in list_jobs for a number", function()
      assert.has_error(function() offline:list_jobs(5) end)
    end)

    it("raise in list_models", function()
      assert.has_error(function() offline:list_models("x") end)
      assert.has_error(function() offline:list_models(0, {}) end)
      assert.has_error(function() offline:list_models(0.5) end)
    end)

    it("raise in the task helpers", function()
      assert.has_error(function() offline:synthesize("Hello") end)
      assert.has_error(function() offline:convert() end)
      assert.has_error(function() offline:train(5) end)
    end)

    it("raise on a closed client", function()
      offline:close()
      assert.has_error(function() offline:get_job("j-1") end)
      assert.has_error(function() offline:create_job(speech()) end)
    end)
  end)
end)
