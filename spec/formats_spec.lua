-- Audio the host can play: downloads converted with sox (format = "wav",
-- "ogg", "ulaw8k"), each result read back with soxi; atomic (a failed
-- conversion leaves neither dest nor a temporary file); a clear error
-- without sox; yielding inside tasks; the workflow and the batch take the
-- format too. Through the public API, against a running sandbox.
local voiceclone = require "voiceclone"
local workflow = require "voiceclone.workflow"
local batch = require "voiceclone.batch"
local audio = require "voiceclone.audio"
local fs = require "voiceclone.fs"
local uv = require "luv"
local helpers = require "support.helpers"

local q = helpers.quote
local FAST_AUDIO = { "--audio tone" }   -- the sandbox's tone: 22050 Hz mono 16-bit WAV

-- What a test undoes after it, last first (busted keeps one `finally` a test).
local undo = {}
local function later(fn) undo[#undo + 1] = fn end
local function undo_all()
  for i = #undo, 1, -1 do undo[i]() end
  undo = {}
end

local function tmpdir()
  local path = helpers.tmpdir()
  later(function() helpers.run("rm -rf " .. helpers.quote(path)) end)
  return path
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function files_in(dir)
  local names = assert(fs.list(dir))
  table.sort(names)
  return names
end

-- What soxi reads in a file: { rate =, channels =, encoding =, type = }.
local function soxi(path)
  local out, ok = helpers.read_command(("soxi -r %s && soxi -c %s && soxi -e %s && soxi -t %s")
    :format(q(path), q(path), q(path), q(path)))
  assert(ok, "soxi cannot read " .. path .. ": " .. out)
  local rate, channels, encoding, kind = out:match("^(%d+)\n(%d+)\n([^\n]+)\n([^\n]+)")
  return { rate = tonumber(rate), channels = tonumber(channels), encoding = encoding, type = kind }
end

-- PATH with, first, a directory holding an executable `sox` made of this
-- shell script.
local function fake_sox(script)
  local dir = tmpdir()
  write_file(dir .. "/sox", "#!/bin/sh\n" .. script .. "\n")
  assert(helpers.run("chmod +x " .. q(dir .. "/sox")))
  return dir .. ":" .. os.getenv("PATH")
end

-- PATH for the rest of this test (sox is looked up there, as uv.spawn does).
local function set_path(path)
  local saved = os.getenv("PATH")
  assert(uv.os_setenv("PATH", path))
  later(function() uv.os_setenv("PATH", saved) end)
end

local REAL_SOX = "/usr/bin/sox"
local SLOW_SOX = "sleep 0.5; exec " .. REAL_SOX .. ' "$@"'

describe("download formats", function()
  local sandbox, client, job, dir, saved_preload

  lazy_setup(function()
    -- sox is not ours to check: make test-asan's sanitizer preload is for this Lua only
    saved_preload = os.getenv("LD_PRELOAD")
    if saved_preload then uv.os_unsetenv("LD_PRELOAD") end
    sandbox = helpers.start_sandbox(FAST_AUDIO)
    client = helpers.client(sandbox, { repositories = sandbox.url .. "/repos/{contentId}/{path}" })
    job = assert(client:synthesize { text = "play me", content_id = "repo" })
    assert(job:wait { interval = 0.05 })
  end)
  lazy_teardown(function()
    sandbox.stop()
    if saved_preload then uv.os_setenv("LD_PRELOAD", saved_preload) end
  end)
  before_each(function() dir = tmpdir() end)
  after_each(undo_all)

  -- A client whose repositories function counts the downloads asked for.
  local function counting_client()
    local asked = { n = 0 }
    local c = helpers.client(sandbox, { repositories = function(content_id, path)
      asked.n = asked.n + 1
      return ("%s/repos/%s/%s"):format(sandbox.url, content_id, path)
    end })
    return c, asked
  end

  it("gives each format as soxi reads it, under the caller's own file name", function()
    local wav = assert(job:download(dir .. "/line.wav", { format = "wav" }))
    assert.same({ rate = 22050, channels = 1, encoding = "Signed Integer PCM", type = "wav" }, soxi(wav))
    local ogg = assert(job:download(dir .. "/line.ogg", { format = "ogg" }))
    local info = soxi(ogg)
    assert.equal("Vorbis", info.encoding)
    assert.equal(22050, info.rate)
    assert.equal(1, info.channels)
    local ulaw = assert(job:download(dir .. "/line-8k.wav", { format = "ulaw8k" }))
    assert.same({ rate = 8000, channels = 1, encoding = "u-law", type = "wav" }, soxi(ulaw))
    -- the extension is the caller's: nothing is renamed
    local odd = assert(client:download(client:repository_url("repo", job:result().path), dir .. "/voice.bin",
                                       { format = "ogg" }))
    assert.equal(dir .. "/voice.bin", odd)
    assert.equal("Vorbis", soxi(odd).encoding)
    -- a relative dest, even one that looks like an option
    local cwd = uv.cwd()
    uv.chdir(dir)
    later(function() uv.chdir(cwd) end)
    assert.equal("-n.wav", job:download("-n.wav", { format = "ulaw8k" }))
    uv.chdir(cwd)
    assert.equal("u-law", soxi(dir .. "/-n.wav").encoding)
    assert.same({ "-n.wav", "line-8k.wav", "line.ogg", "line.wav", "voice.bin" }, files_in(dir))
    -- and without a format, the bytes as the repository has them
    assert(job:download(dir .. "/raw.wav", {}))
    assert.equal(helpers.read_file(sandbox.data .. "/repos/repo/" .. job:result().path),
                 helpers.read_file(dir .. "/raw.wav"))
  end)

  it("refuses an unknown format as 'invalid' before anything is downloaded", function()
    local c, asked = counting_client()
    local again = assert(c:get_job(job.id))
    for _, format in ipairs { "mp3", "WAV", "", "ulaw" } do
      local ok, err = again:download(dir .. "/x.wav", { format = format })
      assert.is_nil(ok)
      assert.equal("invalid", err.kind)
      assert.equal("format", err.field)
    end
    local ok, err = again:download(dir .. "/x.wav", { fmt = "ogg" })
    assert.is_nil(ok)
    assert.same({ "invalid", "fmt" }, { err.kind, err.field })
    -- client:download never reaches the URL: a closed port would say "network"
    ok, err = c:download(("http://127.0.0.1:%d/a.wav"):format(helpers.closed_port()), dir .. "/x.wav",
                         { format = "flac" })
    assert.is_nil(ok)
    assert.same({ "invalid", "format" }, { err.kind, err.field })
    assert.equal(0, asked.n)
    assert.same({}, files_in(dir))
    assert.has_error(function() again:download(dir .. "/x.wav", { format = 8000 }) end)
    assert.has_error(function() again:download(dir .. "/x.wav", "ogg") end)
    assert.has_error(function() c:download("http://x/", dir .. "/x.wav", "ogg") end)
  end)

  it("without sox on PATH: a 'convert' error saying how to install it, nothing downloaded", function()
    local c, asked = counting_client()
    local again = assert(c:get_job(job.id))
    set_path(tmpdir() .. ":/nonexistent")
    local ok, err = again:download(dir .. "/x.ogg", { format = "ogg" })
    assert.is_nil(ok)
    assert.equal("convert", err.kind)
    assert.equal("format", err.field)
    assert.equal("ogg", err.format)
    assert.is_false(err.retryable)
    assert.matches("needs sox", tostring(err), 1, true)
    assert.matches("apt-get install sox", tostring(err), 1, true)
    ok, err = c:download(c:repository_url("repo", job:result().path), dir .. "/x.wav", { format = "ulaw8k" })
    assert.is_nil(ok)
    assert.same({ "convert", "format" }, { err.kind, err.field })
    assert.equal(1, asked.n)   -- that repository_url call, by hand: nothing fetched
    assert.same({}, files_in(dir))
    -- an unknown format is still "invalid"
    ok, err = again:download(dir .. "/x.ogg", { format = "mp3" })
    assert.equal("invalid", err.kind)
  end)

  it("a broken download fails in sox: no dest, no temporary file, an earlier dest untouched", function()
    write_file(sandbox.data .. "/repos/repo/broken.wav", "RIFF\0\0\0\0WAVEthis is no audio at all")
    write_file(sandbox.data .. "/repos/repo/noise.wav", ("\1\2\3\4"):rep(1000))
    local url = sandbox.url .. "/repos/repo/"
    for _, name in ipairs { "broken.wav", "noise.wav" } do
      for _, format in ipairs { "wav", "ogg", "ulaw8k" } do
        local ok, err = client:download(url .. name, dir .. "/out.audio", { format = format })
        assert.is_nil(ok)
        assert.equal("convert", err.kind)
        assert.equal("format", err.field)
        assert.matches("sox could not convert the download to " .. format, tostring(err), 1, true)
        assert.same({}, files_in(dir))
      end
    end
    write_file(dir .. "/kept.wav", "the earlier file")
    local ok, err = client:download(url .. "broken.wav", dir .. "/kept.wav", { format = "ogg" })
    assert.is_nil(ok)
    assert.equal("convert", err.kind)
    assert.equal("the earlier file", helpers.read_file(dir .. "/kept.wav"))
    assert.same({ "kept.wav" }, files_in(dir))
    -- a failed download (404) leaves nothing either
    ok, err = client:download(url .. "nothing.wav", dir .. "/none.ogg", { format = "ogg" })
    assert.is_nil(ok)
    assert.equal("http", err.kind)
    assert.same({ "kept.wav" }, files_in(dir))
    -- nor does a destination directory that does not exist
    ok, err = job:download(dir .. "/no/such/dir/x.ogg", { format = "ogg" })
    assert.is_nil(ok)
    assert.same({ "invalid", "dest" }, { err.kind, err.field })
  end)

  it("a sox that writes half a file and fails leaves nothing under dest", function()
    set_path(fake_sox('for last; do :; done; echo half a file > "$last"; '
      .. 'echo "sox FAIL: out of luck" >&2; exit 3'))
    local ok, err = job:download(dir .. "/line.ogg", { format = "ogg" })
    assert.is_nil(ok)
    assert.equal("convert", err.kind)
    assert.equal(3, err.sox_status)
    assert.matches("out of luck", tostring(err), 1, true)
    assert.same({}, files_in(dir))
  end)

  it("a sox without the format says which package brings it", function()
    set_path(fake_sox([[echo "sox FAIL formats: no handler for given file type \`ogg'" >&2; exit 2]]))
    local ok, err = job:download(dir .. "/line.ogg", { format = "ogg" })
    assert.is_nil(ok)
    assert.equal("convert", err.kind)
    assert.matches("libsox-fmt-base", tostring(err), 1, true)
    assert.same({}, files_in(dir))
  end)

  it("a sox that takes too long is killed, and leaves nothing", function()
    set_path(fake_sox("exec sleep 30"))
    local limit = audio.TIME_LIMIT
    audio.TIME_LIMIT = 0.3
    later(function() audio.TIME_LIMIT = limit end)
    local started = uv.hrtime()
    local ok, err = job:download(dir .. "/line.wav", { format = "wav" })
    assert.is_nil(ok)
    assert.equal("convert", err.kind)
    assert.matches("took more than", tostring(err), 1, true)
    assert.is_true((uv.hrtime() - started) / 1e9 < 5)
    assert.same({}, files_in(dir))
  end)

  it("inside tasks: several conversions at once while other tasks go on", function()
    -- each sox waits (up to 5 s) until all four have started, then 0.3 s more
    local marks = tmpdir()
    set_path(fake_sox(("touch %s/$$; i=0; while [ $(ls %s | wc -l) -lt 4 ] && [ $i -lt 100 ]; do "
      .. "sleep 0.05; i=$((i+1)); done; [ $i -lt 100 ] && echo together >>%s.log; sleep 0.3; exec %s \"$@\"")
      :format(q(marks), q(marks), q(marks), REAL_SOX)))
    later(function() os.remove(marks .. ".log") end)
    local c = helpers.client(sandbox, { repositories = sandbox.url .. "/repos/{contentId}/{path}" })
    local again = assert(c:get_job(job.id))
    local list = {}
    for i = 1, 4 do
      list[i] = c:spawn(function()
        return again:download(("%s/task%d.ogg"):format(dir, i), { format = "ogg" })
      end)
    end
    local ticks, calls = 0, 0
    c:spawn(function()
      while not (list[1].done and list[2].done and list[3].done and list[4].done) do
        ticks = ticks + 1
        c:sleep(0.01)
      end
    end)
    c:spawn(function()   -- API calls go on too
      for _ = 1, 5 do
        assert(c:get_job(job.id))
        calls = calls + 1
      end
    end)
    assert.is_true(c:run(30))
    for i = 1, 4 do
      assert.is_true(list[i].ok, tostring(list[i].error))
      assert.equal(("%s/task%d.ogg"):format(dir, i), list[i].results[1], tostring(list[i].results[2]))
      assert.equal("Vorbis", soxi(list[i].results[1]).encoding)
    end
    assert.equal(("together\n"):rep(4), helpers.read_file(marks .. ".log"))   -- all four at once
    assert.is_true(ticks >= 10, "the ticking task ran " .. ticks .. " times")
    assert.equal(5, calls)
    assert.same({ "task1.ogg", "task2.ogg", "task3.ogg", "task4.ogg" }, files_in(dir))
  end)

  it("outside a task, waits for sox (blocking)", function()
    set_path(fake_sox(SLOW_SOX))
    local started = uv.hrtime()
    assert.equal(dir .. "/b.wav", job:download(dir .. "/b.wav", { format = "ulaw8k" }))
    assert.is_true((uv.hrtime() - started) / 1e9 >= 0.5)
    assert.equal(8000, soxi(dir .. "/b.wav").rate)
  end)

  it("a sox that leaves stderr open (a child of its own holds it) is not waited for past its exit", function()
    local pid_file = helpers.tmpname()
    set_path(fake_sox(("sleep 10 & echo $! > %s; exec %s \"$@\""):format(q(pid_file), REAL_SOX)))
    later(function()
      helpers.run("kill $(cat " .. q(pid_file) .. ") 2>/dev/null")
      os.remove(pid_file)
    end)
    local started = uv.hrtime()
    assert.equal(dir .. "/s.ogg", job:download(dir .. "/s.ogg", { format = "ogg" }))
    assert.is_true((uv.hrtime() - started) / 1e9 < 5)
    assert.equal("Vorbis", soxi(dir .. "/s.ogg").encoding)
  end)

  it("a task canceled while sox runs leaves no temporary file, and no sox", function()
    local pid_file = helpers.tmpname()
    set_path(fake_sox("echo $$ > " .. q(pid_file) .. "; exec sleep 30"))
    local c = helpers.client(sandbox, { repositories = sandbox.url .. "/repos/{contentId}/{path}" })
    local again = assert(c:get_job(job.id))
    local task = c:spawn(function() return again:download(dir .. "/c.ogg", { format = "ogg" }) end)
    helpers.wait_for("sox to start", function()
      c:step()
      return helpers.read_file(pid_file)
    end)
    local pid = helpers.read_file(pid_file):match("%d+")
    assert.is_true(#files_in(dir) >= 2)   -- the download and the conversion under way
    task:cancel()
    task = nil
    helpers.wait_for("the temporaries to go", function()
      c:step()            -- the timers let go of the canceled task...
      collectgarbage()    -- ...and its coroutine is collected
      collectgarbage()
      return #files_in(dir) == 0
    end)
    helpers.wait_for("sox to be killed", function()
      uv.run("nowait")    -- reaps it
      return helpers.read_file("/proc/" .. pid .. "/status") == nil
    end)
    os.remove(pid_file)
  end)

  it("in callbacks.listen's on_job, while libuv's loop runs, converts by yielding to that loop", function()
    local callbacks = require "voiceclone.callbacks"
    local c = helpers.client(sandbox, { repositories = sandbox.url .. "/repos/{contentId}/{path}" })
    local file, err
    local acted = callbacks.listen {
      client = c, once = true, duration = 30,
      on_listen = function(url)
        assert(c:synthesize { text = "called back", content_id = "repo", callback = url })
      end,
      on_job = function(j) file, err = j:download(dir .. "/hook.ogg", { format = "ogg" }) end,
    }
    assert.equal(1, acted)
    assert.equal(dir .. "/hook.ogg", file, tostring(err))
    assert.equal("Vorbis", soxi(file).encoding)
    assert.same({ "hook.ogg" }, files_in(dir))
  end)

  it("raises outside a task inside a luv callback, where it could not wait for sox", function()
    local timer, ok, message = uv.new_timer(), nil, nil
    timer:start(0, 0, function()
      ok, message = pcall(job.download, job, dir .. "/x.ogg", { format = "ogg" })
      timer:close()
    end)
    while ok == nil do uv.run("once") end
    assert.is_false(ok)
    assert.matches("in a task of the client", message, 1, true)
    assert.same({}, files_in(dir))
  end)

  describe("workflow.train_then_synthesize", function()
    local lines = { { id = "one", text = "first line" }, { id = "two", text = "second line" } }

    it("converts each line's download (format), named for it", function()
      local results, summary = workflow.train_then_synthesize(client, {
        model = "default", lines = lines, content_id = "repo", download = dir, format = "ogg",
        poll_interval = 0.05,
      })
      assert.is_table(results, tostring(summary))
      assert.equal(2, summary.completed)
      for i, r in ipairs(results) do
        assert.equal(("%s/%s.ogg"):format(dir, lines[i].id), r.file)
        assert.equal("Vorbis", soxi(r.file).encoding)
      end
      results = assert(workflow.train_then_synthesize(client, {
        model = "default", lines = lines, content_id = "repo", download = dir, format = "ulaw8k",
        poll_interval = 0.05,
      }))
      assert.equal(dir .. "/one.wav", results[1].file)
      assert.equal("u-law", soxi(results[1].file).encoding)
      assert.same({ "one.ogg", "one.wav", "two.ogg", "two.wav" }, files_in(dir))
    end)

    it("refuses a bad format, or no sox, before any job", function()
      local before = helpers.last_seq(sandbox)
      local ok, err = workflow.train_then_synthesize(client, {
        model = "default", lines = lines, content_id = "repo", download = dir, format = "mp3" })
      assert.is_nil(ok)
      assert.same({ "invalid", "format" }, { err.kind, err.field })
      ok, err = workflow.train_then_synthesize(client, {
        model = "default", lines = lines, content_id = "repo", format = "ogg" })
      assert.same({ "invalid", "format" }, { err.kind, err.field })
      assert.has_error(function()
        workflow.train_then_synthesize(client, { model = "default", lines = lines, content_id = "repo",
                                                 download = dir, format = true })
      end)
      set_path("/nonexistent")
      ok, err = workflow.train_then_synthesize(client, {
        model = "default", lines = lines, content_id = "repo", download = dir, format = "ogg" })
      assert.is_nil(ok)
      assert.same({ "convert", "format" }, { err.kind, err.field })
      assert.equal(before, helpers.last_seq(sandbox))
    end)
  end)

  describe("batch.run", function()
    local lines = { { id = "b1", text = "batch line one" }, { id = "b2", text = "batch line two" } }

    it("converts each line's download (audio_format), and journals it", function()
      local journal = dir .. "/lines.journal"
      local out = dir .. "/out"
      assert(fs.mkdir_p(out))
      -- what a killed conversion left: swept before the run
      write_file(out .. "/b1.wav.part-99999-3.in", "x")
      write_file(out .. "/b1.wav.part-99999-4.out.part-99999-5", "x")
      write_file(out .. "/b2.ogg.part-99999-7", "x")
      write_file(out .. "/other.wav.part-99999-8.in", "not this batch's")
      local summary = assert(batch.run { client = client, lines = lines, content_id = "repo",
        download = out, audio_format = "ulaw8k", journal = journal, poll_interval = 0.05 })
      assert.equal(2, summary.completed)
      for i, line in ipairs(summary.lines) do
        assert.equal(("%s/%s.wav"):format(out, lines[i].id), line.file)
        assert.same({ rate = 8000, channels = 1, encoding = "u-law", type = "wav" }, soxi(line.file))
      end
      assert.same({ "b1.wav", "b2.wav", "other.wav.part-99999-8.in" }, files_in(out))
      -- run again: done, in that format
      summary = assert(batch.run { client = client, lines = lines, content_id = "repo",
        download = out, audio_format = "ulaw8k", journal = journal, poll_interval = 0.05 })
      assert.equal(2, summary.resumed)
      -- in another format: downloaded again, as .ogg
      summary = assert(batch.run { client = client, lines = lines, content_id = "repo",
        download = out, audio_format = "ogg", journal = journal, poll_interval = 0.05 })
      assert.equal(0, summary.resumed)
      assert.equal(2, summary.completed)
      assert.equal(out .. "/b1.ogg", summary.lines[1].file)
      assert.equal("Vorbis", soxi(out .. "/b1.ogg").encoding)
      -- and as the service gives it: downloaded again too
      summary = assert(batch.run { client = client, lines = lines, content_id = "repo",
        download = out, journal = journal, poll_interval = 0.05 })
      assert.equal(0, summary.resumed)
      assert.equal(helpers.read_file(sandbox.data .. "/repos/repo/" .. summary.lines[1].output:match(":(.*)")),
                   helpers.read_file(summary.lines[1].file))
    end)

    it("refuses a bad audio_format, or no sox, before any job", function()
      local before = helpers.last_seq(sandbox)
      local ok, err = batch.run { client = client, lines = lines, content_id = "repo", download = dir,
                                  audio_format = "mp3", journal = false }
      assert.is_nil(ok)
      assert.same({ "invalid", "audio_format" }, { err.kind, err.field })
      ok, err = batch.run { client = client, lines = lines, content_id = "repo", audio_format = "ogg",
                            journal = false }
      assert.same({ "invalid", "audio_format" }, { err.kind, err.field })
      set_path("/nonexistent")
      ok, err = batch.run { client = client, lines = lines, content_id = "repo", download = dir,
                            audio_format = "ogg", journal = false }
      assert.is_nil(ok)
      assert.same({ "convert", "audio_format" }, { err.kind, err.field })
      assert.equal(before, helpers.last_seq(sandbox))
      assert.is_table(voiceclone)
    end)
  end)
  describe("the command's --format", function()
    local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

    -- Runs `voiceclone ARGS` against the sandbox: { status =, out =, err = };
    -- path: the PATH it runs with (the interpreter is found before).
    local function voiceclone(args, path)
      local lua = helpers.read_command("command -v " .. helpers.LUA):match("%S+")
      local out, err = helpers.tmpname(), helpers.tmpname()
      local _, _, status = helpers.run(("cd %s && env VOICECLONE_ENDPOINT=%s VOICECLONE_SECRET_ID=%s "
        .. "VOICECLONE_SECRET_KEY=%s VOICECLONE_REPOSITORIES=%s %s %s scripts/voiceclone %s >%s 2>%s")
        :format(q(ROOT), q(sandbox.url), q(helpers.SECRET_ID), q(helpers.SECRET_KEY),
          q(sandbox.url .. "/repos/{contentId}/{path}"), path and ("PATH=" .. q(path)) or "", lua, args,
          q(out), q(err)))
      local result = { status = status, out = helpers.read_file(out) or "", err = helpers.read_file(err) or "" }
      os.remove(out)
      os.remove(err)
      return result
    end

    it("say, convert and download convert what they download", function()
      local r = voiceclone(("say 'Download me as Ogg' --content-id repo --wait --poll-interval 0.05 "
        .. "--download %s --format ogg"):format(q(dir .. "/say.ogg")))
      assert.equal(0, r.status, r.err)
      assert.equal("Vorbis", soxi(dir .. "/say.ogg").encoding)
      r = voiceclone(("convert --url %s --content-id repo --wait --poll-interval 0.05 --download %s "
        .. "--format ulaw8k"):format(q(sandbox.url .. "/repos/repo/" .. job:result().path),
        q(dir .. "/convert.wav")))
      assert.equal(0, r.status, r.err)
      assert.same({ rate = 8000, channels = 1, encoding = "u-law", type = "wav" }, soxi(dir .. "/convert.wav"))
      r = voiceclone(("download %s --out %s --format wav --json"):format(job.id, q(dir .. "/download.wav")))
      assert.equal(0, r.status, r.err)
      assert.equal(dir .. "/download.wav", helpers.decode(r.out).file)
      assert.equal("Signed Integer PCM", soxi(dir .. "/download.wav").encoding)
      assert.same({ "convert.wav", "download.wav", "say.ogg" }, files_in(dir))
    end)

    it("batch --format (and --format csv still reads LINES as CSV)", function()
      local lines = write_file(dir .. "/lines.csv", "id,text\nc1,first\nc2,second\n")
      local r = voiceclone(("batch %s --content-id repo --poll-interval 0.05 --progress none --download %s "
        .. "--format ogg"):format(q(lines), q(dir .. "/out")))
      assert.equal(0, r.status, r.out .. r.err)
      assert.same({ "c1.ogg", "c2.ogg" }, files_in(dir .. "/out"))
      assert.equal("Vorbis", soxi(dir .. "/out/c1.ogg").encoding)
      local odd = write_file(dir .. "/lines.txt", "id,text\nd1,third\n")   -- no extension to go by
      r = voiceclone(("batch %s --content-id repo --poll-interval 0.05 --progress none --download %s "
        .. "--format csv --json"):format(q(odd), q(dir .. "/csv")))
      assert.equal(0, r.status, r.out .. r.err)
      assert.same({ "d1.wav" }, files_in(dir .. "/csv"))
    end)

    it("an unknown format is a usage error (2), no sox a local one (4), before any job", function()
      local before = helpers.last_seq(sandbox)
      for _, args in ipairs {
        "say hi --content-id repo --download " .. q(dir .. "/x.ogg") .. " --format mp3",
        "say hi --content-id repo --format ogg",   -- no --download
        "convert --url http://x/a.wav --content-id repo --download " .. q(dir .. "/x.ogg") .. " --format OGG",
        "download " .. job.id .. " --out " .. q(dir .. "/x.ogg") .. " --format flac",
        "batch " .. q(write_file(dir .. "/l.csv", "id,text\n1,a\n")) .. " --content-id repo --download "
          .. q(dir .. "/out") .. " --format mp3",
      } do
        local r = voiceclone(args)
        assert.equal(2, r.status, args .. ": " .. r.err)
        assert.matches("format", r.err, 1, true)
      end
      local nowhere = tmpdir()
      for _, args in ipairs {
        "say hi --content-id repo --download " .. q(dir .. "/x.ogg") .. " --format ogg",
        "download " .. job.id .. " --out " .. q(dir .. "/x.ogg") .. " --format ogg",
        "batch " .. q(dir .. "/l.csv") .. " --content-id repo --download " .. q(dir .. "/out")
          .. " --format ogg --progress none",
      } do
        local r = voiceclone(args, nowhere)
        assert.equal(4, r.status, args .. ": " .. r.err)
        assert.matches("apt-get install sox", r.err, 1, true)
      end
      assert.equal(before, helpers.last_seq(sandbox))
      assert.same({ "l.csv" }, files_in(dir))
    end)
  end)
end)
