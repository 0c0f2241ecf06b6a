--- voiceclone.audio: a download converted into audio a host can play, with
-- sox (the `format` option of job:download and client:download, of the
-- workflow and of the batch).
--
--   wav     16-bit signed PCM WAV at the service's rate and channels (any
--           WAV the service gives, normalised: every WAV reader takes it)
--   ogg     Ogg Vorbis at the service's rate and channels (game engines)
--   ulaw8k  8 kHz mono u-law WAV (telephony engines)
--
-- Atomic, as downloads are: the file is downloaded to a temporary name
-- beside dest, sox converts it to a second one, and only that one, whole,
-- is renamed to dest. Both temporaries are removed on every way out, and
-- when a task is canceled midway, once its coroutine is collected (sox is
-- killed then). Their names, <dest>.part-<pid>-<n>.in and .out, are those
-- batch.run sweeps after a kill.
--
-- sox runs without a shell (luv's uv.spawn), each argument one word; every
-- path given to it starts with "/" or "./", so none can read as an option,
-- as "-" (stdin) or as sox's "|command" input. Inside a task the wait
-- yields (the task looks at sox every few milliseconds, through
-- client:sleep); outside one it blocks in libuv's loop. Errors: "invalid"
-- (an unknown format, before anything is downloaded) and "convert" (sox
-- missing, lacking the format, failing or too slow), both with field
-- "format".
local uv = require "luv"
local core = require "voiceclone.core"
local tasks = require "voiceclone.tasks"
local compat = require "voiceclone.compat"
local fs = require "voiceclone.fs"

local audio = {}

--- The formats: sox's output options, and the file extension the
-- workflow and the batch give such files.
audio.FORMATS = {
  wav = { extension = "wav", args = { "-t", "wav", "-e", "signed-integer", "-b", "16" } },
  ogg = { extension = "ogg", args = { "-t", "ogg" } },
  ulaw8k = { extension = "wav", args = { "-t", "wav", "-r", "8000", "-c", "1", "-e", "u-law" } },
}
local NAMES = "wav, ogg or ulaw8k"

audio.TIME_LIMIT = 600        -- seconds sox may take before it is killed
local POLL_FIRST, POLL_MAX = 0.002, 0.05   -- seconds between looks at sox, inside a task
local MAX_MESSAGE = 2000      -- bytes of sox's stderr kept for the error
local STDERR_GRACE = 0.5      -- seconds stderr may stay open once sox has exited
local FILE_MODE = 420         -- 0644 (Lua 5.1 has no octal literals)

local INSTALL = "install it (Debian, Ubuntu: apt-get install sox; Ogg Vorbis comes with "
  .. "libsox-fmt-base, which Debian's sox depends on)"

local function convert_error(field, format, message, details)
  local err = core.error("convert", ("%s: %s"):format(field, message), details)
  err.field, err.format = field, format
  return err
end

--- The sox on PATH (the file that will be run), or nil.
function audio.find_sox()
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local candidate = dir:gsub("/+$", "") .. "/sox"
    local st = uv.fs_stat(candidate)
    if st and st.type == "file" and uv.fs_access(candidate, "X") then return candidate end
  end
  return nil
end

--- nil when format can be produced here; else an "invalid" error (not a
-- format) or a "convert" error (no sox on PATH), its field `field`.
function audio.check(format, field)
  field = field or "format"
  if not audio.FORMATS[format] then
    return core.error("invalid", ("%s: must be %s (got %s)"):format(field, NAMES,
      type(format) == "string" and ("%q"):format(format) or tostring(format)), { field = field })
  end
  if not audio.find_sox() then
    return convert_error(field, format, ("converting to %s needs sox, which is not on PATH: %s")
      :format(format, INSTALL))
  end
end

--- The extension of a file in this format ("ogg", "wav").
function audio.extension(format)
  return audio.FORMATS[format].extension
end

--- The `format` out of a download's options table: the format, or nil
-- (none given: the bytes as the service sends them), or nil and an error
-- (see audio.check; an option other than format is "invalid"). A wrong
-- Lua type raises, pointing at the caller of `method`.
function audio.option(options, method)
  if options == nil then return nil end
  if type(options) ~= "table" then
    error(("bad options to '%s' (table expected, got %s)"):format(method, type(options)), 3)
  end
  for key in pairs(options) do
    if key ~= "format" then
      return nil, core.error("invalid", ("%s: is not an option of %s"):format(tostring(key), method),
                             { field = tostring(key) })
    end
  end
  local format = options.format
  if format == nil then return nil end
  if type(format) ~= "string" then
    error(("bad option 'format' to '%s' (string expected, got %s)"):format(method, type(format)), 3)
  end
  local err = audio.check(format)
  if err then return nil, err end
  return format
end

----------------------------------------------------------------------------
-- Temporary files

local serial = 0

-- A new file of our own beside dest (O_EXCL), or nil and an "invalid"
-- error for dest, as the core gives for a destination it cannot write.
local function reserve(dest, suffix)
  local err
  for _ = 1, 100 do
    serial = serial + 1
    local path = ("%s.part-%d-%d.%s"):format(dest, fs.pid(), serial, suffix)
    local fd, oerr, code = uv.fs_open(path, "wx", FILE_MODE)
    if fd then
      uv.fs_close(fd)
      return path
    end
    err = oerr
    if code ~= "EEXIST" then break end
  end
  return nil, core.error("invalid", "dest: cannot write the file: " .. tostring(err), { field = "dest" })
end

-- A path as one sox argument that is only ever a file name.
local function word(path)
  if path:sub(1, 1) == "/" then return path end
  return "./" .. path
end

----------------------------------------------------------------------------
-- Running sox

-- Starts sox, filling run { exited, eof, code, signal, timed_out, stderr =
-- {...} }; returns run, or nil and luv's message. Every callback here only
-- takes note and closes handles (a luv callback must not raise). The run is
-- over once sox has exited and its stderr has ended, or STDERR_GRACE
-- seconds after the exit (something sox started may hold stderr open).
local function start(sox, args, run)
  run.stderr = {}
  local pipe, timer = uv.new_pipe(false), uv.new_timer()
  local function close_timer()
    if not run.timer_closed then
      run.timer_closed = true
      timer:close()
    end
  end
  local function end_stderr()
    if not run.eof then
      run.eof = true
      pipe:read_stop()
      pipe:close()
    end
  end
  local process, err = uv.spawn(sox, { args = args, stdio = { nil, nil, pipe } }, function(code, signal)
    run.code, run.signal, run.exited = code, signal, true
    run.process:close()
    timer:stop()
    if run.eof then return close_timer() end
    timer:start(math.floor(STDERR_GRACE * 1000), 0, function()
      end_stderr()
      close_timer()
    end)
  end)
  if not process then
    pipe:close()
    timer:close()
    return nil, err
  end
  run.process = process
  pipe:read_start(function(rerr, data)
    if data and not rerr then
      local kept = run.stderr
      if #table.concat(kept) < MAX_MESSAGE then kept[#kept + 1] = data end
      return
    end
    end_stderr()
    if run.exited then close_timer() end
  end)
  timer:start(math.floor(audio.TIME_LIMIT * 1000), 0, function()   -- the time limit
    if not run.exited then
      run.timed_out = true
      run.process:kill("sigkill")
    end
  end)
  return run
end

-- Waits for sox to exit and its stderr to end: yielding inside a task of
-- client, blocking in libuv's loop outside one. Inside libuv's own loop
-- (a task resumed from a luv callback) that loop sees to sox; elsewhere
-- these calls run it.
local function wait(client, run)
  local function over() return run.exited and run.eof end
  if tasks.in_task(client) then
    local pause = POLL_FIRST
    while true do
      if not uv.loop_mode() then uv.run("nowait") end
      if over() then return end
      client:sleep(pause)
      pause = math.min(pause * 2, POLL_MAX)
    end
  end
  while not over() do uv.run("once") end
end

local function message_of(run)
  local text = table.concat(run.stderr):sub(1, MAX_MESSAGE):gsub("%s+$", "")
  return text ~= "" and text or nil
end

-- sox turned input into output as format: true, or nil and an error.
local function convert(client, format, input, output, cleanup)
  local sox = audio.find_sox()
  if not sox then
    return nil, convert_error("format", format, ("converting to %s needs sox, which is not on PATH "
      .. "any more: %s"):format(format, INSTALL))
  end
  local args = { "-V1", "-q", word(input) }
  for _, a in ipairs(audio.FORMATS[format].args) do args[#args + 1] = a end
  args[#args + 1] = word(output)
  local run, err = start(sox, args, cleanup.run)
  if not run then
    return nil, convert_error("format", format, ("sox (%s) could not be started: %s; %s")
      :format(sox, tostring(err), INSTALL))
  end
  wait(client, run)
  if run.code == 0 and run.signal == 0 and not run.timed_out then return true end
  local said = message_of(run)
  local details = { sox_status = run.code, sox_signal = run.signal ~= 0 and run.signal or nil }
  if run.timed_out then
    return nil, convert_error("format", format, ("sox took more than %g s: killed"):format(audio.TIME_LIMIT),
                              details)
  end
  if said and said:find("no handler for given file type", 1, true) then
    return nil, convert_error("format", format, ("this sox cannot write %s (%s): install its formats "
      .. "(Debian: apt-get install libsox-fmt-base, or libsox-fmt-all for every one)"):format(format, said),
      details)
  end
  return nil, convert_error("format", format, ("sox could not convert the download to %s (%s)")
    :format(format, said or (run.signal ~= 0 and ("killed by signal " .. run.signal))
      or ("exit status " .. tostring(run.code))), details)
end

--- Downloads into dest converted to format (checked already: audio.option),
-- fetch(path) doing the download itself (-> path | nil, err). Returns
-- dest, or nil and an error; on failure neither dest nor a temporary file
-- is left. Raises outside a task inside libuv's own loop (a luv callback),
-- where it could not wait for sox: run it in a task of the client there.
function audio.download(client, dest, format, fetch)
  if not tasks.in_task(client) and uv.loop_mode() then
    error("a download with a format cannot wait for sox inside a luv callback: "
      .. "call it in a task of the client (client:spawn)", 3)
  end
  -- What a failure, a cancel or an abandoned task must not leave behind.
  local cleanup = { files = {}, run = {} }
  local function clean()
    if cleanup.done then return end
    cleanup.done = true
    local run = cleanup.run
    if run.process and not run.exited then pcall(run.process.kill, run.process, "sigkill") end
    for _, path in ipairs(cleanup.files) do uv.fs_unlink(path) end
  end
  local sentinel = compat.on_collect(clean)
  local function fail(err)
    clean()
    return nil, err
  end

  local input, err = reserve(dest, "in")
  if not input then return fail(err) end
  cleanup.files[1] = input
  local output
  output, err = reserve(dest, "out")
  if not output then return fail(err) end
  cleanup.files[2] = output

  local ok
  ok, err = fetch(input)
  if not ok then return fail(err) end
  ok, err = convert(client, format, input, output, cleanup)
  if not ok then return fail(err) end
  local renamed, rerr = uv.fs_rename(output, dest)
  if not renamed then
    return fail(core.error("invalid", ("dest: cannot rename the converted file to %s: %s")
      :format(dest, tostring(rerr)), { field = "dest" }))
  end
  cleanup.files[2] = nil
  clean()
  local _ = sentinel   -- held until here: collected earlier, it would clean up midway
  return dest
end

return audio
