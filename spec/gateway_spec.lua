-- The API gateway's key-pair authentication (issue 9 item 7): a client with
-- new{ gateway = } signs every attempt (X-Date, Source, Authorization:
-- hmac-sha1), the sandbox started with --gateway-key checks it as the gateway
-- does, and the gateway's key never travels nor shows.
local helpers = require "support.helpers"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require("cjson.safe").new()
local core = require "voiceclone.core"
local voiceclone = require "voiceclone"

local q = helpers.quote
local GW_ID = "gw-spec-id"
local GW_KEY = "gw-key/0123+456=789&<x>"      -- escaped differently in JSON, URLs and HTML
local GW_SOURCE = "gateway-spec"
local GATEWAY = { secret_id = GW_ID, secret_key = GW_KEY, source = GW_SOURCE }
local REFUSED = "HMAC signature cannot be verified"

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t or os.time())
end

local function authorization(id, signature)
  return ('hmac id="%s", algorithm="hmac-sha1", headers="x-date source", signature="%s"')
    :format(id, signature)
end

-- The key forms the client must never show (as secret.c scrubs them).
local function key_forms(key)
  return {
    key, cjson.encode(key):sub(2, -2),
    (key:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)),
    (key:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                           ["'"] = "&#39;" })),
  }
end

local function assert_hidden(text, what)
  text = tostring(text)
  for _, form in ipairs(key_forms(GW_KEY)) do
    assert.is_nil(text:find(form, 1, true), (what or "") .. " shows the gateway key: " .. text)
  end
end

-- Every string inside a table (an error, an on_request info), and the table's tostring.
local function assert_table_hidden(t, what)
  for k, v in pairs(t) do
    assert_hidden(k, what)
    if type(v) == "table" then assert_table_hidden(v, what) else assert_hidden(v, what) end
  end
  assert_hidden(tostring(t), what)
end

