--- voiceclone convert: a recording spoken again in a model's voice.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"

return {
  summary = "convert a recording into a model's voice",
  usage = [[
usage: voiceclone convert (--url URL | --source CONTENT_ID:PATH) --content-id ID [--model NAME] [options]

Creates a conversion job: the recording, spoken again in the model's voice,
written to the repository CONTENT_ID. Prints "JOB_ID STATE".

options:
  --url URL             the recording, by URL
  --source C:P          the recording, as file P in storage repository C
  --model NAME          the voice (default "default")
  --content-id ID       the storage repository that receives the audio (required)
  --destination DIR     folder in that repository (default /)
  --prefix P            prefix of the output file name (under 20 characters)
]] .. api.JOB_OPTIONS_USAGE .. [[
  --download FILE       wait, then download the audio to FILE (needs --repositories)
]] .. api.FORMAT_USAGE .. [[

]] .. options.GLOBAL_USAGE,
  options = api.job_options {
    url = "string", source = "string", model = "string", ["content-id"] = "string",
    destination = "string", prefix = "string", download = "string", format = "string",
  },
  run = function(ctx, o)
    local input, status = api.recording(ctx, o)
    if not input then return status end
    return api.run_job(ctx, o, function(client)
      local settings = api.job_settings(o)
      settings.url, settings.source, settings.model = input.url, input.source, o.model
      settings.content_id, settings.destination, settings.prefix = o["content-id"], o.destination, o.prefix
      return client:convert(settings)
    end)
  end,
}
