--- voiceclone sandbox: the local emulator of the service, on the command line.
local output = require "voiceclone.cli.output"

-- Writes the port to path once listening: temp name + rename, so that a
-- reader never sees a partial file.
local function write_port_file(path, port)
  return require("voiceclone.fs").write_atomic(path, tostring(port) .. "\n")
end

local function stderr_log(line)
  io.stderr:write(os.date("%H:%M:%S "), "sandbox: ", line, "\n")
  io.stderr:flush()
end

-- The options, checked, as voiceclone.sandbox.new takes them; or nil and a
-- usage message.
local function settings_of(o)
  if o.port and o.port > 65535 then return nil, ("--port must be 0..65535 (got %d)"):format(o.port) end
  if o.audio and o.audio ~= "speech" and o.audio ~= "tone" then
    return nil, ("--audio must be speech or tone (got %q)"):format(o.audio)
  end
  local gateway_keys, gerr = require("voiceclone.sandbox.gateway").parse_keys(o["gateway-key"] or {})
  if not gateway_keys then return nil, gerr end
  local rates
  if o.faults then
    local err
    rates, err = require("voiceclone.sandbox.faults").parse(o.faults)
    if not rates then return nil, err end
  end
  return {
    host = o.host, port = o.port, data = o.data, latency_ms = o.latency,
    queue_seconds = o["queue-seconds"], work_seconds = o["work-seconds"],
    secret_id = o["secret-id"], secret_key = o["secret-key"],
    any_credentials = o["any-credentials"], log = o.verbose and stderr_log or nil, audio = o.audio,
    faults = rates, fault_seed = o["fault-seed"], slow_seconds = o["slow-seconds"],
    fault_log = rates and stderr_log or nil,   -- faults are logged, --verbose or not
    gateway_keys = gateway_keys,
  }
end

-- Runs the server until SIGINT or SIGTERM, through libuv's signal watchers
-- (Lua's own SIGINT hook would fire inside a luv callback and end the
-- process there). true, or nil and the error that stopped it.
local function serve(server)
  local uv = require "luv"
  local signals = {}
  for _, name in ipairs({ "sigint", "sigterm" }) do
    local watcher = uv.new_signal()
    watcher:start(name, function() server:stop() end)
    signals[#signals + 1] = watcher
  end
  local ok, err = pcall(server.run, server)
  server:close()
  for _, watcher in ipairs(signals) do watcher:close() end
  if not ok and not tostring(err):find("interrupted", 1, true) then return nil, err end
  return true
end

return {
  summary = "run a local emulator of the voice cloning service",
  usage = [[
usage: voiceclone sandbox [options]

Runs a local emulator of the voice cloning service: the contract it keeps
is described in voiceclone(1) (SANDBOX) and in doc/service.md of the source.
It ships a sample recording to train with: --source samples:me.wav.
When ready it prints one line on stdout:
  voiceclone sandbox listening on http://HOST:PORT data=DIR pid=PID

options:
  --host HOST           address to listen on (default 127.0.0.1)
  --port N              port (default 8600; 0 picks a free port)
  --port-file PATH      write the port number to PATH once listening
  --data DIR            data directory: jobs, models, repositories
                        (default ./sandbox-data; created if missing)
  --latency MS          delay every HTTP answer by MS milliseconds (default 0)
  --queue-seconds S     time a job stays SUBMITTED (default 0.2)
  --work-seconds S      minimum time a job stays PROCESSING (default 0.5;
                        training jobs twice that)
  --audio MODE          how outputs are made: speech (default) speaks text with
                        espeak-ng and converts recordings with sox; tone writes
                        each output as a short WAV tone at the model's pitch
                        straight from Lua, no subprocess (for load tests: the
                        files, states, timings and callbacks are the same)
  --secret-id ID        accepted secretId (default $VOICECLONE_SECRET_ID or sandbox-id)
  --secret-key KEY      accepted secretKey (default $VOICECLONE_SECRET_KEY or
                        sandbox-key; prefer the variable: arguments are visible in ps)
  --any-credentials     accept any non-empty secretId/secretKey pair
  --gateway-key ID:KEY  act as the API gateway's key-pair auth (repeatable): API and
                        /repos/ requests need X-Date, Source and an hmac-sha1
                        Authorization signed with one of these keys, else a 401
  --faults SPEC         inject faults into API requests (the POSTs to /release/...),
                        each KIND=RATE a probability per request, e.g.
                        503=0.02,429=0.02,drop=0.02,reset=0.01,slow=0.01,truncate=0.01,html=0.01
                          503       a gateway's 503 (JSON {"message":..}), not processed
                          429       429 with Retry-After: 1, not processed
                          drop      processed (the job IS created), closed unanswered
                          reset     connection reset before processing: nothing happens
                          slow      processed, answered --slow-seconds later
                          truncate  processed, body cut short (whole Content-Length), closed
                          html      a gateway's HTML 502 page, not processed
                        one line per fault on stderr; GET /_sandbox/faults lists them
  --fault-seed N        seed of the fault draws (default: a random one, printed on
                        stderr): the same seed and requests give the same faults
  --slow-seconds S      how late a slow answer comes (default 60: past a client's timeout)
  --verbose             log requests and job state changes on stderr (never the key)
  -h, --help            show this help
]],
  options = {
    host = "string", port = "integer", ["port-file"] = "string", data = "string",
    latency = "number", ["queue-seconds"] = "number", ["work-seconds"] = "number", audio = "string",
    ["secret-id"] = "string", ["secret-key"] = "string", ["any-credentials"] = "flag",
    verbose = "flag", faults = "string", ["fault-seed"] = "integer", ["slow-seconds"] = "number",
    ["gateway-key"] = "list",
  },
  run = function(ctx, o)
    local settings, problem = settings_of(o)
    if not settings then return ctx:usage(problem) end
    local server, err = require("voiceclone.sandbox").new(settings)
    if not server then return ctx:usage((tostring(err):gsub("^sandbox%.new: ", ""))) end
    local started, serr = server:start()
    if not started then return ctx:fail { kind = "sandbox", message = serr } end
    if o["port-file"] and not write_port_file(o["port-file"], server.port) then
      server:close()
      return ctx:fail { kind = "sandbox", message = "cannot write the port file " .. o["port-file"] }
    end
    if settings.faults then
      local faults = require "voiceclone.sandbox.faults"
      stderr_log(("faults %s, seed %s (--fault-seed %s replays them), slow answers after %gs")
        :format(faults.format(settings.faults), tostring(server.fault_seed), tostring(server.fault_seed),
          server.slow_seconds))
    end
    -- Announced last: whoever reads this line can use the port file too.
    ctx:out(("voiceclone sandbox listening on %s data=%s pid=%s\n"):format(server.url, server.data,
      tostring(server.pid)))
    local served, rerr = serve(server)
    if not served then return ctx:fail { kind = "sandbox", message = tostring(rerr) } end
    return output.EXIT.OK
  end,
}
