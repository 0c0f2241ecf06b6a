-- Specs for the sandbox (voiceclone.sandbox, scripts/voiceclone sandbox).
-- They start real sandbox processes on free loopback ports and speak raw
-- HTTP to them (luasocket), never through the voiceclone module.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local json = require("cjson.safe").new()

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
package.path = ROOT .. "/lua-voiceclone/?.lua;" .. ROOT .. "/lua-voiceclone/?/init.lua;" .. package.path
local compat = require "voiceclone.compat"
local helpers = require "support.helpers"
local watch = require "support.secret_watch"
local LUA = helpers.LUA   -- the suite's interpreter, for the sandboxes
-- The suite's credentials (a key the secret watch recognises), and as the
-- JSON text of a body; the wrong keys sent are watched too.
local SECRET_ID, SECRET_KEY = helpers.SECRET_ID, helpers.SECRET_KEY
local ID_JSON, KEY_JSON = assert(json.encode(SECRET_ID)), assert(json.encode(SECRET_KEY))
local WRONG_KEY, OTHER_WRONG_KEY = "wrong-key-0123456789", "a-wrong-secret"
watch.add_key(WRONG_KEY, "a wrong key sandbox_spec sends")
watch.add_key(OTHER_WRONG_KEY, "a wrong key sandbox_spec sends")

----------------------------------------------------------------------------
-- Helpers

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Shell commands run without the sanitizer preload of make test-asan, which
-- is meant for the Lua running the specs only (espeak-ng hangs under it).
local function clean(cmd) return "exec env -u LD_PRELOAD sh -c " .. q(cmd) end
local function sh(cmd) return compat.execute(clean(cmd)) end

local function tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(sh("mkdir -p " .. q(path)))
  return path
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("*a")   -- "*a", "*l": 5.1 and 5.2 need the star
  f:close()
  return data
end

local function command_output(cmd)
  local p = assert(io.popen(clean(cmd), "r"))
  local out = p:read("*a")
  p:close()
  return out
end

-- Start `scripts/voiceclone sandbox` as a child; returns {url, port, pid, data}.
-- Its log is scanned by the secret watch once stopped.
local function start_sandbox(data, args)
  local cmd = string.format("exec %s %s sandbox --port 0 --data %s --secret-id %s --secret-key %s --verbose %s 2>>%s",
    LUA, q(ROOT .. "/scripts/voiceclone"), q(data), q(SECRET_ID), q(SECRET_KEY), args or "", q(data .. ".log"))
  watch.scan_file_later(data .. ".log", "the log of a sandbox of sandbox_spec")
  local pipe = assert(io.popen(clean(cmd), "r"))
  local line = pipe:read("*l")
  assert(line, "the sandbox did not start; see " .. data .. ".log")
  local url, dir, pid = line:match("^voiceclone sandbox listening on (http://%S+) data=(.-) pid=(%d+)$")
  assert(url, "unexpected first line: " .. line)
  return {
    url = url, port = tonumber(url:match(":(%d+)$")), pid = pid, data = dir,
    pipe = pipe, line = line, log = data .. ".log",
  }
end

local function stop_sandbox(sb)
  if sb and sb.pipe then
    sh("kill " .. sb.pid)
    sb.pipe:close()
    sb.pipe = nil
    watch.scan_file(sb.log, "the log of a sandbox of sandbox_spec")
  end
end

