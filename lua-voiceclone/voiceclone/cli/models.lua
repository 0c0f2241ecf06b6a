--- voiceclone models: the voices an account can speak with.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

return {
  summary = "list the voice models (default and trained ones)",
  usage = [[
usage: voiceclone models [--json]

Lists every model the account can speak with, one a line: "default", the
service's own voice, then each trained model with its creation time.
--json: {"models": [{"name": "default", "builtin": true},
                    {"name": .., "createdAt": ..}, ...], "total": N}

]] .. options.GLOBAL_USAGE,
  options = options.with_global {},
  run = function(ctx, o)
    local client, status = api.client(ctx, o)
    if not client then return status end
    -- ListModels gives the trained models; "default" is always there
    local list = output.array { { name = "default", builtin = true } }
    for model, err in client:models() do
      if model == false then return ctx:fail(err) end
      if model.name ~= "default" then
        list[#list + 1] = { name = model.name, createdAt = model.createdAt }
      end
    end
    if ctx.json_output then
      ctx:json { models = list, total = #list }
    else
      for _, m in ipairs(list) do
        ctx:out(("%-40s %s\n"):format(m.name, m.builtin and "(built in)" or api.iso_time(m.createdAt)))
      end
    end
    return output.EXIT.OK
  end,
}
