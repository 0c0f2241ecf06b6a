--- voiceclone say: text spoken in a model's voice (synthesize).
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"

local function read_text(ctx, args, o)
  local text = o.text or args[1]
  if o.text and args[1] then return nil, ctx:usage("give the text once: as TEXT or with --text") end
  if not text then return nil, ctx:usage("no TEXT to say") end
  if text == "-" and not o.text then
    text = io.stdin:read("*a") or ""   -- "*a": 5.1 and 5.2 need the star
    text = text:gsub("\r?\n$", "")
  end
  return text
end

return {
  summary = "speak text in a model's voice (synthesize)",
  usage = [[
usage: voiceclone say TEXT --content-id ID [options]
       voiceclone say - ...          (the text from stdin)

Creates a text-to-speech job: TEXT (at most 512 characters) spoken in the
model's voice, written to the repository CONTENT_ID. Prints "JOB_ID STATE".

options:
  --text TEXT           the text, instead of the TEXT argument
  --model NAME          the voice (default "default")
  --content-id ID       the storage repository that receives the audio (required)
  --destination DIR     folder in that repository (default /)
  --prefix P            prefix of the output file name (under 20 characters)
]] .. api.JOB_OPTIONS_USAGE .. [[
  --download FILE       wait, then download the audio to FILE (needs --repositories)
]] .. api.FORMAT_USAGE .. [[

]] .. options.GLOBAL_USAGE,
  options = api.job_options {
    text = "string", model = "string", ["content-id"] = "string", destination = "string",
    prefix = "string", download = "string", format = "string",
  },
  max_args = 1,
  run = function(ctx, o, args)
    local text, status = read_text(ctx, args, o)
    if not text then return status end
    ctx.flags.text = o.text and "--text" or "TEXT"
    return api.run_job(ctx, o, function(client)
      local settings = api.job_settings(o)
      settings.text, settings.model, settings.content_id = text, o.model, o["content-id"]
      settings.destination, settings.prefix = o.destination, o.prefix
      return client:synthesize(settings)
    end)
  end,
}
