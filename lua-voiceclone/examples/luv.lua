-- Plugging a client into an outside event loop (luv, libuv's Lua binding):
-- the loop watches the sockets client:sockets() names and wakes at
-- client:timeout(); each wake-up calls client:step(). Nothing busy-waits.
--
--   VOICECLONE_ENDPOINT=... VOICECLONE_SECRET_ID=... VOICECLONE_SECRET_KEY=... \
--     lua5.4 lua-voiceclone/examples/luv.lua [LINES]
local uv = require "luv"
local voiceclone = require "voiceclone"

local client = assert(voiceclone.new())
local lines = tonumber(arg and arg[1]) or 3
local done = 0

for i = 1, lines do
  client:spawn(function()
    local job = assert(client:synthesize { text = ("Line %d, voiced from a luv loop."):format(i),
                                           content_id = "luv" })
    assert(job:wait { interval = 0.1 })
    done = done + 1
  end)
end
client:on_error(function(err) io.stderr:write("a line failed: ", tostring(err), "\n") end)

local polls = {}            -- fd -> uv poll handle
local timer = uv.new_timer()

local function sync()
  local left = client:step()
  local wanted = client:sockets()
  for fd, poll in pairs(polls) do
    if not wanted[fd] then
      poll:close()
      polls[fd] = nil
    end
  end
  if left == 0 then
    timer:close()
    return
  end
  for fd, events in pairs(wanted) do       -- "r", "w" or "rw": luv's own words
    polls[fd] = polls[fd] or uv.new_socket_poll(fd)
    polls[fd]:start(events, sync)
  end
  local wait = client:timeout() or 1
  timer:start(math.ceil(wait * 1000), 0, sync)
end

sync()
uv.run()
print(("%d of %d lines voiced"):format(done, lines))
