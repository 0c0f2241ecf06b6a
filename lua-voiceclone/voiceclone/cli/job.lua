--- voiceclone job: one job, as GetJob gives it.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

return {
  summary = "show a job (GetJob)",
  usage = [[
usage: voiceclone job ID [--json]

Shows the job: state, times, inputs, outputs, result (or why it failed).
--json: {"job": Job, "status": "COMPLETED", "result": {...}}

]] .. options.GLOBAL_USAGE,
  options = options.with_global {},
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    local client, status = api.client(ctx, o)
    if not client then return status end
    ctx.flags.job_id = "ID"
    local job, err = client:get_job(args[1])
    if not job then return ctx:fail(err) end
    if ctx.json_output then
      ctx:json { job = api.job(job), status = job:status(), result = job:result() }
    else
      ctx:out(api.job_details(job))
    end
    return output.EXIT.OK
  end,
}
