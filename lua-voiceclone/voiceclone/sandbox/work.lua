-- The audio work of one job, done by external commands (curl, sox,
-- espeak-ng) in background shell scripts so the event loop never waits:
--
--   plan     checks that need no command (models, paths, URLs), in Lua
--   prepare  create the work directory, fetch every recording input and
--            measure its pitch (sox to raw samples, then sandbox/pitch.lua)
--   render   generate/convert each type 1 output into the model's voice
--
-- A run works in its own directory, DATA/work/<job id>.<token>, which the
-- prepare script creates (no command runs in the event loop). Each phase's
-- script, log and status sit beside it as <dir>.<phase>.sh/.log/.status; a
-- script ends by renaming its status file into place ("ok" or "fail
-- <step>"), which poll() looks for. A step number maps back to the error code
-- and message kept here in Lua, so no user text ever travels through the
-- shell except as quoted arguments.
--
-- An output that selects several inputs gets one segment per input (text
-- spoken, recordings converted), concatenated in selector order. A training
-- output's model pitch is the mean pitch of its selected recordings.
--
-- Audio "tone" (env.audio, the sandbox's --audio tone), for load tests: each
-- type 1 output is a short WAV tone at the model's pitch (TONE_SECONDS per
-- selected input), written from Lua in the event loop; no espeak-ng or sox.
-- A job without recordings then runs no command at all (but mkdir -p, once,
-- for a destination directory that does not exist yet); recordings are still
-- fetched and measured by the prepare script, as they are for speech.
local util = require "voiceclone.sandbox.util"
local compat = require "voiceclone.compat"

local utf8 = compat.utf8
local spack = string.pack or require("compat53.string").pack   -- 5.3+, else lua-compat53's

local work = {}

local Run = {}
Run.__index = Run

-- The default voice: espeak-ng's own, at its default pitch (as measured).
work.DEFAULT_MODEL = { name = "default", pitch = 101 }
local RATE = "22050"                      -- espeak-ng's rate: every segment is made alike
local WATCHDOG_SECONDS = 300              -- a phase that never reports is a failed job...
local WATCHDOG_PER_INPUT = 40             -- ...plus this per recording (curl --max-time 30)
local TOOL_TIMEOUT = "120"                -- seconds for one sox/espeak-ng run (coreutils timeout)
local TONE_SECONDS = 0.3                  -- of tone per selected input (--audio tone)
local TONE_AMPLITUDE = 0.3 * 32767
local TONE_FADE_SECONDS = 0.01            -- fade in and out: no click at either end

-- The pitch estimator runs as a script in the background jobs, under the
-- interpreter running the sandbox ($VOICECLONE_LUA if set).
local LUA = compat.interpreter()
local PITCH_SCRIPT = util.absolute(assert(compat.searchpath("voiceclone.sandbox.pitch", package.path)))

-- espeak-ng voices and the pitch (Hz, measured with sandbox/pitch.lua) that
-- its -p knob gives them: a model speaks with the voice and knob setting
-- closest to its own pitch.
local VOICES = {
  { variant = "",    points = { { 0, 75 }, { 25, 84 }, { 50, 101 }, { 75, 129 }, { 99, 167 } } },
  { variant = "+f3", points = { { 0, 138 }, { 25, 163 }, { 50, 200 }, { 75, 250 }, { 99, 320 } } },
}
local FEMALE_FROM_HZ = 168     -- past the male voice's reach

local function knob_for(points, hz)
  for i = 2, #points do
    local lo, hi = points[i - 1], points[i]
    if hz < hi[2] or i == #points then
      local t = math.max(0, math.min(1, (hz - lo[2]) / (hi[2] - lo[2])))
      return math.floor(lo[1] + t * (hi[1] - lo[1]) + 0.5)
    end
  end
end

-- The espeak-ng voice (language plus variant) and -p for a model's pitch.
function work.espeak_voice(hz, language)
  local voice = VOICES[hz < FEMALE_FROM_HZ and 1 or 2]
  return language .. voice.variant, knob_for(voice.points, hz)
end

-- Han ideographs (and CJK punctuation) call for the Mandarin voice.
local function has_cjk(text)
  for _, cp in utf8.codes(text) do
    if (cp >= 0x4E00 and cp <= 0x9FFF) or (cp >= 0x3400 and cp <= 0x4DBF)
        or (cp >= 0x3000 and cp <= 0x303F) or (cp >= 0xF900 and cp <= 0xFAFF)
        or (cp >= 0xFF00 and cp <= 0xFFEF) or (cp >= 0x20000 and cp <= 0x2FA1F) then
      return true
    end
  end
  return false
end

local function last_line(path)
  local text = util.read_file(path)
  if not text then return nil end
  local last
  for line in text:gmatch("[^\r\n]+") do
    if line:match("%S") then last = line end
  end
  return last and last:sub(1, 300)
end

local function failure(code, fmt, ...)
  return { ok = false, code = code, message = string.format(fmt, ...) }
end

----------------------------------------------------------------------------
-- Tones (--audio tone)

-- Every job of a model gets the same tone: the WAV bytes are made once per
-- (pitch, segments) and kept, so a job costs one file write. Bounded: the
-- cache is emptied when it holds TONE_CACHE_MAX tones.
local TONE_CACHE_MAX = 64
local tone_cache, tone_cached = {}, 0

function work.tone_wav(hz, segments)
  local key = string.format("%.3f/%d", hz, segments)
  local wav = tone_cache[key]
  if wav then return wav end
  local rate = tonumber(RATE)
  local n = math.floor(rate * TONE_SECONDS * segments + 0.5)
  local fade = math.floor(rate * TONE_FADE_SECONDS)
  local step = 2 * math.pi * hz / rate
  local samples, chunk, packed = {}, {}, "<" .. ("i2"):rep(1000)
  for i = 0, n - 1 do
    local gain = math.min(1, i / fade, (n - 1 - i) / fade)
    chunk[#chunk + 1] = math.floor(TONE_AMPLITUDE * gain * math.sin(step * i) + 0.5)
    if #chunk == 1000 or i == n - 1 then
      local fmt = #chunk == 1000 and packed or "<" .. ("i2"):rep(#chunk)
      samples[#samples + 1] = spack(fmt, compat.unpack(chunk))
      chunk = {}
    end
  end
  local data = table.concat(samples)
  wav = "RIFF" .. spack("<I4", 36 + #data) .. "WAVE"
    .. "fmt " .. spack("<I4I2I2I4I4I2I2", 16, 1, 1, rate, rate * 2, 2, 16)
    .. "data" .. spack("<I4", #data) .. data
  if tone_cached >= TONE_CACHE_MAX then tone_cache, tone_cached = {}, 0 end
  tone_cache[key], tone_cached = wav, tone_cached + 1
  return wav
end

----------------------------------------------------------------------------
-- Plan: everything that can be decided without running a command.

local function url_extension(url)
  local path = url:match("^[^:]+://[^/]*([^?#]*)") or ""
  local ext = path:match("%.(%w+)$")
  if ext and #ext <= 5 then return ext:lower() end
  return "wav"
end

local function plan(job, env)
  local p = { outputs = {}, recordings = {} }
  local multi = #job.outputs > 1
  local training = {}
  for i, out in ipairs(job.outputs) do
    local vc = out.smartContentDescriptor.voiceCloning
    local label = "output " .. (i - 1)
    local o = { index = i, type = vc.type, model_name = vc.modelName, inputs = {} }
    for _, sel in ipairs(out.inputSelectors) do o.inputs[#o.inputs + 1] = sel + 1 end
    if vc.type == 1 then
      local model = env.model(vc.modelName)
      if not model then
        return nil, failure("ModelNotFound", "%s: model %q does not exist", label, vc.modelName)
      end
      o.pitch = model.pitch
      local ok, why = util.safe_content_id(out.contentId)
      if not ok then return nil, failure("InvalidOutput", "%s: %s", label, why) end
      local segs, serr = util.safe_segments(out.destination or "/")
      if not segs then return nil, failure("InvalidOutput", "%s: destination: %s", label, serr) end
      local prefix = out.smartContentDescriptor.outputPrefix or ""
      if prefix:find("[/%z]") or prefix == "." or prefix == ".." then
        return nil, failure("InvalidOutput", "%s: outputPrefix %q cannot start a file name", label, prefix)
      end
      table.insert(segs, 1, out.contentId)
      o.dir = env.repos .. "/" .. table.concat(segs, "/")
      o.name = prefix .. job.id .. (multi and ("-" .. (i - 1)) or "") .. ".wav"
    else
      if env.model(vc.modelName) or training[vc.modelName] then
        return nil, failure("ModelExists", "%s: a model named %q already exists", label, vc.modelName)
      end
      training[vc.modelName] = true
      for _, k in ipairs(o.inputs) do
        if job.inputs[k].sourceData ~= nil then
          return nil, failure("TrainingInputInvalid",
            "%s: training needs recordings (url or source inputs); input %d is text (sourceData)",
            label, k - 1)
        end
      end
    end
    for _, k in ipairs(o.inputs) do
      if job.inputs[k].sourceData == nil then p.recordings[k] = true end
    end
    p.outputs[i] = o
  end

  -- Where each recording comes from.
  for k in pairs(p.recordings) do
    local input, label = job.inputs[k], "input " .. (k - 1)
    if input.url then
      local ok, why = util.loopback_url(input.url)
      if not ok then
        return nil, failure("InputUnreadable",
          "%s: the sandbox fetches only loopback URLs (http://127.0.0.1, localhost, [::1]): %s",
          label, why)
      end
      p.recordings[k] = { url = input.url, file = string.format("in%d.%s", k - 1, url_extension(input.url)) }
    else
      local ok, why = util.safe_content_id(input.source.contentId)
      local segs, serr = util.safe_segments(input.source.path)
      if not ok or not segs or #segs == 0 then
        return nil, failure("InputUnreadable", "%s: source: %s", label,
          why or serr or "empty path")
      end
      table.insert(segs, 1, input.source.contentId)
      p.recordings[k] = { file = env.repos .. "/" .. table.concat(segs, "/") }
    end
  end
  return p
end

----------------------------------------------------------------------------
-- Scripts

local q = util.quote

-- Header shared by both phase scripts: `fail N` records step N and stops.
function Run:_script_head(phase)
  return table.concat({
    "# voiceclone sandbox: " .. phase .. " phase of job " .. self.job.id,
    "status=" .. q(self:_file(phase, "status")),
    "fail() { printf 'fail %s\\n' \"$1\" > \"$status.tmp\"; mv -f \"$status.tmp\" \"$status\"; exit 1; }",
    string.format("mkdir -p -- %s && cd %s || fail %d", q(self.dir), q(self.dir),
      self:_step("InternalError", "cannot create the work directory")),
    "",
  }, "\n")
end

local SCRIPT_TAIL = "printf 'ok\\n' > \"$status.tmp\" && mv -f \"$status.tmp\" \"$status\"\n"

function Run:_file(phase, ext)
  return self.dir .. "." .. phase .. "." .. ext
end

-- Register a step's error and return its number for `|| fail N`.
function Run:_step(code, fmt, ...)
  self.steps[#self.steps + 1] = { code = code, message = string.format(fmt, ...) }
  return #self.steps
end

function Run:_spawn(phase, body)
  local path = self:_file(phase, "sh")
  local ok, err = util.write_file(path, self:_script_head(phase) .. body .. SCRIPT_TAIL)
  if not ok then
    self.result = failure("InternalError", "cannot write the %s script: %s", phase, tostring(err))
    return
  end
  self.phase = phase
  local nrec = 0
  for _ in pairs(self.plan.recordings) do nrec = nrec + 1 end
  self.deadline = self.clock() + WATCHDOG_SECONDS + WATCHDOG_PER_INPUT * nrec
  self.spawned = true
  self.env.spawn('exec bash "$1"', { path }, self:_file(phase, "log"))
end

function Run:_prepare()
  local lines = {}
  local ks = {}
  for k in pairs(self.plan.recordings) do ks[#ks + 1] = k end
  table.sort(ks)
  for _, k in ipairs(ks) do
    local rec, label = self.plan.recordings[k], "input " .. (k - 1)
    if rec.url then
      local n = self:_step("InputUnreadable", "%s: could not fetch %s", label, rec.url)
      lines[#lines + 1] = string.format(
        "curl -sSf --globoff --proto =http,https --max-time 30 -o %s %s || fail %d",
        q(rec.file), q(rec.url), n)
    end
    local n = self:_step("InputUnreadable", "%s: not a readable audio recording", label)
    lines[#lines + 1] = string.format(
      "timeout %s sox %s -t raw -r 8000 -b 16 -e signed -c 1 in%d.raw || fail %d",
      TOOL_TIMEOUT, q(rec.file), k - 1, n)
    lines[#lines + 1] = string.format("timeout %s %s %s in%d.raw > in%d.pitch || fail %d",
      TOOL_TIMEOUT, LUA, q(PITCH_SCRIPT), k - 1, k - 1,
      self:_step("InternalError", "%s: the pitch estimator failed", label))
  end
  self:_spawn("prepare", table.concat(lines, "\n") .. "\n")
end

-- After prepare: read each recording's pitch, then render or finish.
function Run:_after_prepare()
  for k, rec in pairs(self.plan.recordings) do
    local hz = tonumber(util.read_file(string.format("%s/in%d.pitch", self.dir, k - 1)))
    if not hz then
      self.result = failure("InputUnreadable", "input %d: no voice found in the recording", k - 1)
      return
    end
    rec.pitch = hz
  end
  local render = false
  for _, o in ipairs(self.plan.outputs) do
    if o.type == 1 then render = true end
  end
  if not render then
    self:_complete()
  elseif self.env.audio == "tone" then
    self:_render_tones()
  else
    self:_render()
  end
end

-- --audio tone: every type 1 output at once, in Lua. Each tone is written
-- beside the work directory (DIR.o<i>.wav), whose parent always exists.
function Run:_render_tones()
  for i, o in ipairs(self.plan.outputs) do
    if o.type == 1 then
      if not util.exists(o.dir) and not util.mkdir_p(o.dir) then
        self.result = failure("InvalidOutput", "output %d: cannot create its destination directory",
          i - 1)
        return
      end
      o.file = string.format("%s.o%d.wav", self.dir, i - 1)
      self.tone_files[#self.tone_files + 1] = o.file
      local ok, err = util.write_file(o.file, work.tone_wav(o.pitch, #o.inputs))
      if not ok then
        self.result = failure("GenerationFailed", "output %d: cannot write its tone: %s", i - 1,
          tostring(err))
        return
      end
    end
  end
  self:_complete()
end

function Run:_render()
  local lines = {}
  for i, o in ipairs(self.plan.outputs) do
    if o.type == 1 then
      local label = "output " .. (i - 1)
      lines[#lines + 1] = string.format("mkdir -p -- %s || fail %d", q(o.dir),
        self:_step("InvalidOutput", "%s: cannot create its destination directory", label))
      local segs = {}
      for j, k in ipairs(o.inputs) do
        local seg = string.format("o%d_s%d.wav", i - 1, j - 1)
        local input = self.job.inputs[k]
        if input.sourceData ~= nil then
          -- The text goes through a file: user text never meets the shell.
          local txt = string.format("o%d_s%d.txt", i - 1, j - 1)
          local ok, err = util.write_file(self.dir .. "/" .. txt, input.sourceData)
          if not ok then
            self.result = failure("InternalError", "cannot write a text file: %s", tostring(err))
            return
          end
          local voice, knob = work.espeak_voice(o.pitch, has_cjk(input.sourceData) and "cmn" or "en")
          lines[#lines + 1] = string.format("timeout %s espeak-ng -v %s -p %d -w %s -f %s || fail %d",
            TOOL_TIMEOUT, voice, knob, seg, txt,
            self:_step("GenerationFailed", "%s: espeak-ng could not speak input %d", label, k - 1))
        else
          local rec = self.plan.recordings[k]
          local cents = 1200 * math.log(o.pitch / rec.pitch) / math.log(2)   -- 5.1: no base argument
          lines[#lines + 1] = string.format(
            "timeout %s sox %s -r %s -c 1 -b 16 %s pitch %.1f || fail %d",
            TOOL_TIMEOUT, q(rec.file), RATE, seg, cents,
            self:_step("GenerationFailed", "%s: sox could not convert input %d", label, k - 1))
        end
        segs[#segs + 1] = seg
      end
      local out = string.format("o%d.wav", i - 1)
      if #segs == 1 then
        lines[#lines + 1] = string.format("mv -f %s %s || fail %d", segs[1], out,
          self:_step("GenerationFailed", "%s: its audio went missing", label))
      else
        lines[#lines + 1] = string.format("timeout %s sox %s %s || fail %d", TOOL_TIMEOUT,
          table.concat(segs, " "), out,
          self:_step("GenerationFailed", "%s: sox could not join its segments", label))
      end
    end
  end
  self:_spawn("render", table.concat(lines, "\n") .. "\n")
end

-- Success: what the job must apply (files to move into place, models to add).
function Run:_complete()
  local results = {}
  for i, o in ipairs(self.plan.outputs) do
    if o.type == 1 then
      results[i] = { file = o.file or string.format("%s/o%d.wav", self.dir, i - 1), dir = o.dir,
                     name = o.name }
    else
      local sum, n = 0, 0
      for _, k in ipairs(o.inputs) do
        sum, n = sum + self.plan.recordings[k].pitch, n + 1
      end
      results[i] = { model = { name = o.model_name, pitch = math.floor(sum / n + 0.5) } }
    end
  end
  self.result = { ok = true, outputs = results }
end

----------------------------------------------------------------------------

-- Start the work of a job. env: repos (dir), workdir (dir), model(name) ->
-- model or nil, clock(), spawn(script, args, log) (a util.launcher's). Never
-- raises for a job's own faults: they become the run's result.
function work.start(job, env)
  local run = setmetatable({
    job = job, env = env, clock = env.clock, steps = {}, tone_files = {},
    dir = string.format("%s/%s.%s", env.workdir, job.id, util.token()),
  }, Run)
  local p, err = plan(job, env)
  if not p then
    run.result = err
    return run
  end
  run.plan = p
  if env.audio == "tone" and next(p.recordings) == nil then
    run:_render_tones()   -- nothing to fetch or measure: no command at all
  else
    run:_prepare()
  end
  return run
end

-- nil while the work runs; then { ok = true, outputs } or { ok = false, code, message }.
function Run:poll()
  if self.result or not self.phase then return self.result end
  local phase = self.phase
  local status = util.read_file(self:_file(phase, "status"))
  if not status then
    if self.clock() > self.deadline then
      self.result = failure("InternalError", "the %s phase did not finish", phase)
    end
    return self.result
  end
  self.phase = nil
  if status:match("^ok") then
    if phase == "prepare" then self:_after_prepare() else self:_complete() end
  else
    local step = self.steps[tonumber(status:match("^fail (%d+)"))]
      or { code = "InternalError", message = "the " .. phase .. " phase failed" }
    local detail = last_line(self:_file(phase, "log"))
    self.result = failure(step.code, "%s%s", step.message, detail and (" (" .. detail .. ")") or "")
  end
  return self.result
end

-- Remove the work directory (in the background: a late child may still write).
-- A run that started no command has only its tones to remove (if still there).
function Run:cleanup()
  if not self.spawned then
    for _, file in ipairs(self.tone_files) do os.remove(file) end
    return
  end
  self.env.spawn('rm -rf -- "$1" "$1".*', { self.dir })
end

return work
