--- voiceclone download: a COMPLETED job's audio into a file.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

return {
  summary = "download a COMPLETED job's audio",
  usage = [[
usage: voiceclone download ID --out FILE [--wait] [--format F] [--json]

Downloads the job's output into FILE (written under a temporary name and
renamed when complete). The repositories' address comes from --repositories
or $VOICECLONE_REPOSITORIES. A job not COMPLETED yet is an error, unless
--wait is given.

options:
  --out FILE            where to write the audio (required)
  --wait                wait for the job first
]] .. api.WAIT_USAGE .. api.FORMAT_USAGE .. [[
--json: {"job": Job, "file": FILE}

]] .. options.GLOBAL_USAGE,
  options = options.with_global {
    out = "string", wait = "flag", ["wait-timeout"] = "number", ["poll-interval"] = "number",
    format = "string",
  },
  aliases = { timeout = "wait-timeout", interval = "poll-interval" },
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    if not o.out then return ctx:usage("--out FILE is required") end
    local problem = options.zero(o, { "wait-timeout", "poll-interval" })
    if problem then return ctx:usage(problem) end
    if not api.repositories_of(o) then return ctx:usage(api.NO_REPOSITORIES) end
    problem = api.check_format(ctx, o)
    if problem then return problem end
    local client, status = api.client(ctx, o)
    if not client then return status end
    ctx.flags.job_id = "ID"
    local job, err = client:get_job(args[1])
    if not job then return ctx:fail(err) end
    if job.state ~= 3 then
      if not o.wait or job:is_final() then
        local message = ("job %s is %s, not COMPLETED%s"):format(job.id, job:status(),
          job:is_final() and "" or " (yet: add --wait)")
        return ctx:fail({ kind = "job", message = message }, { job = api.job(job) })
      end
      local done, werr = job:wait { timeout = o["wait-timeout"] or 600, interval = o["poll-interval"] }
      if not done then return ctx:fail(werr, { job = api.job(job) }) end
    end
    local file, derr = api.download(ctx, job, o.out, "--out", o.format)
    if not file then return ctx:fail(derr, { job = api.job(job) }) end
    if ctx.json_output then ctx:json { job = api.job(job), status = job:status(), file = file }
    else ctx:out(file, "\n") end
    return output.EXIT.OK
  end,
}
