--- Batches: voice every line of a file, once, surviving kills and reruns.
--
--   local batch = require "voiceclone.batch"
--   local summary = assert(batch.run {
--     client = client, lines = "lines.csv", model = "my_voice", content_id = "game",
--     destination = "/lines", concurrency = 16, download = "out/",
--   })
--   print(summary.completed, summary.failed)
--
-- LINES is CSV (RFC 4180, a header naming the `id` and `text` columns) or
-- JSON Lines ({"id": .., "text": ..} a line). Every line gets a customId
-- derived from the batch id and its own id, so the service itself knows
-- which lines have a job. An append-only journal (JSON Lines, fsynced per
-- record) remembers line -> customId -> job id -> state. A run killed at any
-- moment and started again reconciles with the journal and with ListJobs
-- (customId) before it creates anything: a line whose job exists on the
-- service is followed, never created again; a line whose jobs all failed is
-- tried again.
local core = require "voiceclone.core"
local cjson = require("cjson.safe").new()
local compat = require "voiceclone.compat"
local fs = require "voiceclone.fs"          -- through luv: no shell for pwd, ls, mkdir -p
local audio = require "voiceclone.audio"    -- the downloads' audio_format (sox)

local batch = {}

local COMPLETED = core.state.COMPLETED

batch.DEFAULT_CONCURRENCY = 16
batch.MAX_CONCURRENCY = 4096
local CUSTOM_ID_PREFIX = "vcb-"
local MAX_PLAIN_LINE_ID = 40        -- longer line ids (or odd characters) are hashed

----------------------------------------------------------------------------
-- Hashing: FNV-1a, 64 bits.
--
-- In plain arithmetic, so every Lua gives the same hash (5.1 and LuaJIT
-- have no 64-bit integers, 5.1 and 5.2 no bit operators): h is four 16-bit
-- limbs, low first, every intermediate value well under 2^53.
-- The prime is 2^40 + 0x1b3: h * prime = h * 0x1b3 + h << 40 (mod 2^64).

local FNV_OFFSET = { 0x2325, 0x8422, 0x9ce4, 0xcbf2 }   -- 0xcbf29ce484222325
local FNV_LOW = 0x1b3

-- a XOR b for bytes.
local function xor8(a, b)
  local r, bit = 0, 1
  for _ = 1, 8 do
    if a % 2 ~= b % 2 then r = r + bit end
    a, b, bit = math.floor(a / 2), math.floor(b / 2), bit * 2
  end
  return r
end

--- 16 hex digits of FNV-1a 64 of s (deterministic, not cryptographic).
function batch.hash(s)
  local h0, h1, h2, h3 = FNV_OFFSET[1], FNV_OFFSET[2], FNV_OFFSET[3], FNV_OFFSET[4]
  for i = 1, #s do
    local low = h0 % 256
    h0 = h0 - low + xor8(low, s:byte(i))
    -- h * 0x1b3, plus h shifted left by 40 bits (2 limbs and 8 bits)
    local r0 = h0 * FNV_LOW
    local r1 = h1 * FNV_LOW
    local r2 = h2 * FNV_LOW + h0 * 256
    local r3 = h3 * FNV_LOW + h1 * 256
    h0 = r0 % 65536
    r1 = r1 + math.floor(r0 / 65536)
    h1 = r1 % 65536
    r2 = r2 + math.floor(r1 / 65536)
    h2 = r2 % 65536
    r3 = r3 + math.floor(r2 / 65536)
    h3 = r3 % 65536
  end
  return ("%04x%04x%04x%04x"):format(h3, h2, h1, h0)
end

-- A line id as text: a whole number in full digits on every Lua (5.1's
-- tostring would write 1e+15).
local function id_text(id)
  if type(id) == "number" and compat.tointeger(id) then return ("%d"):format(id) end
  return tostring(id)
end

--- The customId of a line: "vcb-" .. 12 hex digits of the batch id's hash ..
-- "-" .. the line id, or "~" and 16 hex digits of its hash when the id is
-- longer than 40 characters or has characters other than letters, digits,
-- "_", "." and "-" ("~" never appears in a plain id, so the two never meet).
-- At most 34 or 57 characters: under the service's 64.
function batch.custom_id(batch_id, line_id)
  line_id = tostring(line_id)
  local tail = line_id
  if #line_id > MAX_PLAIN_LINE_ID or not line_id:match("^[%w_.-]+$") then
    tail = "~" .. batch.hash(line_id)
  end
  return CUSTOM_ID_PREFIX .. batch.tag(batch_id) .. "-" .. tail
