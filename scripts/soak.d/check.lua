-- The soak's verdict: asks the sandbox (through a client whose retries see
-- through the faults) for every customId the phases used, and counts jobs
-- lost (none for a customId) and duplicated (more than one).
--   lua scripts/soak.d/check.lua ENDPOINT SPEC...   (SPEC: PREFIX:COUNT or batch:ID:COUNT)
local endpoint = ...
local voiceclone = require "voiceclone"
local batch = require "voiceclone.batch"

local client = assert(voiceclone.new {
  endpoint = endpoint, secret_id = os.getenv("SOAK_SECRET_ID"), secret_key = os.getenv("SOAK_SECRET_KEY"),
  timeout = 2, max_in_flight = 64, retry = { attempts = 20, base_delay = 0.05, max_delay = 0.5 },
})

local ids = {}
for i = 2, select("#", ...) do
  local spec = select(i, ...)
  local batch_id, batch_count = spec:match("^batch:(.+):(%d+)$")
  if batch_id then
    for n = 1, tonumber(batch_count) do ids[#ids + 1] = batch.custom_id(batch_id, tostring(n)) end
  else
    local prefix, count = spec:match("^(.+):(%d+)$")
    for n = 1, tonumber(count) do ids[#ids + 1] = ("%s-%d"):format(prefix, n) end
  end
end

local lost, duplicated, unknown = 0, 0, 0
local next_id = 0
for _ = 1, 64 do
  client:spawn(function()
    while next_id < #ids do
      next_id = next_id + 1
      local id = ids[next_id]
      local jobs, err = client:list_jobs(id)
      if not jobs then
        unknown = unknown + 1
        io.stderr:write("check: ", id, ": ", tostring(err), "\n")
      elseif #jobs == 0 then
        lost = lost + 1
        io.stderr:write("check: lost ", id, "\n")
      elseif #jobs > 1 then
        duplicated = duplicated + #jobs - 1
        io.stderr:write(("check: %s has %d jobs\n"):format(id, #jobs))
      end
    end
  end)
end
assert(client:run())
print(("check: %d customIds, %d lost, %d duplicated, %d unknown"):format(#ids, lost, duplicated, unknown))
