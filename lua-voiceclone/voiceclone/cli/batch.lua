--- voiceclone batch: every line of a CSV or JSON Lines file voiced, resumably.
local api = require "voiceclone.cli.api"
local options = require "voiceclone.cli.options"
local output = require "voiceclone.cli.output"

local EXIT = output.EXIT

local INPUT_FORMATS = { csv = true, jsonl = true }

-- The summary, for people.
local function report(ctx, summary, failed, given_id)
  local id = summary.tag .. (given_id and (" (--batch-id " .. given_id .. ")") or "")
  ctx:out(("batch %s: %d lines, %d completed, %d failed (%d done before this run, "
    .. "%d jobs created, %d found on the service) in %.1f s\n"):format(id,
    summary.total, summary.completed, summary.failed, summary.resumed, summary.created,
    summary.adopted, summary.elapsed))
  if summary.duplicates > 0 then
    ctx:out(("warning: %d lines have more than one COMPLETED job on the service\n")
      :format(summary.duplicates))
  end
  for _, line in ipairs(failed) do
    ctx:out(("failed: line %s (customId %s%s): %s\n"):format(line.id, line.custom_id,
      line.job_id and (", job " .. line.job_id) or "",
      line.error and line.error.message or line.state or "?"))
  end
end

local function report_json(ctx, summary)
  local list = output.array()
  for i, line in ipairs(summary.lines) do
    list[i] = { id = line.id, customId = line.custom_id, status = line.status, job = line.job_id,
                state = line.state, output = line.output, file = line.file, error = line.error }
  end
  ctx:json {
    batch = summary.tag, batch_id = summary.batch_id, total = summary.total,
    completed = summary.completed, failed = summary.failed, resumed = summary.resumed,
    created = summary.created, adopted = summary.adopted, duplicates = summary.duplicates,
    elapsed = summary.elapsed, journal = summary.journal, lines = list,
  }
end

