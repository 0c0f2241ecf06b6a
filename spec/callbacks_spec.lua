-- voiceclone.callbacks: a callback is never trusted on its own. The handler
-- acts only on the job GetJob confirms, once final, and once per job;
-- listen serves the sandbox's real POSTs. Against real sandboxes, with
-- the GetJob checked in the request log.
local voiceclone = require "voiceclone"
local callbacks = require "voiceclone.callbacks"
local helpers = require "support.helpers"
local socket = require "socket"
local cjson = require("cjson.safe").new()

-- The GetJobs on the wire since `before`, by id.
local function get_jobs(sandbox, before)
  local ids = {}
  for _, r in ipairs(helpers.requests(sandbox, before)) do
    if r.json and r.json.action == "GetJob" then ids[#ids + 1] = r.json.getJobRequest.id end
  end
  return ids
end

-- The body a forger would POST: a job claiming COMPLETED.
local function forged(job_id)
  return cjson.encode {
    id = job_id, state = 3, customId = "forged",
    inputs = { { sourceData = "never said" } },
    outputs = { { contentId = "repo", inputSelectors = { 0 },
                  smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } },
                  smartContentResult = { voiceCloning = { voiceName = "forged.wav" } } } },
    timing = { createdAt = "1", startedAt = "2", completedAt = "3" },
  }
end

