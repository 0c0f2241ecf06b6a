-- Downloads: a job's audio from its storage repository to a local file.
local voiceclone = require "voiceclone"
local helpers = require "support.helpers"

local function files_in(dir)
  local p = io.popen("ls -A '" .. dir .. "' 2>/dev/null")
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  return names
end

describe("downloads", function()
  local sandbox, client, job, dir

  lazy_setup(function()
    sandbox = helpers.start_sandbox()
    client = helpers.client(sandbox, { repositories = sandbox.url .. "/repos/{contentId}/{path}" })
    job = assert(client:synthesize { text = "fetch me", content_id = "repo", destination = "my lines/" })
    assert(job:wait { interval = 0.05 })
  end)
  lazy_teardown(function() sandbox.stop() end)
  before_each(function()
    dir = helpers.tmpname()
    helpers.run("mkdir -p '" .. dir .. "'")
  end)
  after_each(function() helpers.run("rm -rf '" .. dir .. "'") end)

  it("maps a repository to a URL with a template, escaping the path", function()
    assert.equal(sandbox.url .. "/repos/repo/my%20lines/a.wav", client:repository_url("repo", "/my lines/a.wav"))
  end)

  it("fetches a job's file, identical to the repository's", function()
    local dest = dir .. "/line.wav"
    assert.equal(dest, job:download(dest))
    local original = helpers.read_file(sandbox.data .. "/repos/repo/" .. job:result().path)
    assert.equal(original, helpers.read_file(dest))
    assert.same({ "line.wav" }, files_in(dir))
  end)

  it("maps through a function too, and works inside a task", function()
    local seen
    local mapped = helpers.client(sandbox, { repositories = function(content_id, path)
      seen = content_id .. ":" .. path
      return ("%s/repos/%s/%s"):format(sandbox.url, content_id, (path:gsub(" ", "%%20")))
    end })
    local again = assert(mapped:get_job(job.id))
    local task = mapped:spawn(function() return again:download(dir .. "/task.wav") end)
    assert.is_true(mapped:run())
    assert.equal(dir .. "/task.wav", task.results[1])
    assert.equal("repo:" .. job:result().path, seen)
    assert.equal("RIFF", helpers.read_file(dir .. "/task.wav"):sub(1, 4))
  end)

  it("refuses a job that is not COMPLETED, and a client without repositories", function()
    local pending_job = assert(client:synthesize { text = "not yet", content_id = "repo" })
    local ok, err = pending_job:download(dir .. "/x.wav")
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    assert.equal("job", err.field)
    local plain = helpers.client(sandbox)
    ok, err = assert(plain:get_job(job.id)):download(dir .. "/x.wav")
    assert.is_nil(ok)
    assert.equal("repositories", err.field)
    assert.same({}, files_in(dir))
    assert.has_error(function() job:download(42) end)
  end)

  it("leaves no file behind for a missing file (HTTP 404)", function()
    local ok, err = client:download(sandbox.url .. "/repos/repo/nothing.wav", dir .. "/x.wav")
    assert.is_nil(ok)
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.same({}, files_in(dir))
  end)

  it("never leaves a partial file under the final name when the transfer is cut", function()
    local server = helpers.start_misbehaving_server()
    local ok, err = client:download(server.url_for("cut") .. "/file.wav", dir .. "/cut.wav")
    server.stop()
    assert.is_nil(ok)
    assert.equal("network", err.kind)
    assert.same({}, files_in(dir))
  end)

  it("reports a destination it cannot write", function()
    local ok, err = client:download(sandbox.url .. "/repos/repo/" .. job:result().path,
                                    dir .. "/no/such/dir/x.wav")
    assert.is_nil(ok)
    assert.equal("invalid", err.kind)
    assert.equal("dest", err.field)
  end)
end)

describe("core.fsync", function()
  it("flushes a file to disk, and refuses a closed one", function()
    local path = helpers.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("record\n")
    assert.is_true(require("voiceclone.core").fsync(f))
    assert.equal("record\n", helpers.read_file(path))
    f:close()
    assert.has_error(function() require("voiceclone.core").fsync(f) end)
    os.remove(path)
    assert.is_table(voiceclone)
  end)
end)
