--- voiceclone callbacks: the service's callbacks received; each confirmed
-- job acted on once.
local api = require "voiceclone.cli.api"
local compat = require "voiceclone.compat"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

local EXIT, PROGRAM = output.EXIT, output.PROGRAM

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- What is done with one confirmed job: --out, the report, --exec.
-- Returns true, or false when a part of it failed (reported).
local function act_on(ctx, o, job)
  local id, state = job.id, job:status()
  if not id:match("^[%w_.-]+$") or id:sub(1, 1) == "." then
    ctx:err(PROGRAM, " callbacks: job id ", ("%q"):format(id), " is not safe as a file name or",
      " argument: not acted on\n")
    return false
  end
  local ok, file = true, nil
  if o.out then
    file = o.out:gsub("/+$", "") .. "/" .. id .. ".json"
    local written, err = require("voiceclone.fs").write_atomic(file,
      output.encode(api.job(job)) .. "\n", true)
    if not written then
      ctx:err(PROGRAM, " callbacks: cannot write ", file, ": ", tostring(err), "\n")
      ok, file = false, nil
    end
  end
  if ctx.json_output then
    ctx:json { job = api.job(job), status = state, result = job:result(), file = file }
  else
    ctx:out(api.job_line(job), "\n")
  end
  if o.exec then
    -- CMD is the user's own; the job's id and state go in as quoted
    -- arguments and variables, never into the command text.
    local command = ("env VOICECLONE_JOB_ID=%s VOICECLONE_JOB_STATE=%s%s sh -c %s voiceclone-callback %s %s")
      :format(shell_quote(id), shell_quote(state),
        file and (" VOICECLONE_JOB_FILE=" .. shell_quote(file)) or "",
        shell_quote(o.exec), shell_quote(id), shell_quote(state))
    local done, how, code = compat.execute(command)
    if not done then
      ctx:err(PROGRAM, " callbacks: --exec for job ", id, " ended with ", tostring(how), " ",
        tostring(code), "\n")
      ok = false
    end
  end
  return ok
end

return {
  summary = "receive the service's callbacks; act on each confirmed job",
  usage = [[
usage: voiceclone callbacks [--listen HOST:PORT] [--exec CMD] [--out DIR] [options]

Listens for the jobs the service POSTs to a job's callback URL. A callback
is not signed: each is confirmed with GetJob, and only the confirmed, final
job is acted on, once. Prints "listening on URL" when ready, then one line
per job ("JOB_ID STATE [output]"); with --json, one JSON document per line
({"listening": URL}, then {"job": Job, "status": .., "file": ..}).

options:
  --listen HOST:PORT    where to listen (default 127.0.0.1:0, port 0: a free one,
                        printed); 0.0.0.0:PORT to be reachable from other machines,
                        such as the service
  --host H, --port N    the same, separately
  --out DIR             write DIR/<job id>.json, the confirmed job as GetJob gives it
  --exec CMD            run CMD (with sh -c) for each job, the job given as
                        arguments ($1 the id, $2 the state) and in the environment
                        (VOICECLONE_JOB_ID, VOICECLONE_JOB_STATE, VOICECLONE_JOB_FILE
                        with --out); nothing of the job is ever put into CMD itself.
                        One at a time: the next job waits for CMD to end; a CMD
                        that fails is reported on stderr (exit status 1 at the end)
  --once                stop after the first job
  --max-jobs N          stop after N jobs
  --duration S          stop after S seconds
  --max-body N          largest callback body accepted, in bytes (default 1 MiB)

]] .. options.GLOBAL_USAGE,
  options = options.with_global {
    listen = "string", host = "string", port = "integer", out = "string", exec = "string",
    once = "flag", ["max-jobs"] = "integer", duration = "number", ["max-body"] = "integer",
  },
  run = function(ctx, o)
    if o.listen then
      local host, port = o.listen:match("^%[?([^%]]*)%]?:(%d+)$")
      if not host then return ctx:usage("--listen takes HOST:PORT, e.g. 127.0.0.1:8700") end
      o.host, o.port = host ~= "" and host or nil, tonumber(port)
    end
    if o.port and o.port > 65535 then return ctx:usage("--port must be 0..65535") end
    local problem = options.zero(o, { "duration", "max-jobs" })
    if problem then return ctx:usage(problem) end
    local callbacks = require "voiceclone.callbacks"
    if o.out and not require("voiceclone.fs").mkdir_p(o.out) then
      return ctx:fail { kind = "local", message = "cannot create the directory " .. o.out }
    end
    local client, status = api.client(ctx, o)
    if not client then return status end
    local failures = 0

    -- Ctrl-C stops the listener (through libuv's signal watcher: Lua's own
    -- SIGINT hook would fire inside a luv callback and end the process there).
    local uv = require "luv"
    local sigint, listener, interrupted = uv.new_signal(), nil, false
    sigint:start("sigint", function()
      interrupted = true
      if listener then listener.stop() end
    end)
    local count, why = callbacks.listen {
      client = client, host = o.host, port = o.port, max_body = o["max-body"], once = o.once or nil,
      max_jobs = o["max-jobs"], duration = o.duration,
      on_job = function(job)
        if not act_on(ctx, o, job) then failures = failures + 1 end
      end,
      on_listen = function(url, server)
        listener = server
        if interrupted then server.stop() end
        if ctx.json_output then ctx:json { listening = url } else ctx:out("listening on ", url, "\n") end
      end,
    }
    sigint:close()
    uv.run("nowait")
    if interrupted then
      ctx:err(PROGRAM, " callbacks: interrupted\n")
      return 130
    end
    if not count then return ctx:fail(why) end
    if not ctx.json_output then
      ctx:err(PROGRAM, " callbacks: stopped (", tostring(why), ") after ", count, " jobs\n")
    end
    return failures > 0 and EXIT.FAILED or EXIT.OK
  end,
}