-- HTTP request with socket.http: status, body text, headers.
local function request(method, url, body, headers)
  local chunks = {}
  headers = headers or {}
  if body then headers["content-length"] = tostring(#body) end
  local _, status, res_headers = http.request({
    url = url, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  })
  local text = table.concat(chunks)
  watch.output(text, "the sandbox's answer to " .. method .. " " .. url)
  return status, text, res_headers
end

local function post_json(sb, path, text, content_type)
  local status, body, headers = request("POST", sb.url .. path, text,
    { ["content-type"] = content_type or "application/json" })
  return status, json.decode(body), headers, body
end

-- POST an action with the default credentials: status, decoded body.
local function api(sb, action, member, req, opts)
  opts = opts or {}
  local body = { action = action, secretId = opts.secret_id or SECRET_ID,
                 secretKey = opts.secret_key or SECRET_KEY }
  if member then body[member] = req end
  local path = opts.path or (action == "ListModels" and "/release/music_model" or "/release/job")
  local status, decoded = post_json(sb, path, assert(json.encode(body)))
  return status, decoded
end

local function get_job(sb, id)
  local status, body = api(sb, "GetJob", "getJobRequest", { id = id })
  assert.are.equal(200, status)
  return body.getJobResponse.job
end

-- Poll until the job is final; returns it and the list of states seen.
local function wait_job(sb, id, seconds)
  local deadline = socket.gettime() + (seconds or 20)
  local seen = {}
  while true do
    local job = get_job(sb, id)
    if seen[#seen] ~= job.state then seen[#seen + 1] = job.state end
    if job.state >= 3 then return job, seen end
    assert(socket.gettime() < deadline, "job " .. id .. " did not finish; states " ..
      table.concat(seen, ","))
    socket.sleep(0.01)
  end
end

local function create_job(sb, req)
  local status, body = api(sb, "CreateJob", "createJobRequest", req)
  assert.are.equal(200, status, json.encode(body))
  return body.createJobResponse.job
end

local function tts_job(text, model, extra)
  local req = {
    inputs = { { sourceData = text } },
    outputs = { {
      contentId = "out", inputSelectors = { 0 },
      smartContentDescriptor = { voiceCloning = { type = 1, modelName = model or "default" } },
    } },
  }
  for k, v in pairs(extra or {}) do req[k] = v end
  return req
end

local function train_job(name, input, epochs)
  return {
    inputs = { input },
    outputs = { {
      inputSelectors = { 0 },
      smartContentDescriptor = { voiceCloning = { type = 2, modelName = name, totalEpoch = epochs } },
    } },
  }
end

-- The error of a rejected request: status, error.code, error.message.
local function rejected(status, body)
  assert.is_table(body, "error responses carry JSON")
  assert.is_string(body.requestId)
  return status, body.error.code, body.error.message
end

-- Raw HTTP on a luasocket client (keep-alive, concurrency, malformed input).
local function raw_connect(sb)
  local c = assert(socket.connect("127.0.0.1", sb.port))
  c:settimeout(10)
  return c
end

local function raw_send(c, method, path, body, extra_headers)
  local head = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for _, h in ipairs(extra_headers or {}) do head[#head + 1] = h end
  if body then
    head[#head + 1] = "Content-Type: application/json"
    head[#head + 1] = "Content-Length: " .. #body
  end
  assert(c:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

local function raw_read(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.*)$")
    headers[name:lower()] = value
  end
  local body = ""
  local n = tonumber(headers["content-length"] or "0")
  if n > 0 then body = assert(c:receive(n)) end
  return status, body, headers
end

local function api_body(action, member, req)
  local t = { action = action, secretId = SECRET_ID, secretKey = SECRET_KEY }
  if member then t[member] = req end
  return assert(json.encode(t))
end

local function soxi_duration(path)
  return tonumber(command_output("soxi -D " .. q(path) .. " 2>/dev/null"))
end

----------------------------------------------------------------------------

describe("voiceclone sandbox", function()
  local sb, data

  setup(function()
    data = tmpdir()
    sb = start_sandbox(data, "--queue-seconds 0.1 --work-seconds 0.2")
    -- A voice recording in a repository, made with espeak-ng.
    assert(sh("mkdir -p " .. q(data .. "/repos/samples")))
    assert(sh("espeak-ng -v en -w " .. q(data .. "/repos/samples/voice.wav")
      .. " 'The quick brown fox jumps over the lazy dog.'"))
  end)

  teardown(function()
    stop_sandbox(sb)
    sh("rm -rf " .. q(data) .. " " .. q(data .. ".log"))
  end)

  describe("command line", function()
    it("prints usage for --help and for sandbox --help", function()
      local out = command_output(LUA .. " " .. q(ROOT .. "/scripts/voiceclone") .. " --help")
      assert.matches("usage: voiceclone <command>", out, 1, true)
      assert.matches("sandbox", out, 1, true)
      out = command_output(LUA .. " " .. q(ROOT .. "/scripts/voiceclone") .. " sandbox --help")
      assert.matches("--queue-seconds", out, 1, true)
      assert.matches("--any-credentials", out, 1, true)
    end)

    it("announces itself on one first line with url, data directory and pid", function()
      assert.matches("^voiceclone sandbox listening on http://127%.0%.0%.1:%d+ data=", sb.line)
      assert.are.equal(data, sb.data)
      local stat = read_file("/proc/" .. sb.pid .. "/cmdline")
      assert.matches("voiceclone", stat, 1, true)
    end)

    it("writes --port-file and refuses a port in use", function()
      local dir = tmpdir()
      local other = start_sandbox(dir, "--port-file " .. q(dir .. "/port"))
      finally(function()
        stop_sandbox(other)
        sh("rm -rf " .. q(dir))
      end)
      assert.are.equal(tostring(other.port), (read_file(dir .. "/port") or ""):match("%d+"))
      local out = command_output(LUA .. " " .. q(ROOT .. "/scripts/voiceclone") .. " sandbox --port "
        .. other.port .. " --data " .. q(dir .. "/x") .. " 2>&1; echo rc=$?")
      assert.matches("rc=1", out, 1, true)
      assert.matches("port " .. other.port, out, 1, true)
    end)
  end)

  describe("HTTP", function()
    it("answers health and 404 for unknown routes", function()
      local status, body = request("GET", sb.url .. "/_sandbox/health")
      assert.are.equal(200, status)
      assert.are.same({ ok = true }, json.decode(body))
      status, body = request("GET", sb.url .. "/nope")
      assert.are.equal(404, status)
      assert.is_table(json.decode(body).error)
    end)

    it("answers 405 for a non-POST API call", function()
      local status, body, headers = request("GET", sb.url .. "/release/job")
      assert.are.equal(405, status)
      assert.are.equal("MethodNotAllowed", json.decode(body).error.code)
      assert.are.equal("POST", headers.allow)
    end)

    it("answers 415 without application/json and accepts a charset parameter", function()
      local status, body = post_json(sb, "/release/job", api_body("ListJobs", "listJobsRequest",
        { customId = "x" }), "text/plain")
      local _, code = rejected(status, body)
      assert.are.equal(415, status)
      assert.are.equal("UnsupportedMediaType", code)
      status = post_json(sb, "/release/job", api_body("ListJobs", "listJobsRequest",
        { customId = "x" }), "application/json; charset=utf-8")
      assert.are.equal(200, status)
    end)

    it("answers 400 for bad JSON and for a body that is not an object", function()
      for _, text in ipairs({ "{", "[1,2]", '"text"', "", '{"action":NaN}' }) do
        local status, body = post_json(sb, "/release/job", text)
        local _, code = rejected(status, body)
        assert.are.equal(400, status)
        assert.are.equal("InvalidParameter", code)
      end
    end)

    it("answers 413 for a body over 1 MiB", function()
      local big = '{"action":"ListJobs","pad":"' .. string.rep("x", 1024 * 1024) .. '"}'
      local c = raw_connect(sb)
      raw_send(c, "POST", "/release/job", big)
      local status, body, headers = raw_read(c)
      c:close()
      assert.are.equal(413, status)
      assert.are.equal("RequestTooLarge", json.decode(body).error.code)
      assert.are.equal("close", headers.connection)
    end)

    it("answers 400 and closes on a malformed request", function()
      local c = raw_connect(sb)
      assert(c:send("THIS IS NOT HTTP\r\n\r\n"))
      local status, _, headers = raw_read(c)
      assert.are.equal(400, status)
      assert.are.equal("close", headers.connection)
      assert.is_nil((c:receive("*l")))
      c:close()
    end)

    it("refuses chunked request bodies", function()
      local c = raw_connect(sb)
      assert(c:send("POST /release/job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
      local status = raw_read(c)
      c:close()
      assert.are.equal(411, status)
    end)

    it("keeps a connection alive, answers pipelined requests in order, honours close", function()
      local c = raw_connect(sb)
      local body = api_body("ListJobs", "listJobsRequest", { customId = "pipelined" })
      raw_send(c, "GET", "/_sandbox/health")
      raw_send(c, "POST", "/release/job", body)
      raw_send(c, "GET", "/nope")
      local s1 = raw_read(c)
      local s2, b2 = raw_read(c)
      local s3 = raw_read(c)
      assert.are.same({ 200, 200, 404 }, { s1, s2, s3 })
      assert.is_table(json.decode(b2).listJobsResponse)
      raw_send(c, "GET", "/_sandbox/health", nil, { "Connection: close" })
      local s4, _, h4 = raw_read(c)
      assert.are.equal(200, s4)
      assert.are.equal("close", h4.connection)
      assert.is_nil((c:receive("*l")))
      c:close()
    end)

    it("serves 50 concurrent keep-alive connections", function()
      local conns = {}
      for i = 1, 50 do conns[i] = raw_connect(sb) end
      for round = 1, 2 do
        for i, c in ipairs(conns) do
          raw_send(c, "POST", "/release/job",
            api_body("ListJobs", "listJobsRequest", { customId = "c" .. i .. "-" .. round }))
        end
        for _, c in ipairs(conns) do
          local status, body = raw_read(c)
          assert.are.equal(200, status)
          assert.are.equal(0, json.decode(body).listJobsResponse.total)
        end
      end
      for _, c in ipairs(conns) do c:close() end
    end)

    it("holds 600 open connections at once", function()
      local conns = {}
      for i = 1, 600 do conns[i] = raw_connect(sb) end
      for _, c in ipairs(conns) do raw_send(c, "GET", "/_sandbox/health") end
      local ok = 0
      for _, c in ipairs(conns) do
        if raw_read(c) == 200 then ok = ok + 1 end
        c:close()
      end
      assert.are.equal(600, ok)
    end)

    it("serves repository files with GET and HEAD, and never outside the repositories", function()
      local status, body, headers = request("GET", sb.url .. "/repos/samples/voice.wav")
      assert.are.equal(200, status)
      assert.are.equal("audio/wav", headers["content-type"])
      assert.are.equal(read_file(data .. "/repos/samples/voice.wav"), body)
      status, body, headers = request("HEAD", sb.url .. "/repos/samples/voice.wav")
      assert.are.equal(200, status)
      assert.are.equal("", body)
      assert.are.equal(tostring(#read_file(data .. "/repos/samples/voice.wav")),
        headers["content-length"])
      assert.are.equal(404, (request("GET", sb.url .. "/repos/samples/missing.wav")))
      assert.are.equal(404, (request("GET", sb.url .. "/repos/samples")))
      for _, path in ipairs({ "/repos/samples/../../jobs.jsonl", "/repos/%2e%2e/jobs.jsonl",
                              "/repos/samples/%2E%2E/%2E%2E/jobs.jsonl" }) do
        local c = raw_connect(sb)
        raw_send(c, "GET", path)
        local s, b = raw_read(c)
        c:close()
        assert.is_true(s == 400 or s == 404, path .. " gave " .. tostring(s))
        assert.is_nil(b:find('"state"', 1, true))
      end
    end)

    it("streams a large file whole", function()
      local path = data .. "/repos/samples/long.wav"
      assert(sh("sox -n -r 44100 -c 2 -b 16 " .. q(path) .. " synth 30 sine 440 2>/dev/null"))
      local expected = read_file(path)
      assert.is_true(#expected > 4 * 1024 * 1024)
      local status, body = request("GET", sb.url .. "/repos/samples/long.wav")
      assert.are.equal(200, status)
      assert.are.equal(#expected, #body)
      assert.is_true(expected == body)
    end)
  end)

  describe("credentials and routing", function()
    it("answers 401 AuthFailure for wrong credentials", function()
      local status, code = rejected(api(sb, "ListModels", "listModelsRequest", {},
        { secret_key = WRONG_KEY }))
      assert.are.equal(401, status)
      assert.are.equal("AuthFailure", code)
      status, code = rejected(api(sb, "GetJob", "getJobRequest", { id = "x" },
        { secret_id = "someone" }))
      assert.are.equal(401, status)
      assert.are.equal("AuthFailure", code)
    end)

    it("answers 400 for missing or empty common fields", function()
      local status, body = post_json(sb, "/release/job",
        '{"action":"ListJobs","secretId":' .. ID_JSON .. ',"listJobsRequest":{"customId":"x"}}')
      local _, code, message = rejected(status, body)
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      assert.matches("secretKey", message, 1, true)
      status, body = post_json(sb, "/release/job",
        '{"action":"","secretId":' .. ID_JSON .. ',"secretKey":' .. KEY_JSON .. '}')
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", select(2, rejected(status, body)))
    end)

    it("answers 400 for an action sent to the wrong path", function()
      local status, code = rejected(api(sb, "ListModels", "listModelsRequest", { limit = 10 },
        { path = "/release/job" }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidAction", code)
      status, code = rejected(api(sb, "GetJob", "getJobRequest", { id = "x" },
        { path = "/release/music_model" }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidAction", code)
      status, code = rejected(api(sb, "DeleteJob", "deleteJobRequest", { id = "x" }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidAction", code)
    end)

    it("answers 404 ResourceNotFound for an unknown job id", function()
      local status, code = rejected(api(sb, "GetJob", "getJobRequest",
        { id = "00000000-0000-4000-8000-000000000000" }))
      assert.are.equal(404, status)
      assert.are.equal("ResourceNotFound", code)
    end)
  end)

  describe("validation", function()
    -- A rule at its boundary: the first request passes, the second is refused
    -- with InvalidParameter and a message naming `field`.
    local function boundary(make, field)
      local custom = "boundary-" .. field:gsub("[^%w]", "_"):sub(-40)
      local req_ok, req_bad = make(true), make(false)
      req_ok.customId = req_ok.customId or custom
      req_bad.customId = req_bad.customId or custom
      local status, body = api(sb, "CreateJob", "createJobRequest", req_ok)
      assert.are.equal(200, status, json.encode(body))
      local code, message
      status, code, message = rejected(api(sb, "CreateJob", "createJobRequest", req_bad))
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      assert.matches(field, message, 1, true)
    end

    it("sourceData: 512 Chinese characters pass, 513 do not", function()
      boundary(function(ok) return tts_job(string.rep("你", ok and 512 or 513)) end,
        "createJobRequest.inputs[0].sourceData")
    end)

    it("customId: 63 characters pass, 64 do not", function()
      boundary(function(ok) return tts_job("hi", nil, { customId = string.rep("c", ok and 63 or 64) }) end,
        "createJobRequest.customId")
    end)

    it("outputPrefix: 19 characters pass, 20 do not", function()
      boundary(function(ok)
        local req = tts_job("hi")
        req.outputs[1].smartContentDescriptor.outputPrefix = string.rep("p", ok and 19 or 20)
        return req
      end, "createJobRequest.outputs[0].smartContentDescriptor.outputPrefix")
    end)

    it("totalEpoch: 50 passes, 51 does not; only with type 2", function()
      boundary(function(ok)
        return train_job("epochs_" .. (ok and "ok" or "bad"),
          { source = { contentId = "samples", path = "voice.wav" } }, ok and 50 or 51)
      end, "createJobRequest.outputs[0].smartContentDescriptor.voiceCloning.totalEpoch")
      boundary(function(ok)
        local req = tts_job("hi")
        if not ok then req.outputs[1].smartContentDescriptor.voiceCloning.totalEpoch = 5 end
        return req
      end, "voiceCloning.totalEpoch")
    end)

    it("modelName: letters, digits, _ and fewer than 64 characters", function()
      boundary(function(ok) return tts_job("hi", ok and "my_model_1" or "my-model") end,
        "voiceCloning.modelName")
      boundary(function(ok) return tts_job("hi", string.rep("m", ok and 63 or 64)) end,
        "voiceCloning.modelName")
    end)

    it("inputSelectors must index inputs", function()
      boundary(function(ok)
        local req = tts_job("hi")
        req.outputs[1].inputSelectors = { ok and 0 or 1 }
        return req
      end, "createJobRequest.outputs[0].inputSelectors[0]")
    end)

    it("timeout must be a positive integer", function()
      boundary(function(ok) return tts_job("hi", nil, { timeout = ok and 1 or 0 }) end,
        "createJobRequest.timeout")
      boundary(function(ok) return tts_job("hi", nil, { timeout = ok and 60 or 1.5 }) end,
        "createJobRequest.timeout")
    end)

    it("type 1 needs contentId; type is 1 or 2", function()
      boundary(function(ok)
        local req = tts_job("hi")
        if not ok then req.outputs[1].contentId = nil end
        return req
      end, "createJobRequest.outputs[0].contentId")
      boundary(function(ok)
        local req = tts_job("hi")
        req.outputs[1].smartContentDescriptor.voiceCloning.type = ok and 1 or 3
        return req
      end, "voiceCloning.type")
    end)

    it("an input has exactly one of sourceData, url, source; source needs both fields", function()
      boundary(function(ok)
        local req = tts_job("hi")
        if not ok then req.inputs[1].url = "http://127.0.0.1/x.wav" end
        return req
      end, "createJobRequest.inputs[0]")
      boundary(function(ok)
        local req = tts_job("hi")
        req.inputs[1] = { source = { contentId = "samples", path = ok and "voice.wav" or nil } }
        return req
      end, "createJobRequest.inputs[0].source.path")
    end)

    it("refuses unknown fields, empty arrays and wrong types", function()
      local cases = {
        { '"inputs":[],"outputs":[{"contentId":"o","inputSelectors":[0],'
          .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}}}]',
          "createJobRequest.inputs" },
        { '"inputs":[{"sourceData":"hi"}],"outputs":[]', "createJobRequest.outputs" },
        { '"inputs":[{"sourceData":"hi"}],"outputs":[{"contentId":"o","inputSelectors":[],'
          .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}}}]',
          "createJobRequest.outputs[0].inputSelectors" },
        { '"inputs":[{"sourceData":"hi"}],"outputs":[{"contentId":"o","inputSelectors":[0],'
          .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}}}],"color":1',
          "createJobRequest" },
        { '"inputs":[{"sourceData":"hi"}],"outputs":[{"contentId":"o","inputSelectors":[0],'
          .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}}}],"callback":5',
          "createJobRequest.callback" },
        { '"inputs":[{"sourceData":"\\ud800"}],"outputs":[{"contentId":"o","inputSelectors":[0],'
          .. '"smartContentDescriptor":{"voiceCloning":{"type":1,"modelName":"default"}}}]', "" },
      }
      for _, case in ipairs(cases) do
        local text = '{"action":"CreateJob","secretId":' .. ID_JSON .. ',"secretKey":' .. KEY_JSON .. ','
          .. '"createJobRequest":{' .. case[1] .. ',"customId":"refused"}}'
        local status, code, message = rejected(post_json(sb, "/release/job", text))
        assert.are.equal(400, status, case[1])
        assert.are.equal("InvalidParameter", code)
        assert.matches(case[2], message, 1, true)
      end
      -- Nothing was created by a refused request.
      local _, body = api(sb, "ListJobs", "listJobsRequest", { customId = "refused" })
      assert.are.equal(0, body.listJobsResponse.total)
    end)

    it("ListModels: limit 100 passes, 101 does not; offset >= 0", function()
      local status, body = api(sb, "ListModels", "listModelsRequest", { offset = 0, limit = 100 })
      assert.are.equal(200, status)
      assert.is_number(body.listModelsResponse.total)
      local code, message
      status, code, message = rejected(api(sb, "ListModels", "listModelsRequest", { limit = 101 }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      assert.matches("listModelsRequest.limit", message, 1, true)
      status, code = rejected(api(sb, "ListModels", "listModelsRequest", { limit = 0 }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      status, code, message = rejected(api(sb, "ListModels", "listModelsRequest", { offset = -1 }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      assert.matches("listModelsRequest.offset", message, 1, true)
    end)

    it("GetJob needs a non-empty id; ListJobs a string customId", function()
      local status, code, message = rejected(api(sb, "GetJob", "getJobRequest", { id = "" }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      assert.matches("getJobRequest.id", message, 1, true)
      status, code, message = rejected(api(sb, "ListJobs", "listJobsRequest", { customId = 7 }))
      assert.are.equal(400, status)
      assert.are.equal("InvalidParameter", code)
      assert.matches("listJobsRequest.customId", message, 1, true)
    end)
  end)

  describe("jobs", function()
    it("goes SUBMITTED -> PROCESSING -> COMPLETED and writes a real WAV", function()
      local created = create_job(sb, tts_job("Hello from the sandbox.", "default",
        { customId = "lifecycle" }))
      assert.are.equal(1, created.state)
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", created.id)
      assert.are.equal("lifecycle", created.customId)
      assert.are.same({ { sourceData = "Hello from the sandbox." } }, created.inputs)
      assert.matches("^%d+$", created.timing.createdAt)
      assert.are.equal("0", created.timing.startedAt)
      assert.are.equal("0", created.timing.completedAt)

      local job, seen = wait_job(sb, created.id)
      assert.are.same({ 1, 2, 3 }, seen)
      assert.is_true(tonumber(job.timing.startedAt) >= tonumber(job.timing.createdAt))
      assert.is_true(tonumber(job.timing.completedAt) - tonumber(job.timing.startedAt) >= 200)
      local name = job.outputs[1].smartContentResult.voiceCloning.voiceName
      assert.are.equal(job.id .. ".wav", name)

      local status, wav = request("GET", sb.url .. "/repos/out/" .. name)
      assert.are.equal(200, status)
      assert.are.equal("RIFF", wav:sub(1, 4))
      local copy = data .. "/fetched.wav"
      local f = assert(io.open(copy, "wb"))
      f:write(wav)
      f:close()
      assert.is_true(soxi_duration(copy) > 0)
    end)

    it("names outputs with prefix, destination and index", function()
      local job = create_job(sb, {
        inputs = { { sourceData = "one" }, { sourceData = "two" } },
        outputs = {
          { contentId = "multi", destination = "/a/b/", inputSelectors = { 0 },
            smartContentDescriptor = { outputPrefix = "first_",
              voiceCloning = { type = 1, modelName = "default" } } },
          { contentId = "multi", inputSelectors = { 1, 0 },
            smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } } },
        },
      })
      job = wait_job(sb, job.id)
      assert.are.equal(3, job.state, job.errorMessage)
      local n1 = job.outputs[1].smartContentResult.voiceCloning.voiceName
      local n2 = job.outputs[2].smartContentResult.voiceCloning.voiceName
      assert.are.equal("first_" .. job.id .. "-0.wav", n1)
      assert.are.equal(job.id .. "-1.wav", n2)
      assert.is_true(soxi_duration(data .. "/repos/multi/a/b/" .. n1) > 0)
      assert.is_true(soxi_duration(data .. "/repos/multi/" .. n2) > 0)
    end)

    it("speaks Chinese text with the Mandarin voice", function()
      local job = wait_job(sb, create_job(sb, tts_job("你好，世界")).id)
      assert.are.equal(3, job.state, job.errorMessage)
      local name = job.outputs[1].smartContentResult.voiceCloning.voiceName
      assert.is_true(soxi_duration(data .. "/repos/out/" .. name) > 0.3)
    end)

    it("trains a model from a recording, lists it, and speaks and converts with it", function()
      local job = create_job(sb, train_job("fox_voice",
        { source = { contentId = "samples", path = "voice.wav" } }, 10))
      job = wait_job(sb, job.id)
      assert.are.equal(3, job.state, job.errorMessage)
      assert.are.same({ voiceCloning = { modelName = "fox_voice" } }, job.outputs[1].smartContentResult)
      assert.is_true(tonumber(job.timing.completedAt) - tonumber(job.timing.startedAt) >= 400)

      local _, body = api(sb, "ListModels", "listModelsRequest", { offset = 0, limit = 100 })
      local found
      for _, m in ipairs(body.listModelsResponse.models) do
        if m.name == "fox_voice" then found = m end
      end
      assert.is_table(found)
      assert.matches("^%d+$", found.createdAt)

      -- text to speech with the trained voice
      local tts = wait_job(sb, create_job(sb, tts_job("Now in my own voice.", "fox_voice")).id)
      assert.are.equal(3, tts.state, tts.errorMessage)
      local name = tts.outputs[1].smartContentResult.voiceCloning.voiceName
      assert.is_true(soxi_duration(data .. "/repos/out/" .. name) > 0)

      -- conversion of a recording into the trained voice
      local conv = create_job(sb, {
        inputs = { { source = { contentId = "samples", path = "voice.wav" } } },
        outputs = { { contentId = "converted", inputSelectors = { 0 },
          smartContentDescriptor = { voiceCloning = { type = 1, modelName = "fox_voice" } } } },
      })
      conv = wait_job(sb, conv.id)
      assert.are.equal(3, conv.state, conv.errorMessage)
      name = conv.outputs[1].smartContentResult.voiceCloning.voiceName
      local d = soxi_duration(data .. "/repos/converted/" .. name)
      assert.is_true(d > 1, "converted audio keeps its length")
    end)

    it("fetches a loopback URL input, even one served by the sandbox itself", function()
      local job = create_job(sb, train_job("url_voice",
        { url = sb.url .. "/repos/samples/voice.wav" }))
      job = wait_job(sb, job.id)
      assert.are.equal(3, job.state, job.errorMessage)
    end)

    it("fails a job whose model does not exist (ModelNotFound)", function()
      local job = wait_job(sb, create_job(sb, tts_job("hi", "no_such_model")).id)
      assert.are.equal(4, job.state)
      assert.are.equal("ModelNotFound", job.errorCode)
      assert.matches("no_such_model", job.errorMessage, 1, true)
      assert.is_nil(job.outputs[1].smartContentResult)
    end)

    it("fails training on a taken name, on text input, and on unreadable inputs", function()
      local dup = wait_job(sb, create_job(sb, train_job("default",
        { source = { contentId = "samples", path = "voice.wav" } })).id)
      assert.are.equal("ModelExists", dup.errorCode)
      local text = wait_job(sb, create_job(sb, train_job("from_text", { sourceData = "hello" })).id)
      assert.are.equal("TrainingInputInvalid", text.errorCode)
      local far = wait_job(sb, create_job(sb, train_job("far_away",
        { url = "http://example.com/voice.wav" })).id)
      assert.are.equal("InputUnreadable", far.errorCode)
      local missing = wait_job(sb, create_job(sb, train_job("missing",
        { url = sb.url .. "/repos/samples/missing.wav" })).id)
      assert.are.equal("InputUnreadable", missing.errorCode)
      local escape = wait_job(sb, create_job(sb, train_job("escape",
        { source = { contentId = "samples", path = "../../jobs.jsonl" } })).id)
      assert.are.equal("InputUnreadable", escape.errorCode)
      local not_audio = wait_job(sb, create_job(sb, train_job("not_audio",
        { source = { contentId = "..", path = "jobs.jsonl" } })).id)
      assert.are.equal("InputUnreadable", not_audio.errorCode)
      local _, body = api(sb, "ListModels", "listModelsRequest", { limit = 100 })
      for _, m in ipairs(body.listModelsResponse.models) do
        assert.is_not.equal("far_away", m.name)
        assert.is_not.equal("missing", m.name)
      end
    end)

    it("lists the jobs of a customId in creation order", function()
      local ids = {}
      for i = 1, 3 do ids[i] = create_job(sb, tts_job("n" .. i, nil, { customId = "shared-id" })).id end
      local status, body = api(sb, "ListJobs", "listJobsRequest", { customId = "shared-id" })
      assert.are.equal(200, status)
      assert.are.equal(3, body.listJobsResponse.total)
      for i = 1, 3 do assert.are.equal(ids[i], body.listJobsResponse.jobs[i].id) end
      status, body = post_json(sb, "/release/job", api_body("ListJobs", "listJobsRequest",
        { customId = "nobody" }))
      assert.are.equal(200, status)
      assert.are.equal(0, body.listJobsResponse.total)
      -- an empty list is a JSON array, not an object
      local _, _, _, text = post_json(sb, "/release/job", api_body("ListJobs", "listJobsRequest",
        { customId = "nobody" }))
      assert.matches('"jobs":[]', text, 1, true)
    end)

    it("POSTs the finished job to a loopback callback", function()
      local receiver = assert(socket.bind("127.0.0.1", 0))
      local _, rport = receiver:getsockname()
      receiver:settimeout(15)
      local job = create_job(sb, tts_job("call me back", nil,
        { callback = "http://127.0.0.1:" .. rport .. "/hook?x=1" }))
      local c = assert(receiver:accept())
      c:settimeout(10)
      local line = assert(c:receive("*l"))
      local headers = {}
      while true do
        local h = assert(c:receive("*l"))
        if h == "" then break end
        local k, v = h:match("^([^:]+):%s*(.*)$")
        headers[k:lower()] = v
      end
      local body = assert(c:receive(tonumber(headers["content-length"])))
      c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      c:close()
      receiver:close()
      assert.are.equal("POST /hook?x=1 HTTP/1.1", line)
      assert.matches("^application/json", headers["content-type"])
      local posted = json.decode(body)
      assert.are.equal(job.id, posted.id)
      assert.are.equal(3, posted.state)
      assert.are.same(get_job(sb, job.id), posted)
    end)

    it("shows API requests at /_sandbox/requests with the key masked", function()
      local _, body = request("GET", sb.url .. "/_sandbox/requests")
      local all = json.decode(body)
      assert.is_true(#all > 0)
      local last = all[#all].seq
      -- a key hidden in escapes and in free text is masked as well
      local escaped = KEY_JSON:gsub("%-", "\\u002d")   -- "\u002d" for each "-"
      post_json(sb, "/release/job", '{"action":"ListJobs","secretId":' .. ID_JSON .. ','
        .. '"secretKey":' .. escaped .. ',"listJobsRequest":{"customId":' .. KEY_JSON .. '}}')
      api(sb, "GetJob", "getJobRequest", { id = "x" }, { secret_key = OTHER_WRONG_KEY })
      _, body = request("GET", sb.url .. "/_sandbox/requests?since=" .. last)
      local recent = json.decode(body)
      assert.are.equal(2, #recent)
      assert.are.equal(last + 1, recent[1].seq)
      assert.are.equal(last + 2, recent[2].seq)
      for _, r in ipairs(recent) do
        assert.are.equal("POST", r.method)
        assert.are.equal("/release/job", r.path)
        assert.are.equal("application/json", r.headers["content-type"])
        assert.is_nil(r.body:find(SECRET_KEY, 1, true))
        assert.is_nil(r.body:find(escaped:sub(2, -2), 1, true))
        assert.is_nil(r.body:find(OTHER_WRONG_KEY, 1, true))
        assert.matches('"secretKey":"***"', r.body, 1, true)
        assert.matches('"secretId":' .. ID_JSON, r.body, 1, true)
      end
      assert.is_nil(body:find(SECRET_KEY, 1, true))
      -- and the whole log never holds the key
      _, body = request("GET", sb.url .. "/_sandbox/requests")
      assert.is_nil(body:find(SECRET_KEY, 1, true))
      local log = read_file(data .. ".log") or ""
      assert.is_nil(log:find(SECRET_KEY, 1, true))
      assert.is_nil(log:find(OTHER_WRONG_KEY, 1, true))
    end)
  end)

  describe("timing", function()
    local slow, slow_data

    setup(function()
      slow_data = tmpdir()
      slow = start_sandbox(slow_data, "--queue-seconds 0.05 --work-seconds 3 --latency 300")
    end)

    teardown(function()
      stop_sandbox(slow)
      sh("rm -rf " .. q(slow_data) .. " " .. q(slow_data .. ".log"))
    end)

    it("sets a job past its timeout to ERROR (Timeout)", function()
      local started = socket.gettime()
      local job = create_job(slow, tts_job("too slow", nil, { timeout = 1 }))
      local other = create_job(slow, tts_job("no timeout"))
      job = wait_job(slow, job.id, 10)
      assert.are.equal(4, job.state)
      assert.are.equal("Timeout", job.errorCode)
      assert.is_string(job.errorMessage)
      assert.are.equal(1, job.timeout)
      assert.is_true(socket.gettime() - started < 2.5)
      assert.are.equal(2, get_job(slow, other.id).state)
    end)

    it("delays answers with a timer, serving other clients meanwhile", function()
      local conns = {}
      for i = 1, 10 do conns[i] = raw_connect(slow) end
      local t0 = socket.gettime()
      for _, c in ipairs(conns) do raw_send(c, "GET", "/_sandbox/health") end
      for _, c in ipairs(conns) do
        assert.are.equal(200, (raw_read(c)))
        c:close()
      end
      local elapsed = socket.gettime() - t0
      assert.is_true(elapsed >= 0.29, "answers come after the latency")
      assert.is_true(elapsed < 1.5, "latency is not served one client at a time: " .. elapsed)
    end)
  end)

  describe("module API", function()
    local sandbox = require "voiceclone.sandbox"

    it("refuses bad options with nil, err", function()
      for _, opts in ipairs({ { port = -1 }, { port = 70000 }, { port = 1.5 }, { data = "" },
                              { latency_ms = -5 }, { secret_key = "" }, { colour = "red" },
                              { faults = "boom=0.5" }, { faults = "503=0.7,429=0.7" },
                              { fault_seed = -1 }, { fault_seed = 1.5 }, { slow_seconds = -1 } }) do
        local s, err = sandbox.new(opts)
        assert.is_nil(s)
        assert.is_string(err)
      end
    end)

    it("serves from step() in this process, reports a taken port, closes twice", function()
      local dir = tmpdir()
      finally(function() sh("rm -rf " .. q(dir)) end)
      local server = assert(sandbox.new({ port = 0, data = dir, queue_seconds = 0, work_seconds = 0 }))
      assert.are.equal(server, assert(server:start()))
      assert.matches("^http://127%.0%.0%.1:%d+$", server.url)
      assert.is_nil((server:start()))

      local other = assert(sandbox.new({ port = server.port, data = dir }))
      local ok, err = other:start()
      assert.is_nil(ok)
      assert.matches(tostring(server.port), err, 1, true)

      local c = assert(socket.connect("127.0.0.1", server.port))
      c:settimeout(0)
      assert(c:send("GET /_sandbox/health HTTP/1.1\r\nHost: x\r\n\r\n"))
      local got = ""
      local deadline = socket.gettime() + 5
      while not got:find('{"ok":true}', 1, true) and socket.gettime() < deadline do
        server:step(0.05)
        local data, _, partial = c:receive(4096)
        got = got .. (data or partial or "")
      end
      c:close()
      assert.matches("^HTTP/1%.1 200 OK", got)
      server:close()
      server:close()
      assert.is_nil((server:step(0)))
    end)
  end)

  describe("persistence", function()
    it("keeps jobs and models across a restart, and resumes unfinished jobs", function()
      local dir = tmpdir()
      finally(function() sh("rm -rf " .. q(dir) .. " " .. q(dir .. ".log")) end)
      sh("mkdir -p " .. q(dir .. "/repos/samples") .. " && cp "
        .. q(data .. "/repos/samples/voice.wav") .. " " .. q(dir .. "/repos/samples/"))

      local first = start_sandbox(dir, "--queue-seconds 0.05 --work-seconds 0.1")
      local trained = wait_job(first, create_job(first, train_job("kept_voice",
        { source = { contentId = "samples", path = "voice.wav" } })).id)
      assert.are.equal(3, trained.state, trained.errorMessage)
      local done = wait_job(first, create_job(first, tts_job("kept", "kept_voice",
        { customId = "kept" })).id)
      assert.are.equal(3, done.state, done.errorMessage)
      stop_sandbox(first)

      -- A sandbox that queues for long: its job is still SUBMITTED when stopped.
      local second = start_sandbox(dir, "--queue-seconds 60 --work-seconds 0.1")
      local pending = create_job(second, tts_job("pending", "kept_voice", { customId = "kept" }))
      socket.sleep(0.2)
      assert.are.equal(1, get_job(second, pending.id).state)
      stop_sandbox(second)

      local third = start_sandbox(dir, "--queue-seconds 0.05 --work-seconds 0.1")
      finally(function() stop_sandbox(third) end)
      assert.are.same(done, get_job(third, done.id))
      assert.are.same(trained, get_job(third, trained.id))
      local resumed = wait_job(third, pending.id)
      assert.are.equal(3, resumed.state, resumed.errorMessage)
      local _, body = api(third, "ListJobs", "listJobsRequest", { customId = "kept" })
      assert.are.equal(2, body.listJobsResponse.total)
      assert.are.equal(done.id, body.listJobsResponse.jobs[1].id)
      _, body = api(third, "ListModels", "listModelsRequest", {})
      assert.are.equal(1, body.listModelsResponse.total)
      assert.are.equal("kept_voice", body.listModelsResponse.models[1].name)
      -- the journal was compacted on load: one line per job
      local lines = 0
      for _ in (read_file(dir .. "/jobs.jsonl") or ""):gmatch("[^\n]+") do lines = lines + 1 end
      assert.is_true(lines <= 3 + 3, "journal has " .. lines .. " lines")
    end)

    it("pages ListModels by offset and limit, sorted by creation", function()
      local dir = tmpdir()
      finally(function() sh("rm -rf " .. q(dir) .. " " .. q(dir .. ".log")) end)
      sh("mkdir -p " .. q(dir .. "/repos/samples") .. " && cp "
        .. q(data .. "/repos/samples/voice.wav") .. " " .. q(dir .. "/repos/samples/"))
      local box = start_sandbox(dir, "--queue-seconds 0 --work-seconds 0")
      finally(function() stop_sandbox(box) end)
      local _, body = api(box, "ListModels", "listModelsRequest", {})
      assert.are.equal(0, body.listModelsResponse.total)
      for _, name in ipairs({ "m_a", "m_b", "m_c" }) do
        local job = wait_job(box, create_job(box, train_job(name,
          { source = { contentId = "samples", path = "voice.wav" } })).id)
        assert.are.equal(3, job.state, job.errorMessage)
      end
      local _, _, _, text = post_json(box, "/release/music_model",
        api_body("ListModels", "listModelsRequest", { offset = 5, limit = 2 }))
      assert.matches('"models":[]', text, 1, true)
      _, body = api(box, "ListModels", "listModelsRequest", { offset = 1, limit = 1 })
      assert.are.equal(3, body.listModelsResponse.total)
      assert.are.equal(1, #body.listModelsResponse.models)
      assert.are.equal("m_b", body.listModelsResponse.models[1].name)
      _, body = api(box, "ListModels", "listModelsRequest")
      assert.are.equal(3, #body.listModelsResponse.models)
    end)
  end)
end)

describe("voiceclone sandbox --audio tone", function()
  it("completes a generate job with a valid WAV: a tone at the model's pitch", function()
    local dir = tmpdir()
    finally(function() sh("rm -rf " .. q(dir) .. " " .. q(dir .. ".log")) end)
    local box = start_sandbox(dir, "--audio tone --queue-seconds 0.05 --work-seconds 0.1")
    finally(function() stop_sandbox(box) end)
    local created = create_job(box, {
      inputs = { { sourceData = "one" }, { sourceData = "two" } },
      outputs = { {
        contentId = "tones", destination = "/load/test", inputSelectors = { 0, 1 },
        smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } },
      } },
    })
    local job, seen = wait_job(box, created.id)
    assert.are.equal(3, job.state, job.errorMessage)
    assert.are.same({ 1, 2, 3 }, seen)
    assert.is_true(tonumber(job.timing.completedAt) - tonumber(job.timing.startedAt) >= 100)
    local name = job.outputs[1].smartContentResult.voiceCloning.voiceName
    assert.are.equal(job.id .. ".wav", name)

    local status, wav = request("GET", box.url .. "/repos/tones/load/test/" .. name)
    assert.are.equal(200, status)
    assert.are.equal("RIFF", wav:sub(1, 4))
    assert.are.equal("WAVE", wav:sub(9, 12))
    local path = dir .. "/repos/tones/load/test/" .. name
    local seconds = soxi_duration(path)
    assert.is_true(seconds > 0.4 and seconds < 1, "duration " .. tostring(seconds))
    local raw = dir .. "/tone.raw"
    assert(sh("sox " .. q(path) .. " -t raw -r 8000 -b 16 -e signed -c 1 " .. q(raw)))
    local hz = require("voiceclone.sandbox.pitch").estimate(read_file(raw))
    assert.is_true(math.abs(hz - 101) < 5, "pitch " .. tostring(hz))
  end)
end)