return {
  summary = "voice every line of a CSV or JSON Lines file, resumably",
  usage = [[
usage: voiceclone batch LINES --content-id ID [options]

Speaks every line of LINES: CSV with a header naming the columns id and text
(RFC 4180 quoting: "a, ""quoted"" text" may hold commas, quotes, newlines),
or JSON Lines ({"id": .., "text": ..} a line); the format comes from the
extension (.csv, .jsonl/.ndjson/.json) or else the content. Ids are unique.

Each line's job carries a customId made from the batch and the line id:
"vcb-<batch>-<line id>", where <batch> is the 12 hex digits the summary
prints. A journal (JSON Lines, fsynced per record) records line -> customId
-> job -> state. Stopped at any moment (even kill -9) and run again, it asks
the journal and the service (ListJobs by customId) before creating anything:
no line is voiced twice, none is lost. Lines whose jobs all failed are tried
again on the next run.

options:
  --model NAME          the voice (default "default")
  --content-id ID       the storage repository that receives the audio (required)
  --destination DIR     folder in that repository (default /)
  --prefix P            prefix of the output file names
  --concurrency N       lines in flight at once (default 16)
  --journal PATH        the journal (default LINES.journal); one run at a time
                        uses it: another run of the same batch refuses at once
  --wait-for-journal    wait for that other run to end instead
  --download DIR        download each line's audio to DIR/<line id>.wav
                        (needs --repositories; an id that is no safe file
                        name uses the hash in its customId)
  --batch-id ID         the batch's id (default: a hash of LINES' absolute
                        path, the model and the content id)
  --input-format F      csv or jsonl (default: detected; old spelling:
                        --format csv|jsonl)
]] .. api.FORMAT_USAGE:gsub("the download", "each download"):gsub("the file keeps its name",
  "DIR/<line id>.ogg for ogg") .. [[
]] .. api.WAIT_USAGE:gsub("default 600[^)]*%)", "default 3600)") .. [[
  --progress MODE       auto (a live bar when stderr is a terminal, else a
                        plain line every 5 s), bar, plain or none; on stderr

Ends with a summary on stdout; failed lines are listed with the reason.
Exit status: 0 every line COMPLETED, 1 a line failed, 3 every failure was a
network failure or timeout (run again), 2 bad options or LINES, or another
run holds the journal, 4 the journal or a download directory cannot be
written.
--json: {"batch": .., "total": N, "completed": N, "failed": N, "lines": [...]}

]] .. options.GLOBAL_USAGE,
  options = options.with_global {
    model = "string", ["content-id"] = "string", destination = "string", prefix = "string",
    concurrency = "integer", journal = "string", download = "string", ["batch-id"] = "string",
    ["input-format"] = "string", format = "string", ["poll-interval"] = "number",
    ["wait-timeout"] = "number", progress = "string", ["wait-for-journal"] = "flag",
  },
  min_args = 1, max_args = 1,
  run = function(ctx, o, args)
    local batch = require "voiceclone.batch"
    local path = args[1]
    if not o["content-id"] then return ctx:usage("--content-id ID is required") end
    local concurrency = o.concurrency or batch.DEFAULT_CONCURRENCY
    if concurrency < 1 or concurrency > batch.MAX_CONCURRENCY then
      return ctx:usage(("--concurrency must be 1 to %d"):format(batch.MAX_CONCURRENCY))
    end
    -- --format: the downloads' (wav, ogg, ulaw8k), or LINES' in its old spelling (csv, jsonl)
    local audio_format = not INPUT_FORMATS[o.format or ""] and o.format or nil
    local input_format = o["input-format"] or (not audio_format and o.format or nil)
    if input_format and not INPUT_FORMATS[input_format] then
      return ctx:usage("--input-format must be csv or jsonl")
    end
    if audio_format and not o.download then
      return ctx:usage("--format converts the downloads: give --download")
    end
    ctx.flags.audio_format = "--format"
    local problem = options.zero(o, { "poll-interval", "wait-timeout" })
    if problem then return ctx:usage(problem) end
    if o.download and not api.repositories_of(o) then return ctx:usage(api.NO_REPOSITORIES) end
    local mode = o.progress or "auto"
    if mode == "auto" then mode = output.is_terminal(io.stderr) and "bar" or "plain" end
    if mode ~= "bar" and mode ~= "plain" and mode ~= "none" then
      return ctx:usage("--progress must be auto, bar, plain or none")
    end
    local lines, lerr = batch.read_lines(path, input_format)
    if not lines then
      local f = io.open(path, "rb")
      if f then f:close() end
      return ctx:usage((f and "" or "cannot read ") .. lerr)
    end
    local client, status = api.client(ctx, o, { max_in_flight = concurrency })
    if not client then return status end

    local progress
    if mode ~= "none" then
      progress = batch.progress_printer { mode = mode, write = function(s) ctx:err(s) end }
    end
    local summary, err = batch.run {
      client = client, lines = lines, model = o.model, content_id = o["content-id"],
      destination = o.destination, prefix = o.prefix, concurrency = concurrency,
      journal = o.journal or (path .. ".journal"), download = o.download, audio_format = audio_format,
      batch_id = o["batch-id"] or batch.default_id(path, o.model, o["content-id"]),
      poll_interval = o["poll-interval"], wait_timeout = o["wait-timeout"],
      on_progress = progress, wait_for_journal = o["wait-for-journal"] or nil,
    }
    if not summary then
      if err.kind == "locked" then
        return ctx:usage(tostring(err.message) .. ": another run of this batch is using it "
          .. "(--wait-for-journal waits for it)")
      end
      if err.field == "journal" or err.field == "download" then
        err = { kind = "local", message = tostring(err) }
      end
      return ctx:fail(err)
    end
    local failed, only_network = {}, true
    for _, line in ipairs(summary.lines) do
      if line.status ~= "completed" then
        failed[#failed + 1] = line
        local kind = line.error and line.error.kind
        if kind ~= "network" and kind ~= "timeout" then only_network = false end
      end
    end
    if ctx.json_output then report_json(ctx, summary) else report(ctx, summary, failed, o["batch-id"]) end
    if #failed == 0 then return EXIT.OK end
    return only_network and EXIT.NETWORK or EXIT.FAILED
  end,
}