local function recorder()
  local calls = {}
  return calls, function(job)
    calls[#calls + 1] = { id = job.id, status = job:status(), result = job:result() }
  end
end

-- Runs curl in the background; returns a function giving its HTTP status
-- once it has ended (nil before).
local function curl(args)
  local out = helpers.tmpname()
  helpers.run(("(curl -s -o /dev/null --max-time 10 -w '%%{http_code}' %s >'%s.tmp'; mv '%s.tmp' '%s') &")
    :format(args, out, out, out))
  return function()
    local text = helpers.read_file(out)
    return text and tonumber(text)
  end
end

describe("callbacks.handler", function()
  local sandbox, slow, client, slow_client

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    slow = helpers.start_sandbox { "--queue-seconds 60" }   -- its jobs stay SUBMITTED
    client = helpers.client(sandbox)
    slow_client = helpers.client(slow)
  end)
  lazy_teardown(function()
    sandbox.stop()
    slow.stop()
  end)

  it("acts once on a real callback, with the job GetJob confirmed", function()
    local receiver = helpers.callback_receiver()
    local job = assert(client:synthesize { text = "call me back", content_id = "repo",
                                            callback = receiver.url })
    local body = assert(receiver.wait(15))
    receiver.close()
    local calls, on_job = recorder()
    local handler = callbacks.handler(client, on_job)
    local before = helpers.last_seq(sandbox)
    local status, reason, confirmed = handler(body)
    assert.equal(200, status)
    assert.is_string(reason)
    assert.equal(1, #calls)
    assert.equal(job.id, calls[1].id)
    assert.equal("COMPLETED", calls[1].status)
    assert.matches("%.wav$", calls[1].result.path)
    assert.equal(job.id, confirmed.id)
    assert.same({ job.id }, get_jobs(sandbox, before))
    -- delivered again: answered, not acted on twice
    assert.equal(200, (handler(body)))
    assert.equal(1, #calls)
  end)

  it("does not act on a forged COMPLETED for a job the service has not finished", function()
    local job = assert(slow_client:synthesize { text = "not yet", content_id = "repo" })
    local calls, on_job = recorder()
    local handler = callbacks.handler(slow_client, on_job)
    local before = helpers.last_seq(slow)
    local status = handler(forged(job.id))
    assert.equal(409, status)
    assert.equal(0, #calls)
    assert.same({ job.id }, get_jobs(slow, before))
    assert.equal("SUBMITTED", assert(slow_client:get_job(job.id)):status())
  end)

  it("does not act on a job the service does not know", function()
    local calls, on_job = recorder()
    local handler = callbacks.handler(client, on_job)
    local status = handler(forged("00000000-0000-4000-8000-000000000000"))
    assert.equal(502, status)
    assert.equal(0, #calls)
  end)

  it("answers 400 to what is not a job and 413 to an oversized body, sending nothing", function()
    local calls, on_job = recorder()
    local handler = callbacks.handler(client, on_job, { max_body = 2000 })
    local before = helpers.last_seq(sandbox)
    assert.equal(400, (handler("<html>nope</html>")))
    assert.equal(400, (handler("")))
    assert.equal(400, (handler('{"hello":"world"}')))
    assert.equal(400, (handler('{"id":"x","state":"COMPLETED"}')))
    assert.equal(413, (handler(forged("x") .. (" "):rep(2000))))
    assert.equal(413, (callbacks.handler(client, on_job)(("x"):rep(1024 * 1024 + 1))))
    assert.equal(0, #calls)
    assert.same({}, helpers.requests(sandbox, before))
  end)

  it("answers 503 when GetJob cannot be made, so the service retries", function()
    local probe = assert(socket.bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()                                     -- nobody listens there now
    local offline = assert(voiceclone.new { endpoint = "http://127.0.0.1:" .. port,
                                            secret_id = "a", secret_key = helpers.SECRET_KEY, timeout = 2 })
    local calls, on_job = recorder()
    local status = callbacks.handler(offline, on_job)(forged("00000000-0000-4000-8000-000000000001"))
    assert.equal(503, status)
    assert.equal(0, #calls)
    offline:close()
  end)

  it("answers 500 when on_job raises, and acts again on the retry", function()
    local receiver = helpers.callback_receiver()
    assert(client:synthesize { text = "fail once", content_id = "repo", callback = receiver.url })
    local body = assert(receiver.wait(15))
    receiver.close()
    local attempts, errors = 0, {}
    local handler = callbacks.handler(client, function()
      attempts = attempts + 1
      if attempts == 1 then error("on_job broke") end
    end, { on_error = function(err) errors[#errors + 1] = err end })
    assert.equal(500, (handler(body)))
    assert.equal(1, #errors)
    assert.truthy(tostring(errors[1]):find("on_job broke", 1, true))
    assert.equal(200, (handler(body)))
    assert.equal(2, attempts)
    assert.equal(200, (handler(body)))
    assert.equal(2, attempts)
  end)

  it("confirms inside a task by yielding", function()
    local receiver = helpers.callback_receiver()
    assert(client:synthesize { text = "in a task", content_id = "repo", callback = receiver.url })
    local body = assert(receiver.wait(15))
    receiver.close()
    local calls, on_job = recorder()
    local handler = callbacks.handler(client, on_job)
    local task = client:spawn(handler, body)
    assert.equal(1, client:step())                    -- gave way at its GetJob
    assert(client:run(10))
    assert.equal(200, task.results[1])
    assert.equal(1, #calls)
  end)

  it("raises for wrong types", function()
    assert.has_error(function() callbacks.handler(nil, function() end) end)
    assert.has_error(function() callbacks.handler(client, "on_job") end)
    assert.has_error(function() callbacks.handler(client, function() end, { max_body = "1M" }) end)
    assert.has_error(function() callbacks.handler(client, function() end)(nil) end)
  end)
end)

describe("callbacks.listen", function()
  local sandbox, slow, client, slow_client

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    slow = helpers.start_sandbox { "--queue-seconds 60" }
    client = helpers.client(sandbox)
    slow_client = helpers.client(slow)
  end)
  lazy_teardown(function()
    sandbox.stop()
    slow.stop()
  end)

  it("receives the sandbox's POST for real and acts on the confirmed job", function()
    local calls, on_job = recorder()
    local job, url, before
    local acted, why = callbacks.listen {
      client = client, once = true, duration = 30, on_job = on_job,
      on_listen = function(u)
        url = u
        before = helpers.last_seq(sandbox)
        -- over 1024 bytes: curl asks to "Expect: 100-continue" first
        job = assert(client:synthesize { text = ("Listen to this. "):rep(30), content_id = "repo",
                                         callback = u })
      end,
    }
    assert.equal(1, acted)
    assert.equal("once", why)
    assert.matches("^http://127%.0%.0%.1:%d+/$", url)
    assert.equal(1, #calls)
    assert.equal(job.id, calls[1].id)
    assert.equal("COMPLETED", calls[1].status)
    local ids = get_jobs(sandbox, before)
    assert.equal(job.id, ids[#ids])                   -- confirmed by GetJob
  end)

  it("stops when on_job returns false, or when told to", function()
    local acted, why = callbacks.listen {
      client = client, duration = 30,
      on_job = function() return false end,
      on_listen = function(u)
        assert(client:synthesize { text = "stop", content_id = "repo", callback = u })
      end,
    }
    assert.equal(1, acted)
    assert.equal("on_job", why)
    acted, why = callbacks.listen {
      client = client, duration = 30, on_job = function() end,
      on_listen = function(_, server) server:stop() end,
    }
    assert.equal(0, acted)
    assert.equal("stopped", why)
  end)

  it("answers forged and malformed requests without acting, and is not stalled by a silent one", function()
    local job = assert(slow_client:synthesize { text = "not yet", content_id = "repo" })
    local body = helpers.tmpname()
    local f = assert(io.open(body, "wb"))
    f:write(forged(job.id))
    f:close()
    local calls, on_job = recorder()
    local silent, statuses = nil, {}
    local acted, why = callbacks.listen {
      client = slow_client, on_job = on_job, duration = 2, conn_timeout = 0.5, max_body = 4096,
      on_listen = function(url)
        silent = assert(socket.connect("127.0.0.1", tonumber(url:match(":(%d+)/$"))))
        assert(silent:send("POST / HTTP/1.1\r\nContent-Length: 10\r\n"))   -- and nothing more
        statuses.forged = curl(("-H 'Content-Type: application/json' --data-binary @'%s' '%s'")
          :format(body, url))
        statuses.not_json = curl(("--data-binary 'hello' '%s'"):format(url))
        statuses.get = curl(("'%s'"):format(url))
        statuses.huge = curl(("-H 'Content-Length: 5000' --data-binary @/dev/null '%s'"):format(url))
      end,
    }
    assert.equal(0, acted)
    assert.equal("duration", why)
    assert.equal(0, #calls)
    assert.equal(409, statuses.forged())
    assert.equal(400, statuses.not_json())
    assert.equal(405, statuses.get())
    assert.equal(413, statuses.huge())
    silent:settimeout(1)
    assert.matches("^HTTP/1%.1 408", silent:receive("*l"))
    silent:close()
    os.remove(body)
  end)

  it("gives a 'network' error when it cannot listen, and raises for wrong types", function()
    local taken = assert(socket.bind("127.0.0.1", 0))
    local _, port = taken:getsockname()
    local acted, err = callbacks.listen { client = client, port = tonumber(port), on_job = function() end }
    assert.is_nil(acted)
    assert.equal("network", err.kind)
    taken:close()
    assert.has_error(function() callbacks.listen { client = client } end)
    assert.has_error(function() callbacks.listen { on_job = function() end } end)
    assert.has_error(function() callbacks.listen { client = client, on_job = print, port = "80" } end)
  end)
end)
