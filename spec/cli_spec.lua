-- The voiceclone command (scripts/voiceclone, voiceclone/cli.lua), driven as
-- a subprocess against a real sandbox: every subcommand, --json that parses,
-- --help everywhere, exit statuses, and a secret key that never shows.
local helpers = require "support.helpers"

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local KEY = helpers.SECRET_KEY

local q = helpers.quote
local function tmpdir() return helpers.tmpdir(finally) end

-- The sandbox's fast audio: a tone instead of espeak-ng.
local FAST_AUDIO = { "--audio tone" }

-- Every output of every run, to look for the key in at the end.
local outputs = {}

-- Runs `voiceclone ARGS`; env: "default" (endpoint and credentials of the
-- sandbox in the environment), or a string of VAR=value words. Returns
-- { status =, out =, err = }.
local function run(args, env, stdin)
  local out, err = helpers.tmpname(), helpers.tmpname()
  local _, _, status = helpers.run(("cd %s && env -u VOICECLONE_SECRET_KEY -u VOICECLONE_SECRET_ID "
    .. "-u VOICECLONE_ENDPOINT -u VOICECLONE_REPOSITORIES %s %s scripts/voiceclone %s >%s 2>%s %s")
    :format(q(ROOT), env or "", helpers.LUA, args, q(out), q(err),
      stdin and ("<" .. q(stdin)) or "</dev/null"))
  local result = { status = status, out = helpers.read_file(out) or "", err = helpers.read_file(err) or "" }
  os.remove(out)
  os.remove(err)
  outputs[#outputs + 1] = result.out .. result.err
  return result
end

local function json_of(result)
  local doc, err = helpers.decode(result.out)
  assert(doc, ("not one JSON document (%s): %q; stderr %q"):format(tostring(err), result.out, result.err))
  return doc
end

local COMMANDS = { "models", "train", "say", "convert", "job", "jobs", "wait", "download", "batch",
                   "sandbox", "callbacks" }

describe("voiceclone", function()
  local sandbox, env, client

  lazy_setup(function()
    sandbox = helpers.start_sandbox(FAST_AUDIO)
    client = helpers.client(sandbox)
    env = ("VOICECLONE_ENDPOINT=%s VOICECLONE_SECRET_ID=%s VOICECLONE_SECRET_KEY=%s VOICECLONE_REPOSITORIES=%s")
      :format(q(sandbox.url), q(helpers.SECRET_ID), q(KEY), q(sandbox.url .. "/repos/{contentId}/{path}"))
    helpers.run("mkdir -p " .. q(sandbox.data .. "/repos/samples"))
    helpers.make_recording(sandbox.data .. "/repos/samples/voice.wav", "A sample of a voice.", 70)
  end)
  lazy_teardown(function() sandbox.stop() end)

  describe("help", function()
    it("lists every command, the environment and the exit statuses", function()
      local r = run("--help")
      assert.equal(0, r.status)
      for _, name in ipairs(COMMANDS) do assert.matches("\n  " .. name .. " ", r.out, 1, true) end
      for _, word in ipairs { "VOICECLONE_SECRET_ID", "VOICECLONE_SECRET_KEY", "VOICECLONE_ENDPOINT",
                              "VOICECLONE_REPOSITORIES", "exit status", "--json" } do
        assert.matches(word, r.out, 1, true)
      end
      for code = 0, 4 do assert.matches("\n  " .. code .. "  ", r.out, 1, true) end
      local bare = run("")
      assert.equal(2, bare.status)
      assert.matches("usage: voiceclone", bare.out, 1, true)
    end)

    it("--help on every subcommand, and 'help CMD'", function()
      for _, name in ipairs(COMMANDS) do
        local r = run(name .. " --help")
        assert.equal(0, r.status, name)
        assert.matches("usage: voiceclone " .. name, r.out, 1, true)
        assert.equal("", r.err)
      end
      assert.matches("usage: voiceclone say", run("help say").out, 1, true)
      -- --help wins over everything else on the line, even a bad option
      assert.equal(0, run("say --bogus --help").status)
    end)
  end)

  describe("usage errors exit 2", function()
    it("for bad command lines", function()
      local cases = {
        "nosuchcommand", "models --bogus", "models extra", "job", "job a b", "say",
        "say hi --content-id", "jobs", "wait", "download some-id", "convert --content-id c",
        "convert --url http://x/a.wav --source s:a.wav --content-id c", "convert --source nocolon",
        "train --url http://x/a.wav", "wait x --timeout abc", "batch", "callbacks --port 70000", "callbacks --listen 127.0.0.1",
        "--json say --wait-timeout 0 hi --content-id c",
      }
      for _, args in ipairs(cases) do
        local r = run(args, env)
        assert.equal(2, r.status, args .. ": " .. r.err)
        assert.truthy(r.err ~= "", args)
      end
    end)

    it("without credentials", function()
      local r = run("models", "VOICECLONE_ENDPOINT=" .. q(sandbox.url))
      assert.equal(2, r.status)
      assert.matches("VOICECLONE_SECRET_ID", r.err, 1, true)
    end)

    it("for a request breaking a documented rule (nothing sent)", function()
      local before = helpers.last_seq(sandbox)
      local r = run("say " .. q(("x"):rep(513)) .. " --content-id c --json", env)
      assert.equal(2, r.status)
      local doc = json_of(r)
      assert.equal("invalid", doc.error.kind)
      assert.equal("text", doc.error.field)
      assert.same({}, helpers.requests(sandbox, before))
    end)
  end)

  describe("jobs", function()
    it("say: sends the job and prints its id and state; --json is the API's job", function()
      local r = run("say 'Hello from the command line' --content-id cli --destination /said --prefix p_ "
        .. "--custom-id cli-say-1", env)
      assert.equal(0, r.status, r.err)
      local id = r.out:match("^(%S+) SUBMITTED customId=cli%-say%-1\n$")
      assert.truthy(id, r.out)
      local request = helpers.last_request(sandbox).json
      assert.equal("CreateJob", request.action)
      assert.equal("Hello from the command line", request.createJobRequest.inputs[1].sourceData)
      assert.equal("/said", request.createJobRequest.outputs[1].destination)

      local stdin = helpers.tmpname()
      local f = assert(io.open(stdin, "w"))
      f:write("From stdin, with a comma\n")
      f:close()
      r = run("--json say - --content-id cli --custom-id cli-say-1", env, stdin)
      os.remove(stdin)
      assert.equal(0, r.status, r.err)
      local doc = json_of(r)
      assert.equal("SUBMITTED", doc.status)
      assert.equal(1, doc.job.state)
      assert.equal("From stdin, with a comma", doc.job.inputs[1].sourceData)
      assert.same({ 0 }, doc.job.outputs[1].inputSelectors)      -- as on the wire

      local listed = json_of(run("jobs --custom-id cli-say-1 --json", env))
      assert.equal(2, listed.total)
      assert.equal(2, #listed.jobs)
      local human = run("jobs --custom-id cli-say-1", env)
      assert.equal(0, human.status)
      assert.matches(id, human.out, 1, true)
      local none = json_of(run("jobs --custom-id nobody-has-this --json", env))
      assert.same({ jobs = {}, total = 0 }, none)
      assert.matches('"jobs":[]', run("jobs --custom-id nobody-has-this --json", env).out, 1, true)

      -- wait: prints each state as it changes, then the result
      r = run("wait " .. id .. " --interval 0.05", env)
      assert.equal(0, r.status, r.err)
      assert.matches("%d%d:%d%d:%d%d " .. id:gsub("%-", "%%-") .. " COMPLETED\n", r.out)
      assert.matches("result cli:said/p_", r.out, 1, true)

      local shown = run("job " .. id, env)
      assert.equal(0, shown.status)
      assert.matches("state      COMPLETED", shown.out, 1, true)
      assert.matches("customId   cli-say-1", shown.out, 1, true)
      doc = json_of(run("--json job " .. id, env))
      assert.equal(id, doc.job.id)
      assert.equal("COMPLETED", doc.status)
      assert.equal("cli", doc.result.contentId)
    end)

    it("say --wait --download FILE; download ID --out FILE", function()
      local dir = tmpdir()
      local r = run("say 'Download me' --content-id cli --wait --poll-interval 0.05 --download "
        .. q(dir .. "/said.wav") .. " --json", env)
      assert.equal(0, r.status, r.err)
      local doc = json_of(r)
      assert.equal("COMPLETED", doc.status)
      assert.equal(dir .. "/said.wav", doc.file)
      assert.same({ "SUBMITTED", "PROCESSING", "COMPLETED" },
                  { doc.states[1].state, doc.states[2].state, doc.states[#doc.states].state })
      local wav = helpers.read_file(dir .. "/said.wav")
      assert.equal(helpers.read_file(sandbox.data .. "/repos/cli/" .. doc.result.path), wav)

      r = run("download " .. doc.job.id .. " --out " .. q(dir .. "/again.wav"), env)
      assert.equal(0, r.status, r.err)
      assert.equal(dir .. "/again.wav\n", r.out)
      assert.equal(wav, helpers.read_file(dir .. "/again.wav"))
      -- no repositories: a usage error, nothing written
      r = run("download " .. doc.job.id .. " --out " .. q(dir .. "/none.wav"),
              (env:gsub("VOICECLONE_REPOSITORIES=%S+", "")))
      assert.equal(2, r.status)
      assert.matches("repositories", r.err, 1, true)
      assert.is_nil(helpers.read_file(dir .. "/none.wav"))
      -- a job not COMPLETED yet
      local pending = assert(client:synthesize { text = "later", content_id = "cli" })
      r = run("download " .. pending.id .. " --out " .. q(dir .. "/p.wav"), env)
      assert.equal(1, r.status)
      assert.matches("--wait", r.err, 1, true)
      r = run("download " .. pending.id .. " --wait --out " .. q(dir .. "/p.wav"), env)
      assert.equal(0, r.status, r.err)
      -- a destination that cannot be written: a local failure
      r = run("download " .. pending.id .. " --out /nonexistent/dir/x.wav", env)
      assert.equal(4, r.status, r.err)
    end)

    it("train, models, convert", function()
      local r = run("train --source samples:voice.wav --model cli_voice --epochs 3 --wait "
        .. "--poll-interval 0.05 --json", env)
      assert.equal(0, r.status, r.err)
      local doc = json_of(r)
      assert.equal("COMPLETED", doc.status)
      assert.equal("cli_voice", doc.result.modelName)
      assert.equal(3, doc.job.outputs[1].smartContentDescriptor.voiceCloning.totalEpoch)

      -- the service's own voice first: it is always there, though ListModels leaves it out
      local models = json_of(run("models --json", env))
      assert.equal(2, models.total)
      assert.same({ name = "default", builtin = true }, models.models[1])
      assert.equal("cli_voice", models.models[2].name)
      assert.matches("^default%s+%(built in%)\ncli_voice%s", run("models", env).out)

      r = run("convert --source samples:voice.wav --model cli_voice --content-id cli --wait "
        .. "--poll-interval 0.05 --json", env)
      assert.equal(0, r.status, r.err)
      doc = json_of(r)
      assert.equal("COMPLETED", doc.status)
      assert.same({ contentId = "samples", path = "voice.wav" }, doc.job.inputs[1].source)
      r = run("convert --url " .. q(sandbox.url .. "/repos/samples/voice.wav") .. " --content-id cli", env)
      assert.equal(0, r.status, r.err)
      assert.matches("SUBMITTED", r.out, 1, true)
    end)
  end)

  describe("failures", function()
    it("exit 1 for a job that ends in ERROR, with its reason", function()
      local r = run("say x --content-id cli --model no_such_model --wait --poll-interval 0.05", env)
      assert.equal(1, r.status)
      assert.matches("ERROR", r.out, 1, true)
      assert.matches("no_such_model", r.err, 1, true)
      local job = assert(client:synthesize { text = "x", content_id = "cli", model = "no_such_model" })
      r = run("wait " .. job.id .. " --interval 0.05 --json", env)
      assert.equal(1, r.status)
      local doc = json_of(r)
      assert.equal("job", doc.error.kind)
      assert.equal("ERROR", doc.status)
    end)

    it("exit 1 for an API error; exit 3 for a timeout or an unreachable service", function()
      local r = run("job no-such-job-id --json", env)
      assert.equal(1, r.status)
      assert.equal("http", json_of(r).error.kind)
      local slow = assert(client:synthesize { text = "slow", content_id = "cli" })
      r = run("wait " .. slow.id .. " --timeout 0.01 --interval 0.005", env)
      assert.equal(3, r.status)
      r = run("models --endpoint http://127.0.0.1:9 --http-timeout 2", env)
      assert.equal(3, r.status)
      local wrong = run("models --json --secret-key wrong-key-" .. KEY:sub(1, 4), env)
      assert.equal(1, wrong.status)
      assert.equal(401, json_of(wrong).error.status)
    end)
  end)

  describe("callbacks", function()
    it("acts once on each confirmed job: --out DIR and --exec CMD, nothing interpolated", function()
      local dir = tmpdir()
      local log, marker = dir .. "/callbacks.log", dir .. "/injected"
      local exec = "printf '%s %s %s %s\\n' \"$1\" \"$2\" \"$VOICECLONE_JOB_ID\" \"$VOICECLONE_JOB_STATE\" >>"
        .. q(dir .. "/exec.log")
      helpers.run(("cd %s && env %s %s scripts/voiceclone callbacks --listen 127.0.0.1:0 --max-jobs 2 --duration 60 --out %s "
        .. "--exec %s >%s 2>&1 &"):format(q(ROOT), env, helpers.LUA, q(dir .. "/jobs"), q(exec), q(log)))
      local url = helpers.wait_for("the receiver", function()
        return (helpers.read_file(log) or ""):match("listening on (http://%S+)")
      end)
      local a = assert(client:synthesize { text = "$(touch " .. marker .. ")`touch " .. marker .. "`",
                                           content_id = "cli", callback = url,
                                           custom_id = "x'; touch " .. marker .. "; '" })
      local b = assert(client:synthesize { text = "two", content_id = "cli", model = "no_such_model",
                                           callback = url })
      helpers.wait_for("both jobs", function()
        local text = helpers.read_file(dir .. "/exec.log") or ""
        return select(2, text:gsub("\n", "")) >= 2
      end, 30)
      local exec_log = helpers.read_file(dir .. "/exec.log")
      assert.matches(("%s COMPLETED %s COMPLETED\n"):format(a.id, a.id), exec_log, 1, true)
      assert.matches(("%s ERROR %s ERROR\n"):format(b.id, b.id), exec_log, 1, true)
      local saved = assert(helpers.decode(helpers.read_file(dir .. "/jobs/" .. a.id .. ".json")))
      assert.equal(a.id, saved.id)
      assert.equal(3, saved.state)
      assert.same({ 0 }, saved.outputs[1].inputSelectors)
      assert.equal(4, assert(helpers.decode(helpers.read_file(dir .. "/jobs/" .. b.id .. ".json"))).state)
      assert.is_nil(helpers.read_file(marker))
      helpers.wait_for("the receiver to stop after 2 jobs", function()
        return (helpers.read_file(log) or ""):find("stopped", 1, true)
      end)
      local out = helpers.read_file(log)
      assert.matches(a.id .. " COMPLETED", out, 1, true)
      outputs[#outputs + 1] = out
    end)
  end)

  describe("as a new user reads it", function()
    it("names flags in errors, not the library's options", function()
      local r = run("say Hello", env)
      assert.equal(2, r.status)
      assert.matches("voiceclone say: --content-id is required", r.err, 1, true)
      r = run("say Hello --content-id cli --prefix " .. ("p"):rep(30) .. " --json", env)
      assert.equal(2, r.status)
      assert.matches("--prefix must have at most 19 characters", r.err, 1, true)
      assert.equal("--prefix", json_of(r).error.flag)
      r = run("train --source samples:voice.wav --model 'bad name'", env)
      assert.matches("--model may hold only", r.err, 1, true)
      local done = assert(client:synthesize { text = "to a file", content_id = "cli" })
      assert(done:wait { interval = 0.05 })
      r = run("download " .. done.id .. " --out /nonexistent-dir/x.wav", env)
      assert.equal(4, r.status)
      assert.matches("--out", r.err, 1, true)
      assert.not_matches("dest", r.err, 1, true)
    end)

    it("takes one set of option names for waiting, and the old spellings too", function()
      local job = assert(client:synthesize { text = "names", content_id = "cli" })
      for _, flags in ipairs { "--wait-timeout 30 --poll-interval 0.05", "--timeout 30 --interval 0.05" } do
        local r = run("wait " .. job.id .. " " .. flags, env)
        assert.equal(0, r.status, flags .. ": " .. r.err)
        assert.matches("result cli:", r.out, 1, true)
        r = run("download " .. job.id .. " --wait " .. flags:gsub(" %-%-%a+%-?%a* 0%.05", "")
          .. " --out " .. q(tmpdir() .. "/a.wav"), env)
        assert.equal(0, r.status, flags .. ": " .. r.err)
      end
      assert.equal(2, run("wait " .. job.id .. " --wait-timeout 0", env).status)
    end)

    it("prints plain JSON: slashes as they are, numbers as people write them", function()
      local r = run("say 'a/b' --content-id cli --destination /said/deep --json", env)
      assert.equal(0, r.status, r.err)
      assert.matches('"destination":"/said/deep"', r.out, 1, true)
      assert.not_matches("\\/", r.out)
      local cli = require "voiceclone.cli"
      assert.equal('{"a":0.0000576,"b":[1,2.5,-3],"c":"x/y","d":1796223403520}',
        cli.encode { a = 5.76e-05, b = { 1, 2.5, -3 }, c = "x/y", d = 1796223403520 })
      assert.equal(5.76e-05, helpers.decode(cli.encode { 5.76e-05 })[1])
    end)

    it("prints the batch as its customIds name it", function()
      local dir = tmpdir()
      local lines = dir .. "/lines.csv"
      local f = assert(io.open(lines, "w"))
      f:write("id,text\none,First.\n")
      f:close()
      local r = run("batch " .. q(lines) .. " --content-id cli --poll-interval 0.05 --progress none", env)
      assert.equal(0, r.status, r.err)
      local tag = assert(r.out:match("^batch (%x+): 1 lines"), r.out)
      local jobs = assert(client:list_jobs("vcb-" .. tag .. "-one"))
      assert.equal(1, #jobs)
      r = run("batch " .. q(lines) .. " --content-id cli --progress none --json", env)
      assert.equal(tag, json_of(r).batch)
      assert.equal("vcb-" .. tag .. "-one", json_of(r).lines[1].customId)
    end)

    it("run from an installed place, looks for nothing beside itself", function()
      local dir = tmpdir()
      -- what an old script would have found first, from DIR/bin: DIR/lua-voiceclone/...
      assert(helpers.run(("mkdir -p %s/bin %s/lua-voiceclone/voiceclone/cli && cp scripts/voiceclone %s/bin/")
        :format(q(dir), q(dir), q(dir))))
      local trap = assert(io.open(dir .. "/lua-voiceclone/voiceclone/cli/init.lua", "w"))
      trap:write('error("the script searched beside itself")\n')
      trap:close()
      local out, ok = helpers.read_command(("LUA_PATH=%s %s %s/bin/voiceclone --version 2>&1")
        :format(q(ROOT .. "/lua-voiceclone/?.lua;" .. ROOT .. "/lua-voiceclone/?/init.lua;;"),
          helpers.LUA, q(dir)))
      assert.is_true(ok, out)
      assert.matches("^voiceclone %d+%.%d+%.%d+", out)
    end)
  end)

  describe("the secret key", function()
    it("never appears: given with --secret-key, in help, errors, usage errors and --json", function()
      local flags = ("--endpoint %s --secret-id %s --secret-key %s"):format(q(sandbox.url),
        q(helpers.SECRET_ID), q(KEY))
      local runs = {
        run("models --json " .. flags),
        run("models " .. flags),
        run("say 'key test' --content-id cli --wait --poll-interval 0.05 --json " .. flags),
        run("say --help " .. flags),
        run(flags .. " --help"),
        run("say " .. flags .. " --bogus"),
        run("say " .. flags .. " --text --secret-key " .. q(KEY)),
        run("say " .. flags .. " one two"),
        run("jobs " .. flags .. " " .. q(KEY)),
        run("models --endpoint http://127.0.0.1:9 --secret-id a --secret-key " .. q(KEY)),
        run("models --endpoint " .. q(sandbox.url) .. " --secret-id a --secret-key=" .. q(KEY) .. " --json"),
        run("nosuch " .. flags),
        -- quoted back escaped: by --json (its "/" and '"'), by a %q in a message
        run("say --json " .. flags .. " one " .. q(KEY)),
        run("wait --json " .. flags .. " --timeout " .. q(KEY) .. " j-1"),
        run("wait " .. flags .. " --timeout " .. q(KEY) .. " j-1"),
      }
      assert.equal(0, runs[1].status, runs[1].err)
      assert.equal(0, runs[3].status, runs[3].err)
      assert.equal(1, runs[11].status)
      for i = 13, 15 do assert.equal(2, runs[i].status, runs[i].err) end
      -- in none of its forms (spec/support/secret_watch.lua)
      local forms = require("support.secret_watch").forms(KEY)
      for _, text in ipairs(outputs) do
        for _, form in ipairs(forms) do
          assert.is_nil(text:find(form.text, 1, true), form.name .. " in: " .. text:gsub(KEY, "<key>"))
        end
      end
      assert.is_true(#outputs > 40)
    end)
  end)
end)
