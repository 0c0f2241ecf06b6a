-- Batches (voiceclone/batch.lua and `voiceclone batch`): LINES parsed right
-- (RFC 4180 CSV, JSON Lines), deterministic customIds, and the promise that
-- matters: killed with SIGKILL at any moment and run again, a batch voices
-- every line exactly once. Against a real sandbox; what reached the service
-- is checked there (its request log, ListJobs by customId, the files written
-- under its repositories).
local batch = require "voiceclone.batch"
local helpers = require "support.helpers"

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

local q = helpers.quote
local function tmpdir() return helpers.tmpdir(finally) end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- The sandbox's fast audio: a tone instead of espeak-ng.
local FAST_AUDIO = { "--audio tone" }

-- The environment of `voiceclone` for the sandbox, as VAR=value words.
local function env_of(sandbox)
  return ("VOICECLONE_ENDPOINT=%s VOICECLONE_SECRET_ID=%s VOICECLONE_SECRET_KEY=%s VOICECLONE_REPOSITORIES=%s")
    :format(q(sandbox.url), q(helpers.SECRET_ID), q(helpers.SECRET_KEY),
      q(sandbox.url .. "/repos/{contentId}/{path}"))
end

-- The shell command running `voiceclone ARGS` against the sandbox.
local function command(sandbox, args)
  return ("cd %s && env %s %s scripts/voiceclone %s"):format(q(ROOT), env_of(sandbox), helpers.LUA, args)
end

-- Runs `voiceclone ARGS` against the sandbox: { status =, out =, err = }.
local function voiceclone(sandbox, args)
  local out, err = helpers.tmpname(), helpers.tmpname()
  local _, _, status = helpers.run(("%s >%s 2>%s"):format(command(sandbox, args), q(out), q(err)))
  local result = { status = status, out = helpers.read_file(out) or "", err = helpers.read_file(err) or "" }
  os.remove(out)
  os.remove(err)
  return result
end

local function files_in(dir)
  local p = io.popen("find " .. q(dir) .. " -type f -name '*.wav' 2>/dev/null")
  local list = {}
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

local function creates_since(sandbox, before)
  local n = 0
  for _, r in ipairs(helpers.requests(sandbox, before)) do
    if r.json and r.json.action == "CreateJob" then n = n + 1 end
  end
  return n
end

local function has_download()
  return require("voiceclone.core").Job.download ~= nil
end

