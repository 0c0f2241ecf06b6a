-- Row 1 and 2 of scripts/bench: N sequential GetJob round trips.
--   lua5.4 getjob.lua vc|luasocket N ENDPOINT      (POSTs ENDPOINT/release/job)
-- One warm-up call first (not counted), then N timed calls; prints
-- requests=, seconds=, rps=. Under callgrind, N=0 measures what start-up
-- and the warm-up cost, so (total(N) - total(0)) / N is the cost of a call.
local lib = dofile(((arg[0]:match("^(.*)/[^/]*$")) or ".") .. "/lib.lua")

local mode, n, url = arg[1], tonumber(arg[2]), arg[3]
assert(mode and n and url, "usage: getjob.lua vc|luasocket N URL")

local get_job, now

if mode == "vc" then
  -- voiceclone: blocking calls on one client (one kept-alive connection).
  local voiceclone = require "voiceclone"
  now = require("voiceclone.core").now
  local client = assert(voiceclone.new { endpoint = url, secret_id = lib.SECRET_ID,
                                         secret_key = lib.SECRET_KEY })
  get_job = function(id)
    local job, err = client:get_job(id)
    if not job then error(tostring(err)) end
    return job.state
  end
elseif mode == "luasocket" then
  -- What a Lua user writes today: cjson to encode, socket.http + ltn12 to
  -- POST (a new connection per request: socket.http does not keep alive),
  -- cjson to decode.
  local http = require "socket.http"
  local ltn12 = require "ltn12"
  local cjson = require "cjson"
  now = require("socket").gettime
  get_job = function(id)
    local body = cjson.encode { action = "GetJob", secretId = lib.SECRET_ID,
                                secretKey = lib.SECRET_KEY, getJobRequest = { id = id } }
    local chunks = {}
    local _, status = http.request {
      url = url .. "/release/job", method = "POST",
      headers = { ["content-type"] = "application/json", ["content-length"] = #body },
      source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
    }
    if status ~= 200 then error("GetJob answered " .. tostring(status)) end
    local response = cjson.decode(table.concat(chunks))
    return response.getJobResponse.job.state
  end
else
  error("unknown mode " .. mode)
end

assert(get_job(lib.JOB_ID) == 3, "the fixed answer is not a COMPLETED job")
local id = lib.JOB_ID
local t0 = now()
for _ = 1, n do get_job(id) end
local seconds = now() - t0
lib.report { requests = n, seconds = seconds, rps = n > 0 and n / seconds or 0 }