-- busted keeps one finally per test (the last given): later(fn) adds fn to
-- a list that one finally runs, last first. Pass busted's finally.
local function cleanups(finally)
  local list = {}
  finally(function() for i = #list, 1, -1 do list[i]() end end)
  return function(fn) list[#list + 1] = fn end
end

-- Starts spec/support/gateway_server.lua: { url =, seen = fn() -> list, stop = fn }.
local function start_gateway_server()
  local port_file, log = helpers.tmpname(), helpers.tmpname()
  assert(helpers.run(("%s spec/support/gateway_server.lua %s %s >%s 2>&1 &")
    :format(helpers.LUA, q(port_file), q(GW_KEY), q(log))))
  local text = helpers.wait_for("the gateway server", function()
    local written = helpers.read_file(port_file)
    return written and written:match("^%d+ %d+") and written
  end)
  local port, pid = text:match("^(%d+) (%d+)")
  local server = { url = "http://127.0.0.1:" .. port }
  function server.seen()
    local body = assert(http.request(server.url .. "/_seen"))
    return assert(cjson.decode(body))
  end
  function server.stop()
    helpers.run("kill " .. pid .. " 2>/dev/null")
    os.remove(port_file)
    os.remove(log)
  end
  return server
end

-- The signature of a date and source under key, as the gateway computes it.
local function signature(key, date, source)
  return core.hmac_sha1_base64(key, "x-date: " .. date .. "\nsource: " .. source)
end

-- A raw POST of a GetJob to the sandbox with the given headers: status, body.
local function raw_get_job(sandbox, headers)
  local body = cjson.encode { action = "GetJob", secretId = helpers.SECRET_ID, secretKey = helpers.SECRET_KEY,
                              getJobRequest = { id = "no-such-job" } }
  headers["Content-Type"] = "application/json"
  headers["Content-Length"] = tostring(#body)
  local out = {}
  local _, status = http.request {
    url = sandbox.url .. "/release/job", method = "POST", headers = headers,
    source = ltn12.source.string(body), sink = ltn12.sink.table(out),
  }
  return status, table.concat(out)
end

describe("the API gateway's key-pair auth", function()
  local sandbox
  setup(function()
    sandbox = helpers.start_sandbox {
      "--gateway-key " .. q(GW_ID .. ":" .. GW_KEY), "--gateway-key other-id:other-key-0123456789",
    }
  end)
  teardown(function() sandbox.stop() end)

  local function client(options)
    local settings = { gateway = GATEWAY,
                       repositories = sandbox.url .. "/repos/{contentId}/{path}" }
    for k, v in pairs(options or {}) do settings[k] = v end
    return helpers.client(sandbox, settings)
  end

  describe("a signed client", function()
    it("creates, gets and lists jobs, lists models and downloads the output", function()
      local later = cleanups(finally)
      local c = client()
      later(function() c:close() end)
      local before = helpers.last_seq(sandbox)
      local job = assert(c:synthesize { text = "gateway", content_id = "gateway" })
      assert(job:wait { timeout = 60, interval = 0.05 })
      assert.equal(job.id, assert(c:get_job(job.id)).id)
      local jobs, total = assert(c:list_jobs(job.customId))
      assert.equal(1, total)
      assert.equal(job.id, jobs[1].id)
      assert(c:list_models())
      local dest = helpers.tmpdir(later) .. "/out.wav"
      assert.equal(dest, assert(job:download(dest)))
      assert.equal("RIFF", helpers.read_file(dest):sub(1, 4))

      -- on the wire: every request carried the three headers, and no gateway key
      local wire = helpers.requests(sandbox, before)
      assert.truthy(#wire >= 5)
      for _, r in ipairs(wire) do
        assert.equal(GW_SOURCE, r.headers.source)
        assert.truthy(r.headers["x-date"]:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"),
          r.headers["x-date"])
        assert.equal(authorization(GW_ID, signature(GW_KEY, r.headers["x-date"], GW_SOURCE)),
          r.headers.authorization)
        assert_table_hidden(r, "a request")
      end
    end)

    it("has a source of lua-voiceclone unless told otherwise", function()
      local later = cleanups(finally)
      local c = client { gateway = { secret_id = GW_ID, secret_key = GW_KEY } }
      later(function() c:close() end)
      assert(c:list_models())
      assert.equal("lua-voiceclone", helpers.last_request(sandbox).headers.source)
    end)

    it("takes the key pair from VOICECLONE_GATEWAY_ID, _KEY and _SOURCE; gateway = false turns it off", function()
      local out = helpers.read_command(("VOICECLONE_GATEWAY_ID=%s VOICECLONE_GATEWAY_KEY=%s "
        .. "VOICECLONE_GATEWAY_SOURCE=from-env %s -e %s 2>&1"):format(q(GW_ID), q(GW_KEY), helpers.LUA, q(([[
        package.path, package.cpath = %q, %q
        local v = require "voiceclone"
        local function models(gateway)
          local c = assert(v.new { endpoint = %q, secret_id = %q, secret_key = %q, gateway = gateway })
          local ok, err = c:list_models()
          c:close()
          return ok and "ok" or err.kind .. " " .. tostring(err.status)
        end
        print(models(nil), models(false))
      ]]):format(package.path, helpers.CPATH .. ";" .. package.cpath,   -- the plain build: no sanitizer here
        sandbox.url, helpers.SECRET_ID, helpers.SECRET_KEY))))
      assert.equal("ok\tauth 401\n", out)
    end)
  end)

  describe("every attempt", function()
    it("is signed afresh, with the time it is sent", function()
      local later = cleanups(finally)
      local server = start_gateway_server()
      later(server.stop)
      local seen_info = {}
      local c = assert(voiceclone.new { endpoint = server.url .. "/retry_a", secret_id = "id",
        secret_key = "service-key-0123", gateway = GATEWAY,
        on_request = function(info) seen_info[#seen_info + 1] = info end })
      later(function() c:close() end)
      assert(c:get_job("j-1"))
      local seen = server.seen()
      assert.equal(2, #seen)                     -- a 429 (Retry-After: 1), then the answer
      assert.equal(2, #seen_info)
      assert.not_equal(seen[1].x_date, seen[2].x_date)
      assert.not_equal(seen[1].authorization, seen[2].authorization)
      for _, s in ipairs(seen) do
        local date = assert(require("voiceclone.sandbox.gateway").parse_date(s.x_date))
        assert.truthy(math.abs(date - os.time()) <= 5, s.x_date)
        assert.equal(GW_SOURCE, s.source)
        assert.equal(authorization(GW_ID, signature(GW_KEY, s.x_date, GW_SOURCE)), s.authorization)
      end
    end)

    it("of a download from the endpoint's host is signed, and its redirects are not followed", function()
      local later = cleanups(finally)
      local server = start_gateway_server()
      later(server.stop)
      local c = assert(voiceclone.new { endpoint = server.url, secret_id = "id", secret_key = "service-key-0123",
                                        gateway = GATEWAY })
      later(function() c:close() end)
      local dir = helpers.tmpdir(later)
      assert(c:download(server.url .. "/file/x.wav", dir .. "/x.wav"))
      assert.equal("gateway-file", helpers.read_file(dir .. "/x.wav"))
      -- a redirect elsewhere would take the signature along: it is an error instead
      local elsewhere = sandbox.url .. "/repos/gateway/x.wav"
      local ok, err = c:download(server.url .. "/redirect/?to=" .. elsewhere:gsub(":", "%%3A"), dir .. "/y.wav")
      assert.is_nil(ok)
      assert.equal("http", err.kind)
      assert.equal(302, err.status)
      local seen = server.seen()
      assert.equal(2, #seen)
      for _, s in ipairs(seen) do
        assert.equal(authorization(GW_ID, signature(GW_KEY, s.x_date, GW_SOURCE)), s.authorization)
      end
    end)

    it("of a download from another host carries no gateway header", function()
      local later = cleanups(finally)
      local server = start_gateway_server()
      later(server.stop)
      local c = client()
      later(function() c:close() end)
      local dir = helpers.tmpdir(later)
      assert(c:download(server.url .. "/file/x.wav", dir .. "/x.wav"))
      local seen = server.seen()
      assert.equal(1, #seen)
      assert.is_nil(seen[1].x_date)
      assert.is_nil(seen[1].source)
      assert.is_nil(seen[1].authorization)
    end)
  end)

  describe("the sandbox with --gateway-key", function()
    it("refuses a wrong key with a 401 auth error, sent once", function()
      for _, gateway in ipairs {
        { secret_id = GW_ID, secret_key = "not-the-gateway-key", source = GW_SOURCE },
        { secret_id = "unknown-id", secret_key = GW_KEY, source = GW_SOURCE },
      } do
        local c = client { gateway = gateway }
        local before = helpers.last_seq(sandbox)
        local job, err = c:get_job("j-1")
        c:close()
        assert.is_nil(job)
        assert.equal("auth", err.kind)
        assert.equal(401, err.status)
        assert.is_false(err.retryable)
        assert.equal(1, err.attempts)
        assert.truthy(err.message:find(REFUSED, 1, true), err.message)
        assert.equal(before + 1, helpers.last_seq(sandbox))
        assert_table_hidden(err, "an error")
      end
    end)

    it("refuses a client without the gateway, and its downloads", function()
      local later = cleanups(finally)
      local c = client { gateway = false }
      later(function() c:close() end)
      local _, err = c:list_models()
      assert.equal("auth", err.kind)
      assert.equal(401, err.status)
      local _, derr = c:download(sandbox.url .. "/repos/gateway/none.wav", helpers.tmpname())
      assert.equal("auth", derr.kind)
      assert.equal(401, derr.status)
    end)

    it("takes another of its keys", function()
      local later = cleanups(finally)
      local c = client { gateway = { secret_id = "other-id", secret_key = "other-key-0123456789" } }
      later(function() c:close() end)
      assert(c:list_models())
    end)

    it("checks the X-Date: refused when more than 15 minutes off, taken within them", function()
      local function status_at(t, headers)
        local date = http_date(t)
        headers = headers or { ["X-Date"] = date, Source = "raw",
                               Authorization = authorization(GW_ID, signature(GW_KEY, date, "raw")) }
        return raw_get_job(sandbox, headers)
      end
      -- signed right, now and 14 minutes ago: past the gateway (the job does not exist)
      assert.equal(404, (status_at(os.time())))
      assert.equal(404, (status_at(os.time() - 14 * 60)))
      for _, t in ipairs { os.time() - 16 * 60, os.time() + 16 * 60 } do
        local status, body = status_at(t)
        assert.equal(401, status)
        assert.same({ message = REFUSED }, cjson.decode(body))
      end
      -- each header missing in turn
      local date = http_date()
      local full = { ["X-Date"] = date, Source = "raw",
                     Authorization = authorization(GW_ID, signature(GW_KEY, date, "raw")) }
      for name in pairs(full) do
        local headers = {}
        for k, v in pairs(full) do if k ~= name then headers[k] = v end end
        assert.equal(401, (raw_get_job(sandbox, headers)), "without " .. name)
      end
      -- a signature of another source
      full.Source = "changed"
      assert.equal(401, (raw_get_job(sandbox, full)))
    end)
  end)

  describe("the gateway key", function()
    it("never shows: not in errors quoting it, tostring(client) nor on_request", function()
      local later = cleanups(finally)
      local server = start_gateway_server()
      later(server.stop)
      for _, form in ipairs { "raw", "json", "url", "html" } do
        local infos = {}
        local c = assert(voiceclone.new { endpoint = server.url .. "/quote_" .. form, secret_id = "id",
          secret_key = "service-key-0123", gateway = GATEWAY, retry = false,
          on_request = function(info) infos[#infos + 1] = info end })
        local job, err = c:get_job("j-1")
        assert.is_nil(job)
        assert.equal("http", err.kind)
        assert.equal(500, err.status)
        assert.truthy(err.message:find("***", 1, true), err.message)
        assert_table_hidden(err, form .. " error")
        assert_hidden(tostring(c), "tostring(client)")
        assert.equal(1, #infos)
        assert_table_hidden(infos[1], "on_request")
        c:close()
      end
    end)

    it("never shows in voiceclone --verbose output", function()
      local later = cleanups(finally)
      local server = start_gateway_server()
      later(server.stop)
      local out = helpers.read_command(("VOICECLONE_GATEWAY_ID=%s VOICECLONE_GATEWAY_KEY=%s "
        .. "VOICECLONE_CPATH=%s %s scripts/voiceclone models --verbose --json --endpoint %s "
        .. "--secret-id id --secret-key service-key-0123 2>&1"):format(q(GW_ID), q(GW_KEY), q(helpers.CPATH),
        helpers.LUA, q(server.url .. "/quote_raw")))
      assert.truthy(out:find("attempt 1", 1, true), out)
      assert.truthy(out:find("HTTP 500", 1, true), out)
      assert_hidden(out, "--verbose")
      local seen = server.seen()               -- a 500 is retried: each attempt signed
      assert.truthy(#seen >= 1)
      for _, s in ipairs(seen) do
        assert.equal(authorization(GW_ID, signature(GW_KEY, s.x_date, "lua-voiceclone")), s.authorization)
      end
    end)
  end)

  describe("the gateway option", function()
    local function invalid(gateway)
      local c, err = voiceclone.new { secret_id = "a", secret_key = helpers.SECRET_KEY, gateway = gateway }
      assert.is_nil(c)
      assert.equal("invalid", err.kind)
      assert_table_hidden(err, "an invalid error")
      return err.field
    end

    it("is checked: each a non-empty string, no NUL, no control character in id or source", function()
      assert.equal("gateway.secret_id", invalid {})
      assert.equal("gateway.secret_id", invalid { secret_key = GW_KEY })
      assert.equal("gateway.secret_id", invalid { secret_id = "", secret_key = GW_KEY })
      assert.equal("gateway.secret_id", invalid { secret_id = "a\0b", secret_key = GW_KEY })
      assert.equal("gateway.secret_id", invalid { secret_id = "a\r\nX-Evil: 1", secret_key = GW_KEY })
      assert.equal("gateway.secret_id", invalid { secret_id = 'a"b', secret_key = GW_KEY })
      assert.equal("gateway.secret_key", invalid { secret_id = GW_ID })
      assert.equal("gateway.secret_key", invalid { secret_id = GW_ID, secret_key = "" })
      assert.equal("gateway.secret_key", invalid { secret_id = GW_ID, secret_key = GW_KEY .. "\0" })
      assert.equal("gateway.source", invalid { secret_id = GW_ID, secret_key = GW_KEY, source = "" })
      assert.equal("gateway.source", invalid { secret_id = GW_ID, secret_key = GW_KEY, source = "a\nb" })
      assert.equal("gateway.source", invalid { secret_id = GW_ID, secret_key = GW_KEY, source = "a\0b" })
      assert.equal("gateway.region", invalid { secret_id = GW_ID, secret_key = GW_KEY, region = "x" })
      assert.equal("gateway", invalid { secret_id = GW_ID, secret_key = GW_KEY, "positional" })
    end)

    it("raises for wrong types, as new's other options do", function()
      assert.has_error(function() voiceclone.new { secret_id = "a", secret_key = helpers.SECRET_KEY, gateway = "x" } end)
      assert.has_error(function()
        voiceclone.new { secret_id = "a", secret_key = helpers.SECRET_KEY,
                         gateway = { secret_id = 1, secret_key = "gateway-key-of-a-wrong-id" } }
      end)
    end)

    it("is released with its client: many made and closed, twice", function()
      for _ = 1, 200 do
        local c = assert(voiceclone.new { secret_id = "a", secret_key = helpers.SECRET_KEY, gateway = GATEWAY })
        assert_hidden(tostring(c), "tostring(client)")
        c:close()
        c:close()
        assert_hidden(tostring(c), "tostring(closed client)")
      end
      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = assert(voiceclone.new { secret_id = "a", secret_key = helpers.SECRET_KEY, gateway = GATEWAY })
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)
  end)

  describe("the signature", function()
    it("is HMAC-SHA1 in Base64: RFC 2202's test vector", function()
      assert.equal("7/zfauXrL6LSdBbV8YTfnCWafHk=", core.hmac_sha1_base64("Jefe", "what do ya want for nothing?"))
    end)

    it("agrees with openssl's", function()
      if not helpers.run("command -v openssl >/dev/null 2>&1") then
        pending("no openssl command")
        return
      end
      for _, case in ipairs {
        { GW_KEY, "x-date: " .. http_date() .. "\nsource: " .. GW_SOURCE },
        { "k", "" },
        { ("long-key-"):rep(20), ("x"):rep(1000) },
      } do
        local file = helpers.tmpname()
        local f = assert(io.open(file, "wb"))
        f:write(case[2])
        f:close()
        local out = helpers.read_command(("openssl dgst -sha1 -hmac %s -binary <%s | base64"):format(
          q(case[1]), q(file)))
        os.remove(file)
        assert.equal(out:gsub("%s+$", ""), core.hmac_sha1_base64(case[1], case[2]))
      end
    end)
  end)
end)
