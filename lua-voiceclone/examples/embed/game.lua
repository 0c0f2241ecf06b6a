-- The Lua side of examples/embed/host.c: voices JOBS lines of a game's
-- script as tasks, and returns the function the host calls once a frame and
-- the budget that function gives client:step() (the host checks that no
-- frame costs more CPU than that).
local endpoint, secret_id, secret_key, jobs = ...
local voiceclone = require "voiceclone"

local client = assert(voiceclone.new { endpoint = endpoint, secret_id = secret_id,
                                       secret_key = secret_key })
local done, failed = 0, 0

client:on_error(function(err)
  failed = failed + 1
  io.stderr:write("a line failed: ", tostring(err), "\n")
end)

for i = 1, tonumber(jobs) do
  client:spawn(function()
    local job = assert(client:synthesize { text = ("Line %d: the bridge is out, take the ferry."):format(i),
                                           content_id = "game", destination = "/voice",
                                           custom_id = "embed-example" })
    assert(job:wait { interval = 0.25 })
    done = done + 1
  end)
end

local BUDGET = 0.004   -- at most 4 ms of a 16.7 ms frame

return function()
  return client:step(BUDGET), done, failed
end, BUDGET