end

--- The batch as its customIds name it: 12 hex digits of its id's hash
-- (what the command prints as the batch).
function batch.tag(batch_id)
  return batch.hash(tostring(batch_id)):sub(1, 12)
end

----------------------------------------------------------------------------
-- Reading LINES

local function line_number(text, pos)
  local n = 1
  for _ in text:sub(1, pos - 1):gmatch("\n") do n = n + 1 end
  return n
end

--- Parses CSV text (RFC 4180: fields separated by commas, records by CRLF
-- or LF; a field in double quotes may hold commas, newlines and "" for a
-- quote). Returns a list of records, each { fields..., line = N } (the line
-- the record starts on), or nil and a message. Blank lines are skipped.
function batch.parse_csv(text)
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end   -- UTF-8 BOM
  local records, record, pos, len = {}, nil, 1, #text
  local start = 1
  while pos <= len do
    if not record then record, start = {}, pos end
    local field
    if text:byte(pos) == 34 then                       -- '"': a quoted field
      local parts, from = {}, pos + 1
      while true do
        local q = text:find('"', from, true)
        if not q then
          return nil, ("line %d: a quoted field is never closed"):format(line_number(text, pos))
        end
        parts[#parts + 1] = text:sub(from, q - 1)
        if text:byte(q + 1) == 34 then
          parts[#parts + 1] = '"'
          from = q + 2
        else
          pos = q + 1
          break
        end
      end
      field = table.concat(parts)
      local after = text:sub(pos, pos)
      if after ~= "," and after ~= "\n" and after ~= "\r" and after ~= "" then
        return nil, ("line %d: unexpected %q after a closing quote (a quote inside a field "
          .. "is written \"\")"):format(line_number(text, pos), after)
      end
    else
      local stop = text:find("[,\r\n]", pos) or len + 1
      field = text:sub(pos, stop - 1)
      if field:find('"', 1, true) then
        return nil, ("line %d: a quote inside an unquoted field (quote the field, and write "
          .. "a quote in it as \"\")"):format(line_number(text, pos))
      end
      pos = stop
    end
    record[#record + 1] = field
    local c = text:sub(pos, pos)
    if c == "," then
      pos = pos + 1
      if pos > len then record[#record + 1] = "" end   -- "a,b," ends with an empty field
    else
      if c == "\r" then pos = pos + 1 end
      if text:sub(pos, pos) == "\n" then pos = pos + 1 end
      if not (#record == 1 and record[1] == "") then  -- a blank line
        record.line = line_number(text, start)
        records[#records + 1] = record
      end
      record = nil
    end
  end
  if record and not (#record == 1 and record[1] == "") then
    record.line = line_number(text, start)
    records[#records + 1] = record
  end
  return records
end

local function lines_from_csv(text)
  local records, err = batch.parse_csv(text)
  if not records then return nil, err end
  local header = records[1]
  if not header then return nil, "no header line (id,text)" end
  local id_col, text_col
  for i, name in ipairs(header) do
    name = name:lower():match("^%s*(.-)%s*$")
    if name == "id" then id_col = id_col or i end
    if name == "text" then text_col = text_col or i end
  end
  if not (id_col and text_col) then
    return nil, "line 1: the header must name an id and a text column (got: "
      .. table.concat(header, ",") .. ")"
  end
  local lines = {}
  for r = 2, #records do
    local record = records[r]
    if #record ~= #header then
      return nil, ("line %d: %d fields where the header has %d (quote fields holding commas "
        .. "or newlines)"):format(record.line, #record, #header)
    end
    lines[#lines + 1] = { id = record[id_col], text = record[text_col], source_line = record.line }
  end
  return lines
end

local function lines_from_jsonl(text)
  if text:sub(1, 3) == "\239\187\191" then text = text:sub(4) end
  local lines, n = {}, 0
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if raw:find("%S") then
      local value, err = cjson.decode(raw)
      if type(value) ~= "table" then
        return nil, ("line %d: not a JSON object%s"):format(n, err and (" (" .. err .. ")") or "")
      end
      local id = value.id
      if type(id) == "number" and compat.tointeger(id) then id = id_text(id) end
      if type(id) ~= "string" then
        return nil, ("line %d: \"id\" must be a string or a whole number"):format(n)
      end
      if type(value.text) ~= "string" then
        return nil, ("line %d: \"text\" must be a string"):format(n)
      end
      lines[#lines + 1] = { id = id, text = value.text, source_line = n }
    end
  end
  return lines
end

--- The format of LINES: "csv" or "jsonl", from the file name's extension,
-- else from the content (a first non-blank "{" means JSON Lines).
function batch.detect_format(path, text)
  local ext = (path or ""):lower():match("%.(%w+)$")
  if ext == "csv" then return "csv" end
  if ext == "jsonl" or ext == "ndjson" or ext == "json" then return "jsonl" end
  local first = text:gsub("^\239\187\191", ""):match("^%s*(.)")
  return first == "{" and "jsonl" or "csv"
end

--- Parses LINES text; returns { {id =, text =, source_line =}, ... } or nil, message.
-- Every line needs a non-empty id, unique in the file.
function batch.parse_lines(text, format)
  local lines, err
  if format == "jsonl" then lines, err = lines_from_jsonl(text)
  elseif format == "csv" then lines, err = lines_from_csv(text)
  else error(("bad format '%s' (csv or jsonl expected)"):format(tostring(format)), 2) end
  if not lines then return nil, err end
  local seen = {}
  for _, line in ipairs(lines) do
    if line.id == "" then return nil, ("line %d: the id is empty"):format(line.source_line) end
    if seen[line.id] then
      return nil, ("line %d: id %q already used on line %d"):format(line.source_line, line.id,
        seen[line.id])
    end
    seen[line.id] = line.source_line
  end
  return lines
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text, rerr = f:read("*a")   -- "*a", "*l": 5.1 and 5.2 need the star
  f:close()
  if not text then return nil, path .. ": " .. tostring(rerr) end
  return text
end

--- Reads and parses a LINES file; returns lines, format or nil, message.
function batch.read_lines(path, format)
  local text, err = read_file(path)
  if not text then return nil, err end
  format = format or batch.detect_format(path, text)
  local lines, perr = batch.parse_lines(text, format)
  if not lines then return nil, path .. ": " .. perr end
  return lines, format
end

--- An absolute, normalised form of path (no symlink resolution).
function batch.absolute(path)
  if path:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD")
    if not cwd or cwd:sub(1, 1) ~= "/" then cwd = fs.cwd() end
    path = (cwd or "") .. "/" .. path
  end
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then parts[#parts] = nil
    elseif seg ~= "." then parts[#parts + 1] = seg end
  end
  return "/" .. table.concat(parts, "/")
end

--- The default batch id: a hash of the LINES file's absolute path, the
-- model and the content id (so the same file voiced with another model is
-- another batch).
function batch.default_id(path, model, content_id)
  return batch.hash(table.concat({ batch.absolute(path), model or "default", content_id or "" }, "\0"))
end

----------------------------------------------------------------------------
-- The journal: JSON Lines, one record per event, fsynced each.

local Journal = {}
Journal.__index = Journal

local function fsync(f)
  local sync = core.fsync
  if sync then return sync(f) end
  return f:flush()          -- a core without fsync: flushed only
end

--- Opens (creating) the journal at path, locked for this run alone (flock:
-- released when it is closed, or when the process ends, even by a crash);
-- returns it, or nil and a message and, when another run holds it, "locked".
-- With wait, waits for that run instead. Undecodable lines (a record torn
-- by a kill) are skipped.
function batch.open_journal(path, wait)
  local f, err = io.open(path, "ab")
  if not f then return nil, err end
  local locked, lerr = core.lock(f, wait)
  if not locked then
    f:close()
    if lerr.kind == "locked" then return nil, "another run holds " .. path, "locked" end
    return nil, path .. ": " .. tostring(lerr)
  end
  local text = read_file(path) or ""   -- read once it is ours: no run appends meanwhile
  local records = {}
  for raw in text:gmatch("[^\n]+") do
    local record = cjson.decode(raw)
    if type(record) == "table" then records[#records + 1] = record end
  end
  if text ~= "" and text:sub(-1) ~= "\n" then
    -- a torn last record: end its line, so the next record stands alone
    local ok, werr = f:write("\n")
    if ok then ok, werr = fsync(f) end
    if not ok then
      f:close()
      return nil, path .. ": " .. tostring(werr)
    end
  end
  return setmetatable({ path = path, file = f, records = records }, Journal)
end

--- Appends one record and makes it durable; returns true or nil, message.
function Journal:append(record)
  local text = cjson.encode(record)
  local ok, err = self.file:write(text, "\n")
  if ok then ok, err = fsync(self.file) end
  if not ok then return nil, self.path .. ": " .. tostring(err) end
  return true
end

function Journal:close()
  if self.file then
    self.file:close()
    self.file = nil
  end
end

--- What the journal knows of each line of a batch: [line id] = { customId =,
-- job =, state = (name), output =, file =, error = }, later records merged
-- over earlier ones.
function Journal:lines_of(batch_id)
  local known = {}
  for _, r in ipairs(self.records) do
    if r.batch == batch_id and type(r.line) == "string" then
      local entry = known[r.line] or {}
      if r.job ~= nil and r.job ~= entry.job then
        -- another job
        entry.state, entry.file, entry.output, entry.error, entry.format = nil, nil, nil, nil, nil
      end
      for _, key in ipairs { "customId", "job", "state", "output", "file", "format", "error" } do
        if r[key] ~= nil then entry[key] = r[key] end
      end
      known[r.line] = entry
    end
  end
  return known
end

----------------------------------------------------------------------------
-- Running a batch

local function now_iso() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function error_fields(err)
  if type(err) ~= "table" then return { kind = "error", message = tostring(err) } end
  return { kind = err.kind, message = tostring(err), field = err.field, status = err.status,
           code = err.code, request_id = err.request_id }
end

-- Among the jobs sharing a customId: a COMPLETED one, else one still going,
-- else nil (all failed: the line is tried again).
local function pick(jobs)
  local going
  for _, job in ipairs(jobs) do
    if job.state == COMPLETED then return job end
    if not going and not job:is_final() then going = job end
  end
  return going
end

local function count_completed(jobs)
  local n = 0
  for _, job in ipairs(jobs) do if job.state == COMPLETED then n = n + 1 end end
  return n
end


local function safe_file_name(id)
  return #id <= 100 and id:match("^[%w_][%w_.-]*$") ~= nil and not id:find("..", 1, true)
end

-- The base name (no extension) of a line's downloaded file.
local function file_base(item)
  return safe_file_name(item.id) and item.id or item.custom_id:match("[^-]+$")
end

-- A download or a conversion killed midway leaves its temporary files
-- (<file>.part-PID-N, and <file>.part-PID-N.in and .out, with .part-... of
-- their own while downloading): those of this batch's lines go before a new run.
local function remove_partial_downloads(dir, items)
  local bases = {}
  for _, item in ipairs(items) do bases[file_base(item)] = true end
  for _, name in ipairs(fs.list(dir) or {}) do
    local base = name:match("^(.-)%.%w+%.part%-%d[%d%-]*")
    if base and bases[base] then os.remove(dir .. "/" .. name) end
  end
end

local function check_options(o)
  if type(o) ~= "table" then
    error(("bad argument #1 to 'run' (table expected, got %s)"):format(type(o)), 3)
  end
  local allowed = {
    client = true, lines = true, format = true, model = true, content_id = true,
    destination = true, prefix = true, concurrency = true, journal = true, download = true,
    audio_format = true, wait_for_journal = true,
    batch_id = true, poll_interval = true, wait_timeout = true, on_progress = true,
    progress_interval = true, on_line = true,
  }
  for key in pairs(o) do
    if not allowed[key] then
      return core.error("invalid", tostring(key) .. ": is not an option of batch.run",
                        { field = tostring(key) })
    end
  end
  if type(o.client) ~= "userdata" then
    return core.error("invalid", "client: is required", { field = "client" })
  end
  if type(o.lines) ~= "string" and type(o.lines) ~= "table" then
    return core.error("invalid", "lines: a file name or a list of {id =, text =} is required",
                      { field = "lines" })
  end
  if type(o.content_id) ~= "string" or o.content_id == "" then
    return core.error("invalid", "content_id: is required", { field = "content_id" })
  end
  local c = o.concurrency
  if c ~= nil and (compat.math_type(c) ~= "integer" or c < 1 or c > batch.MAX_CONCURRENCY) then
    return core.error("invalid", ("concurrency: must be a whole number from 1 to %d")
      :format(batch.MAX_CONCURRENCY), { field = "concurrency" })
  end
  if o.audio_format ~= nil then
    if not o.download then
      return core.error("invalid", "audio_format: converts the downloads: give download too",
                        { field = "audio_format" })
    end
    local err = audio.check(o.audio_format, "audio_format")   -- unknown, or no sox: before any job
    if err then return err end
  end
  for _, key in ipairs { "poll_interval", "wait_timeout", "progress_interval" } do
    if o[key] ~= nil and (type(o[key]) ~= "number" or o[key] <= 0) then
      return core.error("invalid", key .. ": must be a positive number of seconds", { field = key })
    end
  end
end

--- Voices every line. Options:
--   client       a voiceclone client (call run outside its tasks: run drives it)
--   lines        a LINES file name, or a list of { id =, text = }
--   format       "csv" | "jsonl" (default: from the file's extension or content)
--   model        the model to speak with (default "default")
--   content_id   the repository that receives the audio (required)
--   destination, prefix   as for client:synthesize
--   concurrency  lines in flight at once (default 16)
--   journal      the journal's file name (default LINES .. ".journal"; false: none);
--                one run at a time: another run of it fails with a "locked" error
--   wait_for_journal  wait for that run to end instead
--   download     a directory: each line's audio is downloaded to <dir>/<line id>.<ext>
--   audio_format "wav", "ogg" or "ulaw8k": the downloads converted with sox
--                (see client:download; <ext> is then "ogg" or "wav"). A line
--                downloaded before in another format is downloaded again
--   batch_id     (default: a hash of the file's absolute path, the model and content_id)
--   poll_interval first pause between GetJob polls (default 1 s, growing to 10 s)
--   wait_timeout how long a line's job may take (default 3600 s)
--   on_progress  fn(stats), every progress_interval seconds (default 0.25) and at the end
--   on_line      fn(line_result) as each line ends
-- Returns a summary { batch_id =, tag = (as in the customIds), total =, completed =, failed =, resumed =,
-- created =, adopted =, duplicates =, elapsed =, lines = { line_result... } }
-- where line_result = { id =, custom_id =, status = "completed" | "failed",
-- job_id =, state =, output =, file =, error = }; or nil and an error (bad
-- options, unreadable LINES, journal not writable).
function batch.run(o)
  local bad = check_options(o)
  if bad then return nil, bad end
  local client = o.client
  local lines, format = o.lines, o.format
  local path = type(lines) == "string" and lines or nil
  if path then
    local read, detail = batch.read_lines(path, format)
    if not read then
      return nil, core.error("invalid", "lines: " .. tostring(detail), { field = "lines" })
    end
    lines, format = read, detail
  else
    for i, line in ipairs(lines) do
      if type(line) ~= "table" or (type(line.id) ~= "string" and compat.math_type(line.id) ~= "integer")
          or type(line.text) ~= "string" then
        return nil, core.error("invalid", ("lines[%d]: needs a string id and text"):format(i),
                               { field = "lines" })
      end
    end
  end
  local model = o.model or "default"
  local batch_id = o.batch_id
  if not batch_id then
    if path then
      batch_id = batch.default_id(path, model, o.content_id)
    else
      local parts = { model, o.content_id }
      for _, line in ipairs(lines) do parts[#parts + 1] = id_text(line.id) .. "\0" .. line.text end
      batch_id = batch.hash(table.concat(parts, "\0"))
    end
  end
  batch_id = tostring(batch_id)

  -- Lines, their customIds (distinct, or the batch cannot tell them apart).
  local items, by_custom = {}, {}
  for i, line in ipairs(lines) do
    local id = id_text(line.id)
    local cid = batch.custom_id(batch_id, id)
    if by_custom[cid] then
      return nil, core.error("invalid", ("lines: ids %q and %q give the same customId %s")
        :format(by_custom[cid], id, cid), { field = "lines" })
    end
    by_custom[cid] = id
    items[i] = { id = id, text = line.text, custom_id = cid, index = i }
  end

  if o.download then
    local ok = fs.mkdir_p(o.download)
    if not ok then
      return nil, core.error("invalid", "download: cannot create the directory " .. o.download,
                             { field = "download" })
    end
    remove_partial_downloads(o.download, items)
  end

  local journal_path = o.journal
  if journal_path == nil and path then journal_path = path .. ".journal" end
  local journal, known = nil, {}
  if journal_path then
    local err
    local why
    journal, err, why = batch.open_journal(journal_path, o.wait_for_journal)
    if not journal then
      return nil, core.error(why or "invalid", "journal: " .. tostring(err), { field = "journal" })
    end
    known = journal:lines_of(batch_id)
  end

  local stats = {
    batch_id = batch_id, tag = batch.tag(batch_id), total = #items, completed = 0, failed = 0, in_flight = 0,
    resumed = 0, created = 0, adopted = 0, duplicates = 0, started = core.now(),
    finished_now = 0,     -- lines ended in this run (completed or failed)
  }
  local results = {}
  local fatal

  local function record(item, fields)
    if not journal or fatal then return not fatal end
    local r = { batch = batch_id, line = item.id, customId = item.custom_id, at = now_iso() }
    for k, v in pairs(fields) do r[k] = v end
    local ok, err = journal:append(r)
    if not ok then
      fatal = core.error("invalid", "journal: " .. tostring(err), { field = "journal" })
      return false
    end
    return true
  end

  local function finish(item, status, fields)
    local result = { id = item.id, custom_id = item.custom_id, status = status }
    for k, v in pairs(fields or {}) do result[k] = v end
    results[item.index] = result
    if status == "completed" then stats.completed = stats.completed + 1
    else stats.failed = stats.failed + 1 end
    if not fields or not fields.resumed then stats.finished_now = stats.finished_now + 1 end
    if o.on_line then o.on_line(result) end
  end

  -- The job already on the service for this line, if any: the journal's, or
  -- one found by customId.
  local function existing_job(item, entry)
    -- (each call retried by the client's policy)
    if entry.job then
      local job = client:get_job(entry.job)
      if job and (not job:is_final() or job.state == COMPLETED) then return job end
      -- gone, or failed: look again by customId (a later job may exist)
    end
    local jobs, err = client:list_jobs(item.custom_id)
    if not jobs then return nil, err end
    if count_completed(jobs) > 1 then stats.duplicates = stats.duplicates + 1 end
    return pick(jobs) or false
  end

  -- The client's create is exactly-once: a try whose outcome is unknown is
  -- settled with ListJobs before anything is sent again.
  local function create(item)
    local job, err = client:synthesize {
      text = item.text, model = model, content_id = o.content_id, destination = o.destination,
      prefix = o.prefix, custom_id = item.custom_id,
    }
    if job then stats.created = stats.created + 1 end
    return job, err
  end

  local function output_of(job)
    local result = job:result()
    if not result then return nil end
    return result.contentId and (result.contentId .. ":" .. tostring(result.path)) or result.path,
           result
  end

  local function target_file(item, result)
    local ext = o.audio_format and audio.extension(o.audio_format)
      or result and result.voiceName and result.voiceName:match("%.(%w+)$") or "wav"
    return o.download:gsub("/+$", "") .. "/" .. file_base(item) .. "." .. ext
  end

  local function download(item, job)
    local _, result = output_of(job)
    local dest = target_file(item, result)
    if not job.download then
      return nil, core.error("invalid", "download: this voiceclone core has no job:download",
                             { field = "download" })
    end
    local ok, err = job:download(dest, { format = o.audio_format })
    if not ok then return nil, err end
    return dest
  end

  local function voice(item)
    local entry = known[item.id] or {}
    if entry.customId ~= nil and entry.customId ~= item.custom_id then entry = {} end
    -- Done in an earlier run, as the journal says: nothing to ask the service.
    if entry.state == "COMPLETED" and entry.job
        and (not o.download or (entry.file and file_exists(entry.file)
                                and (entry.format or nil) == o.audio_format)) then
      stats.resumed = stats.resumed + 1
      finish(item, "completed", { job_id = entry.job, state = "COMPLETED", output = entry.output,
                                  file = entry.file, resumed = true })
      return
    end
    local job, err = existing_job(item, entry)
    if job == nil then
      finish(item, "failed", { error = error_fields(err) })
      return
    end
    if job then
      stats.adopted = stats.adopted + 1
      if job.id ~= entry.job and not record(item, { job = job.id, state = job:status() }) then return end
    else
      job, err = create(item)
      if not job then
        record(item, { error = error_fields(err) })
        finish(item, "failed", { error = error_fields(err) })
        return
      end
      if not record(item, { job = job.id, state = job:status() }) then return end
    end
    local done, werr = job:wait { interval = o.poll_interval or 1, timeout = o.wait_timeout or 3600 }
    if not done then
      local fields = { job_id = job.id, state = job:status(), error = error_fields(werr) }
      if job:is_final() then record(item, { job = job.id, state = job:status(), error = fields.error }) end
      finish(item, "failed", fields)
      return
    end
    local output = output_of(job)
    if not record(item, { job = job.id, state = "COMPLETED", output = output }) then return end
    local file
    if o.download then
      file, err = download(item, job)
      if not file then
        finish(item, "failed", { job_id = job.id, state = "COMPLETED", output = output,
                                 error = error_fields(err) })
        return
      end
      if not record(item, { job = job.id, file = file, format = o.audio_format or false }) then return end
    end
    finish(item, "completed", { job_id = job.id, state = "COMPLETED", output = output, file = file })
  end

  local concurrency = math.min(o.concurrency or batch.DEFAULT_CONCURRENCY, #items)
  local next_index, workers = 1, 0
  local function worker()
    while not fatal and next_index <= #items do
      local item = items[next_index]
      next_index = next_index + 1
      stats.in_flight = stats.in_flight + 1
      local ok, err = compat.pcall(voice, item)   -- voice yields: 5.1's pcall cannot
      stats.in_flight = stats.in_flight - 1
      if not ok then
        finish(item, "failed", { error = { kind = "error", message = tostring(err) } })
      end
    end
    workers = workers - 1
  end

  local function snapshot()
    local s = {}
    for k, v in pairs(stats) do s[k] = v end
    s.elapsed = core.now() - stats.started
    s.rate = s.elapsed > 0 and stats.finished_now / s.elapsed or 0
    local left = stats.total - stats.completed - stats.failed
    s.eta = (s.rate > 0) and left / s.rate or nil
    return s
  end

  for _ = 1, concurrency do
    workers = workers + 1
    client:spawn(worker)
  end
  if o.on_progress then
    local every = o.progress_interval or 0.25
    client:spawn(function()
      while workers > 0 do
        o.on_progress(snapshot())
        client:sleep(every)
      end
    end)
  end
  local ok, failed_tasks = client:run()
  if journal then journal:close() end
  if ok == nil then return nil, failed_tasks end
  if ok == false and failed_tasks[1] then
    return nil, core.error("invalid", "batch: a task failed: " .. tostring(failed_tasks[1].error))
  end
  if fatal then return nil, fatal end

  local summary = snapshot()
  summary.in_flight = nil
  summary.finished_now = nil
  summary.lines = results
  summary.format = format
  summary.journal = journal_path or nil
  if o.on_progress then
    local last = snapshot()
    last.final = true
    o.on_progress(last)
  end
  return summary
end

----------------------------------------------------------------------------
-- Progress

local function clock(seconds)
  if not seconds or seconds ~= seconds or seconds == math.huge then return "--:--" end
  seconds = math.floor(seconds + 0.5)
  if seconds >= 3600 then
    return ("%d:%02d:%02d"):format(math.floor(seconds / 3600), math.floor(seconds % 3600 / 60),
      seconds % 60)
  end
  return ("%d:%02d"):format(math.floor(seconds / 60), seconds % 60)
end

--- An on_progress for batch.run that writes to a terminal or a log:
--   mode = "bar"    a live bar redrawn in place (carriage return), then a newline
--   mode = "plain"  a line every `every` seconds (default 5), and a last one
-- write(text) receives the text (default: io.stderr).
function batch.progress_printer(options)
  options = options or {}
  local mode = options.mode or "plain"
  local every = options.every or 5
  local width = options.width or 24
  local write = options.write or function(text)
    io.stderr:write(text)
    io.stderr:flush()
  end
  local last_plain = nil
  return function(s)
    local ended = s.completed + s.failed
    local rate = ("%.1f/s"):format(s.rate or 0)
    if mode == "bar" then
      local filled = s.total > 0 and math.floor(width * ended / s.total) or width
      write(("\r[%s%s] %d/%d done  %d failed  %d in flight  %s  ETA %s\27[K%s"):format(
        ("#"):rep(filled), ("-"):rep(width - filled), s.completed, s.total, s.failed, s.in_flight, rate,
        s.final and clock(0) or clock(s.eta), s.final and "\n" or ""))
    else
      local now = s.elapsed
      if s.final or not last_plain or now - last_plain >= every then
        last_plain = now
        write(("batch %s: %d/%d done, %d failed, %d in flight, %s, ETA %s, %s elapsed\n"):format(
          s.tag or s.batch_id, s.completed, s.total, s.failed, s.in_flight, rate, s.final and clock(0) or clock(s.eta),
          clock(now)))
      end
    end
  end
end

return batch
