-- Through the fault-injecting sandbox (voiceclone sandbox --faults): every
-- fault kind is ridden out by the retry policy, and a create whose answer is
-- lost never leaves a second job behind.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"
local http = require "socket.http"

local function jobs_held(sandbox)
  local body = assert(http.request(sandbox.url .. "/_sandbox/stats"))
  return helpers.decode(body).jobs
end

local function speech(i)
  return {
    inputs = { { sourceData = ("Line %d."):format(i) } },
    outputs = { { contentId = "once", inputSelectors = { 0 },
                  smartContentDescriptor = { voiceCloning = { type = 1, modelName = "default" } } } },
  }
end

local function client_for(sandbox, options)
  local settings = { timeout = 2, max_in_flight = 64,
                     retry = { attempts = 10, base_delay = 0.01, max_delay = 0.1 } }
  for k, v in pairs(options or {}) do settings[k] = v end
  return helpers.client(sandbox, settings)
end

describe("against the fault sandbox", function()
  for _, kind in ipairs { "503", "429", "drop", "reset", "slow", "truncate", "html" } do
    it(("rides out %s faults: every call succeeds, each create once"):format(kind), function()
      local sandbox = helpers.start_sandbox { "--audio tone", "--faults " .. kind .. "=0.3",
                                              "--fault-seed 11", "--slow-seconds 1" }
      local retried = 0
      local client = client_for(sandbox, { timeout = 0.5, on_request = function(info)
        if info.attempt > 1 then retried = retried + 1 end
      end })
      for i = 1, 20 do
        local job = assert(client:create_job(speech(i)))
        assert(client:get_job(job.id))
      end
      assert(client:list_models())
      local held = jobs_held(sandbox)
      sandbox.stop()
      assert.equal(20, held)
      assert.is_true(retried > 0, "no fault was met")
    end)
  end

  it("1,000 creates with drop=0.2 leave exactly 1,000 jobs, one per customId", function()
    local sandbox = helpers.start_sandbox { "--audio tone", "--faults drop=0.2", "--fault-seed 5" }
    local client = client_for(sandbox)
    local jobs, next_line = {}, 0
    for _ = 1, 64 do
      client:spawn(function()
        while next_line < 1000 do
          next_line = next_line + 1
          local i = next_line
          jobs[i] = assert(client:create_job(speech(i)))
        end
      end)
    end
    assert(client:run(300))
    local ids = {}
    for i = 1, 1000 do
      assert.is_nil(ids[jobs[i].id], "one job returned twice")
      ids[jobs[i].id] = true
    end
    local held = jobs_held(sandbox)
    -- and each customId has one job on the service
    local seen = 0
    for i = 1, 1000, 37 do
      local list = assert(client:list_jobs(jobs[i].customId))
      assert.equal(1, #list)
      seen = seen + 1
    end
    sandbox.stop()
    assert.equal(1000, held)
    assert.is_true(seen > 20)
  end)
end)
