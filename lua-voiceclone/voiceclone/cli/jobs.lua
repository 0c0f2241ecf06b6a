--- voiceclone jobs: the jobs that carry a customId (ListJobs).
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

return {
  summary = "list the jobs that carry a customId (ListJobs)",
  usage = [[
usage: voiceclone jobs --custom-id ID [--json]

Lists the jobs created with that customId (several jobs may share one), one
line each: "JOB_ID STATE customId=.. [output]".
--json: {"jobs": [Job, ...], "total": N}

]] .. options.GLOBAL_USAGE,
  options = options.with_global { ["custom-id"] = "string" },
  run = function(ctx, o)
    if not o["custom-id"] then return ctx:usage("--custom-id ID is required") end
    local client, status = api.client(ctx, o)
    if not client then return status end
    local jobs, total = client:list_jobs(o["custom-id"])
    if not jobs then return ctx:fail(total) end
    if ctx.json_output then
      local list = output.array()
      for i, job in ipairs(jobs) do list[i] = api.job(job) end
      ctx:json { jobs = list, total = total }
    else
      for _, job in ipairs(jobs) do ctx:out(api.job_line(job), "\n") end
      if #jobs == 0 then ctx:out("no jobs with customId ", o["custom-id"], "\n") end
    end
    return output.EXIT.OK
  end,
}