describe("LINES", function()
  it("CSV: quoted fields keep commas, quotes, newlines; CRLF and a BOM are fine", function()
    local records = assert(batch.parse_csv('\239\187\191id,text\r\n1,"Hello, world"\r\n'
      .. '2,"She said ""hi""\nand left"\r\n3,plain\r\n"4",""\n'))
    assert.same({ "id", "text" }, { records[1][1], records[1][2] })
    assert.equal("Hello, world", records[2][2])
    assert.equal('She said "hi"\nand left', records[3][2])
    assert.equal("plain", records[4][2])
    assert.same({ "4", "" }, { records[5][1], records[5][2] })
    assert.equal(1, records[1].line)
    assert.equal(3, records[3].line)
    assert.equal(5, records[4].line)          -- the record before spans two lines
    assert.equal(5, #records)
  end)

  it("CSV: empty fields, a trailing comma, blank lines, no final newline", function()
    local records = assert(batch.parse_csv("a,b,c\n\n1,,\n2,\"\",x"))
    assert.equal(3, #records)
    assert.same({ "1", "", "" }, { records[2][1], records[2][2], records[2][3] })
    assert.same({ "2", "", "x" }, { records[3][1], records[3][2], records[3][3] })
  end)

  it("CSV: broken quoting is an error naming the line", function()
    local ok, err = batch.parse_csv('id,text\n1,"never closed\n2,x\n')
    assert.is_nil(ok)
    assert.matches("line 2", err)
    ok, err = batch.parse_csv('id,text\n1,"closed"junk\n')
    assert.is_nil(ok)
    assert.matches("line 2", err)
    ok, err = batch.parse_csv('id,text\n1,a "bare" quote\n')
    assert.is_nil(ok)
    assert.matches("line 2", err)
  end)

  it("CSV lines need id and text columns, the header's field count, unique ids", function()
    local lines = assert(batch.parse_lines('text,id,extra\n"a, b",x1,\n"c",x2,z\n', "csv"))
    assert.same({ id = "x1", text = "a, b", source_line = 2 }, lines[1])
    assert.equal("x2", lines[2].id)
    local ok, err = batch.parse_lines("id,words\n1,a\n", "csv")
    assert.is_nil(ok)
    assert.matches("id and a text column", err)
    ok, err = batch.parse_lines('id,text\n1,a,b\n', "csv")
    assert.is_nil(ok)
    assert.matches("line 2: 3 fields", err)
    ok, err = batch.parse_lines('id,text\n1,a\n1,b\n', "csv")
    assert.is_nil(ok)
    assert.matches('line 3: id "1" already used on line 2', err)
  end)

  it("JSON Lines: string or whole-number ids, blank lines skipped, errors by line", function()
    local lines = assert(batch.parse_lines('{"id":"a","text":"x, \\"y\\""}\n\n{"id":7,"text":"z"}\n', "jsonl"))
    assert.equal(2, #lines)
    assert.same({ id = "a", text = 'x, "y"', source_line = 1 }, lines[1])
    assert.same({ id = "7", text = "z", source_line = 3 }, lines[2])
    local ok, err = batch.parse_lines('{"id":"a","text":"x"}\n{"id":"b"}\n', "jsonl")
    assert.is_nil(ok)
    assert.matches("line 2", err)
    ok, err = batch.parse_lines('{"id":1.5,"text":"x"}\n', "jsonl")
    assert.is_nil(ok)
    assert.matches("line 1", err)
    ok, err = batch.parse_lines('not json\n', "jsonl")
    assert.is_nil(ok)
    assert.matches("line 1", err)
  end)

  it("the format comes from the extension, else the content", function()
    assert.equal("csv", batch.detect_format("x.CSV", '{"id":1}'))
    assert.equal("jsonl", batch.detect_format("x.jsonl", "id,text"))
    assert.equal("jsonl", batch.detect_format("x.ndjson", "id,text"))
    assert.equal("jsonl", batch.detect_format("lines", '  {"id":1,"text":"a"}'))
    assert.equal("csv", batch.detect_format("lines", "id,text\n"))
  end)
end)

describe("customIds", function()
  it("are deterministic, distinct, under 64 characters, and hash long or odd line ids", function()
    local a = batch.custom_id("batch-1", "line-7")
    assert.equal(a, batch.custom_id("batch-1", "line-7"))
    assert.matches("^vcb%-%x+%-line%-7$", a)
    assert.not_equal(a, batch.custom_id("batch-2", "line-7"))
    assert.not_equal(a, batch.custom_id("batch-1", "line-8"))
    local long = batch.custom_id("b", ("x"):rep(500))
    assert.matches("^vcb%-%x+%-~%x+$", long)
    assert.is_true(#long < 64)
    local odd = batch.custom_id("b", "héllo wörld")
    assert.matches("^vcb%-%x+%-~%x+$", odd)
    assert.is_true(#batch.custom_id(("b"):rep(1000), ("y"):rep(40)) < 64)
    assert.equal(16, #batch.hash(""))
  end)

  it("default batch ids depend on the file's absolute path, the model and the content id", function()
    local id = batch.default_id("/tmp/a.csv", "m", "c")
    assert.equal(id, batch.default_id("/tmp/./x/../a.csv", "m", "c"))
    assert.not_equal(id, batch.default_id("/tmp/b.csv", "m", "c"))
    assert.not_equal(id, batch.default_id("/tmp/a.csv", "n", "c"))
    assert.not_equal(id, batch.default_id("/tmp/a.csv", "m", "d"))
  end)
end)

describe("batch.run", function()
  local sandbox, client

  lazy_setup(function()
    sandbox = helpers.start_sandbox(FAST_AUDIO)
    client = helpers.client(sandbox)
  end)
  lazy_teardown(function() sandbox.stop() end)

  it("voices every line once, journals it, and on a rerun asks nothing", function()
    local dir = tmpdir()
    local lines = write_file(dir .. "/lines.csv", 'id,text\na,"one, two"\nb,"three ""3"""\nc,four\n')
    local before = helpers.last_seq(sandbox)
    local progress = {}
    local summary = assert(batch.run { client = client, lines = lines, content_id = "run1",
      destination = "/out", poll_interval = 0.05, concurrency = 2,
      on_progress = function(s) progress[#progress + 1] = s end })
    assert.equal(3, summary.total)
    assert.equal(3, summary.completed)
    assert.equal(0, summary.failed)
    assert.equal(3, summary.created)
    assert.equal(3, creates_since(sandbox, before))
    assert.equal("csv", summary.format)
    local last = progress[#progress]
    assert.is_true(last.final)
    assert.equal(3, last.completed)
    assert.equal(0, last.in_flight)
    for _, line in ipairs(summary.lines) do
      assert.equal("completed", line.status)
      assert.equal(batch.custom_id(summary.batch_id, line.id), line.custom_id)
      local jobs = assert(client:list_jobs(line.custom_id))
      assert.equal(1, #jobs)
      assert.equal(line.job_id, jobs[1].id)
      assert.matches("^run1:out/", line.output)
    end
    local jobs = assert(client:list_jobs(summary.lines[2].custom_id))
    assert.equal('three "3"', jobs[1].inputs[1].sourceData)
    assert.equal(3, #files_in(sandbox.data .. "/repos/run1"))

    -- The journal: JSON Lines, each naming line, customId, job and state.
    local journal = helpers.read_file(lines .. ".journal")
    local completed = 0
    for raw in journal:gmatch("[^\n]+") do
      local r = assert(helpers.decode(raw))
      assert.equal(summary.batch_id, r.batch)
      assert.equal(batch.custom_id(summary.batch_id, r.line), r.customId)
      if r.state == "COMPLETED" then completed = completed + 1 end
    end
    assert.equal(3, completed)

    before = helpers.last_seq(sandbox)
    local again = assert(batch.run { client = client, lines = lines, content_id = "run1",
      destination = "/out", poll_interval = 0.05 })
    assert.equal(3, again.completed)
    assert.equal(3, again.resumed)
    assert.equal(0, again.created)
    assert.same({}, helpers.requests(sandbox, before))   -- the journal said it all
  end)

  it("without its journal, finds the jobs on the service by customId and creates none", function()
    local dir = tmpdir()
    local lines = write_file(dir .. "/lines.jsonl", '{"id":"x","text":"ex"}\n{"id":"y","text":"why"}\n')
    local first = assert(batch.run { client = client, lines = lines, content_id = "run2",
      poll_interval = 0.05 })
    assert.equal(2, first.completed)
    os.remove(lines .. ".journal")
    local before = helpers.last_seq(sandbox)
    local second = assert(batch.run { client = client, lines = lines, content_id = "run2",
      poll_interval = 0.05 })
    assert.equal(2, second.completed)
    assert.equal(2, second.adopted)
    assert.equal(0, second.created)
    assert.equal(0, creates_since(sandbox, before))
    assert.equal(2, #files_in(sandbox.data .. "/repos/run2"))
  end)

  it("adopts a job created just before a kill, which the journal never saw", function()
    local dir = tmpdir()
    local lines = write_file(dir .. "/lines.csv", "id,text\n1,first\n2,second\n")
    local id = batch.default_id(lines, "default", "run3")
    -- the kill came right after CreateJob for line 2: the service has it, the journal not
    local early = assert(client:synthesize { text = "second", content_id = "run3",
                                             custom_id = batch.custom_id(id, "2") })
    local before = helpers.last_seq(sandbox)
    local summary = assert(batch.run { client = client, lines = lines, content_id = "run3",
      poll_interval = 0.05 })
    assert.equal(2, summary.completed)
    assert.equal(1, summary.created)
    assert.equal(1, summary.adopted)
    assert.equal(early.id, summary.lines[2].job_id)
    assert.equal(1, creates_since(sandbox, before))
    local listed = 0
    for _, r in ipairs(helpers.requests(sandbox, before)) do
      if r.json and r.json.action == "ListJobs" then listed = listed + 1 end
    end
    assert.equal(2, listed)                       -- asked before creating anything
  end)

  it("takes lines as a table, and a torn last journal record does not hide the next", function()
    local dir = tmpdir()
    local journal = write_file(dir .. "/j.journal", '{"batch":"t","line":"1","cust')   -- torn by a kill
    local summary = assert(batch.run { client = client, content_id = "run4", batch_id = "t",
      journal = journal, poll_interval = 0.05,
      lines = { { id = "1", text = "uno" }, { id = 2, text = "dos" } } })
    assert.equal(2, summary.completed)
    local text = helpers.read_file(journal)
    assert.matches('^{"batch":"t","line":"1","cust\n{', text)   -- the torn record stands alone
    local j = assert(batch.open_journal(journal))
    j:close()
    local known = j:lines_of("t")
    assert.equal("COMPLETED", known["1"].state)
    assert.equal("COMPLETED", known["2"].state)
  end)

  it("reports a failing line and goes on with the others", function()
    local summary = assert(batch.run { client = client, content_id = "run5", batch_id = "f",
      journal = false, poll_interval = 0.05,
      lines = { { id = "ok", text = "fine" }, { id = "long", text = ("a"):rep(513) } } })
    assert.equal(1, summary.completed)
    assert.equal(1, summary.failed)
    assert.equal("failed", summary.lines[2].status)
    assert.equal("invalid", summary.lines[2].error.kind)
    assert.equal("text", summary.lines[2].error.field)
  end)

  it("checks its options", function()
    local ok, err = batch.run { client = client, lines = {}, content_id = "x", concurrency = 0 }
    assert.is_nil(ok)
    assert.equal("concurrency", err.field)
    ok, err = batch.run { client = client, lines = {}, content_id = "x", bogus = 1 }
    assert.is_nil(ok)
    assert.equal("bogus", err.field)
    ok, err = batch.run { client = client, lines = "/nonexistent/lines.csv", content_id = "x" }
    assert.is_nil(ok)
    assert.equal("lines", err.field)
    assert.has_error(function() batch.run("x") end)
  end)
end)

describe("voiceclone batch", function()
  local sandbox, client

  lazy_setup(function()
    sandbox = helpers.start_sandbox(FAST_AUDIO)
    client = helpers.client(sandbox, { max_in_flight = 64 })
  end)
  lazy_teardown(function() sandbox.stop() end)

  it("parses a CSV with quotes, commas and newlines, and sends each text as written", function()
    local dir = tmpdir()
    local texts = { 'Hello, world', 'She said "hi",\nthen left.', 'plain', ',"', '' .. "tab\there" }
    local csv = { "id,text\r\n" }
    for i, text in ipairs(texts) do
      csv[#csv + 1] = ('q%d,"%s"\r\n'):format(i, text:gsub('"', '""'))
    end
    local lines = write_file(dir .. "/quoted.csv", table.concat(csv))
    local r = voiceclone(sandbox, "--json batch " .. q(lines) .. " --content-id csv --poll-interval 0.05 "
      .. "--progress none")
    assert.equal(0, r.status, r.err)
    local doc = assert(helpers.decode(r.out))
    assert.equal(#texts, doc.completed)
    for i, line in ipairs(doc.lines) do
      assert.equal("q" .. i, line.id)
      local jobs = assert(client:list_jobs(line.customId))
      assert.equal(1, #jobs)
      assert.equal(texts[i], jobs[1].inputs[1].sourceData)
    end
  end)

  it("exits 1 and reports a failing line; the others are voiced", function()
    local dir = tmpdir()
    local lines = write_file(dir .. "/fail.jsonl", '{"id":"good","text":"fine"}\n'
      .. '{"id":"bad","text":"' .. ("x"):rep(600) .. '"}\n')
    local r = voiceclone(sandbox, "batch " .. q(lines) .. " --content-id failing --poll-interval 0.05")
    assert.equal(1, r.status)
    assert.matches("1 completed, 1 failed", r.out)
    assert.matches("failed: line bad", r.out)
    assert.matches("512", r.out)
    r = voiceclone(sandbox, "batch " .. q(lines) .. " --content-id failing --poll-interval 0.05 --json")
    assert.equal(1, r.status)
    local doc = assert(helpers.decode(r.out))
    assert.equal(1, doc.failed)
    assert.equal(1, doc.resumed)
    assert.equal("failed", doc.lines[2].status)
    assert.equal("invalid", doc.lines[2].error.kind)
  end)

  it("shows a live bar on a terminal and plain lines otherwise", function()
    local dir = tmpdir()
    local lines = write_file(dir .. "/p.csv", "id,text\n1,a\n2,b\n")
    local r = voiceclone(sandbox, "batch " .. q(lines) .. " --content-id bar --poll-interval 0.05 "
      .. "--progress bar")
    assert.equal(0, r.status, r.err)
    assert.matches("\r[", r.err, 1, true)
    assert.matches("2/2 done  0 failed  0 in flight", r.err, 1, true)
    assert.matches("ETA", r.err, 1, true)
    assert.matches("\n$", r.err)
    os.remove(lines .. ".journal")
    r = voiceclone(sandbox, "batch " .. q(lines) .. " --content-id bar --poll-interval 0.05")
    assert.equal(0, r.status, r.err)                     -- stderr is a file here: plain lines
    assert.is_nil(r.err:find("\r", 1, true))
    assert.matches("2/2 done, 0 failed, 0 in flight", r.err, 1, true)
    -- on a terminal (script(1) gives it one), the bar by itself
    if helpers.run("command -v script >/dev/null") then
      os.remove(lines .. ".journal")
      local typescript = dir .. "/typescript"
      -- (the credentials in its environment: the typescript records the command)
      helpers.run(("cd %s && env %s script -qec %s %s >/dev/null"):format(q(ROOT), env_of(sandbox),
        q(helpers.LUA .. " scripts/voiceclone batch " .. q(lines) .. " --content-id bar --poll-interval 0.05"),
        q(typescript)))
      local seen = helpers.read_file(typescript) or ""
      assert.matches("\r[########################] 2/2 done", seen, 1, true)
    end
  end)

  it("refuses bad options and LINES with status 2", function()
    local dir = tmpdir()
    local lines = write_file(dir .. "/u.csv", "id,text\n1,a\n")
    assert.equal(2, voiceclone(sandbox, "batch " .. q(lines)).status)                  -- no --content-id
    assert.equal(2, voiceclone(sandbox, "batch --content-id c").status)                -- no LINES
    assert.equal(2, voiceclone(sandbox, "batch " .. q(lines) .. " --content-id c --concurrency 0").status)
    assert.equal(2, voiceclone(sandbox, "batch " .. q(lines) .. " --content-id c --format xml").status)
    local broken = write_file(dir .. "/broken.csv", 'id,text\n1,"open\n')
    local r = voiceclone(sandbox, "batch " .. q(broken) .. " --content-id c")
    assert.equal(2, r.status)
    assert.matches("line 2", r.err)
    assert.equal(2, voiceclone(sandbox, "batch " .. q(dir .. "/missing.csv") .. " --content-id c").status)
    r = voiceclone(sandbox, "batch " .. q(lines) .. " --content-id c --journal /nonexistent/dir/j")
    assert.equal(4, r.status)
  end)

  it("killed with SIGKILL three times and resumed, voices 500 lines exactly once each", function()
    local dir = tmpdir()
    local rows = { "id,text" }
    for i = 1, 500 do rows[#rows + 1] = ('L%03d,"Line %d, said once."'):format(i, i) end
    local lines = write_file(dir .. "/500.csv", table.concat(rows, "\n") .. "\n")
    local download = has_download() and (dir .. "/wav") or nil
    local args = ("batch %s --content-id five --destination /lines --concurrency 32 --poll-interval 0.05 "
      .. "--progress plain%s"):format(q(lines), download and (" --download " .. q(download)) or "")
    local pidfile, log = dir .. "/pid", dir .. "/log"
    local kills = 0
    math.randomseed(os.time())
    for _ = 1, 3 do
      os.remove(pidfile)
      -- the pid is the batch's own (exec), so kill -9 hits it and nothing else
      local exec = command(sandbox, args):gsub("&& env ", "&& exec env ", 1)
      helpers.run(("sh -c %s >>%s 2>&1 &"):format(q("echo $$ >" .. q(pidfile) .. "; " .. exec), q(log)))
      local pid = helpers.wait_for("the batch to start", function()
        return (helpers.read_file(pidfile) or ""):match("%d+")
      end)
      helpers.run(("sleep %.2f"):format(0.3 + math.random() * 1.2))
      if helpers.run("kill -0 " .. pid .. " 2>/dev/null") then
        helpers.run("kill -9 " .. pid)
        kills = kills + 1
      end
      helpers.wait_for("the batch to die", function()
        return not helpers.run("kill -0 " .. pid .. " 2>/dev/null")
      end)
    end
    assert.is_true(kills >= 2, "the batch ended before it could be killed")
    local r = voiceclone(sandbox, args .. " --json")
    assert.equal(0, r.status, r.err)
    local doc = assert(helpers.decode(r.out))
    assert.equal(500, doc.total)
    assert.equal(500, doc.completed)
    assert.equal(0, doc.failed)
    assert.equal(0, doc.duplicates)
    assert.is_true(doc.resumed > 0)

    -- Exactly one job per line on the service, all COMPLETED, and 500 files.
    local jobs_per_line, completed, seen = {}, 0, {}
    for i, line in ipairs(doc.lines) do
      client:spawn(function()
        local jobs = assert(client:list_jobs(line.customId))
        jobs_per_line[i] = #jobs
        for _, job in ipairs(jobs) do
          if job.state == 3 then completed = completed + 1 end
          seen[job.id] = true
        end
      end)
    end
    assert(client:run(60))
    for i = 1, 500 do assert.equal(1, jobs_per_line[i], "line " .. doc.lines[i].id) end
    assert.equal(500, completed)
    local wavs = files_in(sandbox.data .. "/repos/five")
    assert.equal(500, #wavs)
    if download then assert.equal(500, #files_in(download)) end
    -- and the sandbox's own store holds exactly these 500 jobs for the batch
    local store = {}
    for raw in (helpers.read_file(sandbox.data .. "/jobs.jsonl") or ""):gmatch("[^\n]+") do
      local job = helpers.decode(raw)
      if job and type(job.customId) == "string" and job.customId:find("^vcb%-")
          and type(job.outputs) == "table" and job.outputs[1].contentId == "five" then
        store[job.id] = true
      end
    end
    local count = 0
    for id in pairs(store) do
      count = count + 1
      assert.is_true(seen[id])
    end
    assert.equal(500, count)
  end)

  it("refuses a second run on the same journal at once: exit 2, saying another run holds it", function()
    local dir = tmpdir()
    local lines = {}
    for i = 1, 30 do lines[i] = ("%d,Line %d of a locked batch."):format(i, i) end
    local csv = write_file(dir .. "/locked.csv", "id,text\n" .. table.concat(lines, "\n") .. "\n")
    -- the first run holds the journal while it works (a slow sandbox keeps it busy)
    local slow = helpers.start_sandbox { "--audio tone", "--latency", "200" }
    local first_out = helpers.tmpname()
    assert(helpers.run(("%s >%s 2>&1 &"):format(command(slow, "batch " .. q(csv) .. " --content-id lk"),
      q(first_out))))
    helpers.wait_for("the first run to start", function()
      local j = helpers.read_file(csv .. ".journal")
      return j and #j > 0
    end)
    local second = voiceclone(slow, "batch " .. q(csv) .. " --content-id lk")
    assert.equal(2, second.status, second.err)
    assert.matches("another run", second.err)
    -- waiting for it instead: the second run then finds every line done
    local third = voiceclone(slow, "batch " .. q(csv) .. " --content-id lk --wait-for-journal")
    slow.stop()
    assert.equal(0, third.status, third.err .. third.out)
    assert.matches("30 lines, 30 completed", third.out)
    assert.matches("0 jobs created", third.out)
  end)

  it("two runs at once on one journal leave no line created twice", function()
    local dir = tmpdir()
    local lines = {}
    for i = 1, 40 do lines[i] = ("%d,Twice %d."):format(i, i) end
    local csv = write_file(dir .. "/twice.csv", "id,text\n" .. table.concat(lines, "\n") .. "\n")
    local before = helpers.last_seq(sandbox)
    local outs = { helpers.tmpname(), helpers.tmpname() }
    for i = 1, 2 do
      assert(helpers.run(("%s >%s 2>&1 &"):format(
        command(sandbox, "batch " .. q(csv) .. " --content-id tw --wait-for-journal"), q(outs[i]))))
    end
    helpers.wait_for("both runs to finish", function()
      local a, b = helpers.read_file(outs[1]) or "", helpers.read_file(outs[2]) or ""
      return a:find("lines,") and b:find("lines,")
    end, 60)
    assert.equal(40, creates_since(sandbox, before))
  end)
end)
