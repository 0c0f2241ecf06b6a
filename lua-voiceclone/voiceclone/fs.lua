--- voiceclone.fs: the few filesystem calls the Lua layer makes, through luv
-- (libuv's synchronous uv.fs_*): no shell is started for them.
--
-- Failures return nil and a message (luv's "ENAME: message" with the path).
local uv = require "luv"
local compat = require "voiceclone.compat"

local fs = {}

local DIR_MODE = 493   -- 0755 (Lua 5.1 has no octal literals)

--- The current directory, as a shell's `pwd` gives it: $PWD when it names
-- this directory (it keeps the symbolic links the user went through), else
-- the physical path.
function fs.cwd()
  local pwd = os.getenv("PWD")
  if pwd and pwd:sub(1, 1) == "/" then
    local a, b = uv.fs_stat(pwd), uv.fs_stat(".")
    if a and b and a.ino == b.ino and a.dev == b.dev then return pwd end
  end
  local cwd, err = uv.cwd()
  if not cwd then return nil, err end
  return cwd
end

--- path made absolute against the current directory ("./" dropped; no
-- other normalisation, no symbolic link resolved).
function fs.absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = fs.cwd()
  if not cwd then return path end
  path = path:gsub("^%./", "")
  if path == "." or path == "" then return cwd end
  return (cwd:gsub("/$", "")) .. "/" .. path
end

--- This process's id.
function fs.pid()
  return compat.tointeger(uv.os_getpid())
end

--- The type of what path names ("file", "directory", "link"...; links are
-- not followed), or nil when nothing is there.
function fs.kind(path)
  local st = uv.fs_lstat(path)
  return st and st.type or nil
end

function fs.is_dir(path)
  local st = uv.fs_stat(path)
  return st ~= nil and st.type == "directory"
end

--- mkdir -p: true, or nil and a message.
function fs.mkdir_p(path)
  if fs.is_dir(path) then return true end
  local prefix = path:sub(1, 1) == "/" and "" or "."
  for seg in path:gmatch("[^/]+") do
    prefix = prefix .. "/" .. seg
    if not fs.is_dir(prefix) then
      local ok, err, code = uv.fs_mkdir(prefix, DIR_MODE)
      if not ok and not (code == "EEXIST" and fs.is_dir(prefix)) then
        return nil, "cannot create directory " .. path .. ": " .. tostring(err)
      end
    end
  end
  return true
end

local temp_count = 0

--- Writes data to path through a temporary name in the same directory and a
-- rename: a reader never sees a partial file. With sync, the data reaches
-- the disk (voiceclone.core's fsync) before the rename. true, or nil and a
-- message; no temporary file is left either way.
function fs.write_atomic(path, data, sync)
  temp_count = temp_count + 1
  local tmp = ("%s.tmp-%d-%d"):format(path, fs.pid(), temp_count)
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  if ok and sync then ok, werr = require("voiceclone.core").fsync(f) end
  local closed, cerr = f:close()
  if ok and closed then ok, werr = os.rename(tmp, path) end
  if not (ok and closed) then
    os.remove(tmp)
    return nil, werr or cerr
  end
  return true
end

--- The names in a directory (no "." or ".."), or nil and a message.
function fs.list(dir)
  local req, err = uv.fs_scandir(dir)
  if not req then return nil, err end
  local names = {}
  while true do
    local name, nerr = uv.fs_scandir_next(req)
    if not name then
      if nerr then return nil, nerr end
      break
    end
    names[#names + 1] = name
  end
  return names
end

--- rm -rf: true, or nil and a message (what could be removed is).
function fs.remove_tree(path)
  local kind = fs.kind(path)
  if not kind then return true end
  if kind ~= "directory" then
    local ok, err = uv.fs_unlink(path)
    if not ok then return nil, err end
    return true
  end
  local names, err = fs.list(path)
  if not names then return nil, err end
  local failed
  for _, name in ipairs(names) do
    local ok, rerr = fs.remove_tree(path .. "/" .. name)
    if not ok then failed = failed or rerr end
  end
  local ok, rerr = uv.fs_rmdir(path)
  if not ok then return nil, failed or rerr end
  return true
end

return fs
