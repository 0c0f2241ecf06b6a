--- voiceclone train: a new voice model from a recording.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"

return {
  summary = "train a voice model from a recording",
  usage = [[
usage: voiceclone train (--url URL | --source CONTENT_ID:PATH) --model NAME [options]

Creates a training job: a new model NAME (letters, digits and _, unique)
with the voice of the recording. Prints "JOB_ID STATE". The sandbox ships a
sample recording: --source samples:me.wav.

options:
  --url URL             the recording, by URL
  --source C:P          the recording, as file P in storage repository C
  --model NAME          the new model's name (required)
  --epochs N            training epochs, 1 to 50 (default 30)
]] .. api.JOB_OPTIONS_USAGE .. "\n" .. options.GLOBAL_USAGE,
  options = api.job_options {
    url = "string", source = "string", model = "string", epochs = "integer",
  },
  run = function(ctx, o)
    local input, status = api.recording(ctx, o)
    if not input then return status end
    if not o.model then return ctx:usage("--model NAME is required") end
    return api.run_job(ctx, o, function(client)
      local settings = api.job_settings(o)
      settings.url, settings.source, settings.model, settings.epochs = input.url, input.source, o.model, o.epochs
      return client:train(settings)
    end)
  end,
}
