--- voiceclone wait: a job followed until it is final.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

return {
  summary = "wait until a job is final, printing its state changes",
  usage = [[
usage: voiceclone wait ID [--wait-timeout S] [--poll-interval S] [--json]

Polls the job until it is final, printing "HH:MM:SS JOB_ID STATE" as its
state changes. Exit status: 0 COMPLETED, 1 ERROR or CANCELED, 3 not final
after --wait-timeout (or the network failed).

options:
]] .. api.WAIT_USAGE .. [[
--json: {"job": Job, "status": .., "states": [{"state": .., "at": ..}, ...]}

]] .. options.GLOBAL_USAGE,
  options = options.with_global { ["wait-timeout"] = "number", ["poll-interval"] = "number" },
  aliases = { timeout = "wait-timeout", interval = "poll-interval" },
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    local problem = options.zero(o, { "wait-timeout", "poll-interval" })
    if problem then return ctx:usage(problem) end
    local client, status = api.client(ctx, o)
    if not client then return status end
    ctx.flags.job_id = "ID"
    local job, err = client:get_job(args[1])
    if not job then return ctx:fail(err) end
    local states = output.array()
    local done, werr = api.wait_for(ctx, job, o, states)
    if not done then
      return ctx:fail(werr, { job = api.job(job), status = job:status(), states = states })
    end
    if ctx.json_output then
      ctx:json { job = api.job(job), status = job:status(), result = job:result(), states = states }
    else
      local out = api.output_of(job)
      if out then ctx:out("result ", out, "\n") end
    end
    return output.EXIT.OK
  end,
}
