--- lua-voiceclone: a client for the voice cloning service.
--
--   local voiceclone = require "voiceclone"
--   local client = assert(voiceclone.new())          -- credentials from the environment
--   local job = assert(client:synthesize{ text = "Hello", content_id = "repo" })
--   assert(job:wait())
--
-- The C core (voiceclone.core) does the transport, the checks and the
-- userdata; this layer adds the workflows on top of the same objects.
local core = require "voiceclone.core"
local retry = require "voiceclone.retry"
require "voiceclone.client"   -- the methods of Client
require "voiceclone.job"      -- the methods of Job
require "voiceclone.model"    -- the methods of Model

local voiceclone = {
  _VERSION = core._VERSION,
  -- The published endpoint of the service.
  DEFAULT_ENDPOINT = "https://service-mqk0mc83-1257411467.bj.apigw.tencentcs.com",
  state = core.state,
  type = core.type,
  error = core.error,
  -- A JSON null inside an array of the service's data (elsewhere a null
  -- field is simply absent).
  null = core.null,
}

local function env(name)
  local value = os.getenv(name)
  if value ~= nil and value ~= "" then return value end
end

--- A client. Options left out come from VOICECLONE_SECRET_ID,
-- VOICECLONE_SECRET_KEY and VOICECLONE_ENDPOINT, else the published endpoint;
-- gateway (the API gateway's key pair) from VOICECLONE_GATEWAY_ID,
-- VOICECLONE_GATEWAY_KEY and VOICECLONE_GATEWAY_SOURCE when either of the
-- first two is set (gateway = false: none, whatever the environment says).
-- The C core checks its own options (timeouts, limits, the endpoint); the
-- retry policy (voiceclone/retry.lua) and on_request stay on this side.
-- Returns the client, or nil and an "invalid" error.
function voiceclone.new(options)
  if options ~= nil and type(options) ~= "table" then
    error(("bad argument #1 to 'new' (table expected, got %s)"):format(type(options)), 2)
  end
  local settings = {}
  for key, value in pairs(options or {}) do settings[key] = value end
  settings.secret_id = settings.secret_id or env "VOICECLONE_SECRET_ID"
  settings.secret_key = settings.secret_key or env "VOICECLONE_SECRET_KEY"
  settings.endpoint = settings.endpoint or env "VOICECLONE_ENDPOINT" or voiceclone.DEFAULT_ENDPOINT
  if settings.gateway == nil and (env "VOICECLONE_GATEWAY_ID" or env "VOICECLONE_GATEWAY_KEY") then
    settings.gateway = { secret_id = env "VOICECLONE_GATEWAY_ID", secret_key = env "VOICECLONE_GATEWAY_KEY",
                         source = env "VOICECLONE_GATEWAY_SOURCE" }
  elseif settings.gateway == false then
    settings.gateway = nil
  end
  local policy, err = retry.policy(settings.retry)
  if not policy then return nil, err end
  local on_request = settings.on_request
  if on_request ~= nil and type(on_request) ~= "function" then
    error(("bad option 'on_request' to 'new' (function expected, got %s)"):format(type(on_request)), 2)
  end
  settings.retry, settings.on_request = nil, nil
  local client, cerr = core.new(settings)
  if not client then return nil, cerr end
  local state = core.client_table(client)
  state.retry, state.on_request = policy, on_request
  return client
end

--- The Job a callback POSTs, from its raw body. The body is not signed:
-- confirm it with job:refresh() (pass the client) before acting on it.
function voiceclone.job_from_callback(body, client)
  return core.job_from_json(body, client)
end

--- For hosts with their own HTTP server: a function(body) -> status, reason
-- that confirms the job with GetJob and calls on_job(job) once it is final.
voiceclone.callback_handler = require("voiceclone.callbacks").handler

return voiceclone
