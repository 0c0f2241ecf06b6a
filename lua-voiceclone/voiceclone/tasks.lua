--- Waiting, and the tasks that let many API calls be in flight on one thread
-- for hosts whose main loop must never wait on the network.
--
-- Every API call starts a Request in the C core and then waits for it here:
-- inside a task it yields until the Request is done, and the scheduler
-- resumes it; outside a task it blocks, driving the client's transport. C
-- never yields and never waits.
--
-- The Client methods that use this (spawn, step, run, sleep, ...) are
-- defined in voiceclone/client.lua.
local core = require "voiceclone.core"
local compat = require "voiceclone.compat"

local unpack, pack = compat.unpack, compat.pack

local tasks = {}

local WAITING = {}       -- what a task yields while its Request is out: (WAITING, request)
local SLEEPING = {}      -- (SLEEPING, due)
local MAX_WAIT = 1       -- seconds a blocking wait or run() waits at a time

local Task = {}
Task.__index = Task

function Task:__tostring()
  local state = not self.done and "running" or self.ok and "done" or "failed"
  return ("voiceclone.Task (%s): %s"):format(state, tostring(self.co):match("0x%x+") or "?")
end

-- The timers of sleeping tasks: a binary heap on `due`.
local function heap_push(heap, item)
  local i = #heap + 1
  heap[i] = item
  while i > 1 do
    local parent = math.floor(i / 2)
    if heap[parent].due <= item.due then break end
    heap[i], heap[parent] = heap[parent], item
    i = parent
  end
end

local function heap_pop(heap)
  local top, last = heap[1], table.remove(heap)
  if #heap > 0 then
    local i, n = 1, #heap
    while true do
      local child = 2 * i
      if child > n then break end
      if child < n and heap[child + 1].due < heap[child].due then child = child + 1 end
      if heap[child].due >= last.due then break end
      heap[i] = heap[child]
      i = child
    end
    heap[i] = last
  end
  return top
end

-- A client's scheduler lives in the client's own table (core.client_table):
-- tasks and client then form one cycle the collector reclaims together.
local function scheduler(client)
  local state = core.client_table(client)   -- raises on a closed client
  local s = state.scheduler
  if not s then
    s = {
      threads = {},                -- [coroutine] = task
      count = 0,                   -- unfinished tasks
      ready = {},                  -- to resume at the next step
      runnable = {}, head = 1, tail = 0,   -- to resume now, in order
      waiting = {},                -- [request] = the task waiting on it
      timers = {},
      errors = {},                 -- failed tasks, for run() when no on_error
    }
    state.scheduler = s
  end
  return s
end

-- The running task of this client, if the caller runs inside one (seen
-- through compat.pcall's coroutine on Lua 5.1).
local function current_task(client)
  local co = compat.running()
  local s = co and core.client_table(client).scheduler
  return s and s.threads[co], s
end

local function enqueue(s, task)
  s.tail = s.tail + 1
  s.runnable[s.tail] = task
end

local function forget(s, task)
  s.threads[task.co] = nil
  s.count = s.count - 1
  task.done = true
  if task.request then s.waiting[task.request] = nil end
  task.request = nil
end

local function settle(s, task, ok, ...)
  if task.done then return end   -- canceled while it ran: forgotten already
  local co = task.co
  if coroutine.status(co) ~= "dead" then
    if not ok then return end   -- it was not suspended (resumed by its own code): not ours
    local what, detail = ...
    if what == WAITING then
      return   -- tasks.await registered it
    elseif what == SLEEPING then
      heap_push(s.timers, { due = detail, task = task })
    else
      s.ready[#s.ready + 1] = task   -- a plain coroutine.yield(): resume next step
    end
    return
  end
  forget(s, task)
  task.ok = ok
  if ok then
    task.results = pack(...)
    return
  end
  task.error = ...
  task.traceback = debug.traceback(co, tostring(task.error))
  if s.on_error then
    s.on_error(task.error, task)
  else
    s.errors[#s.errors + 1] = task
  end
end

local function resume(s, task)
  if task.done then return end
  local status = coroutine.status(task.co)
  if status == "suspended" then
    local outer = s.resuming
    s.resuming = task
    local results = pack(coroutine.resume(task.co))
    s.resuming = outer   -- before settle: an on_error handler may raise
    settle(s, task, unpack(results, 1, results.n))
  elseif status == "dead" then   -- resumed to its end by someone else, from a plain yield
    settle(s, task, false, "the task was resumed outside its scheduler and ended there")
  end
end

--- Waits for request (or passes on nil, err from the call that failed to
-- start it) and returns what request:finish() gives. Yields inside a task
-- of client; blocks outside one.
function tasks.await(client, request, err)
  if not request then return nil, err end
  local task, s = current_task(client)
  if task and not request:done() then
    -- Only its scheduler wakes a waiting task: a stray coroutine.resume()
    -- gets the values it yielded and changes nothing.
    s.waiting[request], task.request = task, request
    repeat coroutine.yield(WAITING, request) until s.resuming == task and request:done()
    s.waiting[request], task.request = nil, nil
  elseif not task then
    while not request:done() do core.drive(client, MAX_WAIT) end
  end
  return request:finish()
end

function tasks.spawn(client, fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 3)
  end
  local s = scheduler(client)
  local args = pack(...)
  local task = setmetatable({ done = false, scheduler = s }, Task)
  task.co = coroutine.create(function() return fn(unpack(args, 1, args.n)) end)
  s.threads[task.co] = task
  s.count = s.count + 1
  s.ready[#s.ready + 1] = task
  return task
end

--- task:cancel(): ends a task that has not finished: its request, if one
-- is out, is abandoned and freed at once. The task then reads done, not
-- ok, with a "canceled" error. A task cannot cancel itself: it returns.
function Task:cancel()
  if self.done then return end
  -- "normal": the task's own code runs, in a coroutine it resumed
  local status = coroutine.status(self.co)
  if compat.running() == self.co or status == "running" or status == "normal" then
    error("a task cannot cancel itself: return from it instead", 2)
  end
  local request = self.request
  forget(self.scheduler, self)
  if request then request:cancel() end
  self.ok = false
  self.error = core.error("canceled", "the task was canceled")
  if coroutine.close and coroutine.status(self.co) == "suspended" then coroutine.close(self.co) end
end

function tasks.on_error(client, handler)
  if handler ~= nil and type(handler) ~= "function" then
    error(("bad argument #1 to 'on_error' (function expected, got %s)"):format(type(handler)), 3)
  end
  scheduler(client).on_error = handler
end

function tasks.in_task(client)
  return current_task(client) ~= nil
end

function tasks.sleep(client, seconds)
  if type(seconds) ~= "number" then
    error(("bad argument #1 to 'sleep' (number expected, got %s)"):format(type(seconds)), 3)
  end
  core.client_table(client)   -- raises on a closed client
  if not (seconds > 0) then seconds = 0 end   -- NaN too: a NaN due would stop every timer
  local task, s = current_task(client)
  if task then
    local due = core.now() + seconds
    repeat coroutine.yield(SLEEPING, due) until s.resuming == task and core.now() >= due
  else
    core.sleep(seconds)
  end
end

-- One round: let libcurl act (waiting up to `wait` seconds for it), queue
-- every task whose request ended, timer fired or turn came, and resume them
-- in order; with a budget (seconds, counted from the start of the round,
-- libcurl's share included), stop resuming once it is spent: the rest go
-- first next round.
local function advance(client, s, wait, budget)
  local deadline = budget and core.now() + budget
  core.drive(client, wait)
  local finished = core.finished(client)
  for i = 1, #finished do
    local task = s.waiting[finished[i]]
    if task then
      s.waiting[finished[i]] = nil
      enqueue(s, task)
    end
  end
  local now, timers = core.now(), s.timers
  while timers[1] and timers[1].due <= now do enqueue(s, heap_pop(timers).task) end
  if #s.ready > 0 then
    local ready = s.ready
    s.ready = {}
    for i = 1, #ready do enqueue(s, ready[i]) end
  end
  while s.head <= s.tail do
    local task = s.runnable[s.head]
    s.runnable[s.head] = nil
    s.head = s.head + 1
    resume(s, task)
    if deadline and core.now() >= deadline then break end
  end
  return s.count
end

function tasks.step(client, budget)
  if budget ~= nil and type(budget) ~= "number" then
    error(("bad argument #1 to 'step' (number expected, got %s)"):format(type(budget)), 3)
  end
  return advance(client, scheduler(client), 0, budget)
end

function tasks.timeout(client)
  local s = scheduler(client)   -- raises on a closed client
  local wait = core.due(client)
  if #s.ready > 0 or s.head <= s.tail then return 0 end
  if s.timers[1] then
    local due = math.max(0, s.timers[1].due - core.now())
    wait = wait and math.min(wait, due) or due
  end
  return wait
end

function tasks.run(client, timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    error(("bad argument #1 to 'run' (number expected, got %s)"):format(type(timeout)), 3)
  end
  local s = scheduler(client)
  if current_task(client) then
    error("run() inside one of the client's own tasks would wait for itself", 3)
  end
  local deadline = timeout and core.now() + timeout
  local wait = 0
  while advance(client, s, wait) > 0 do
    wait = tasks.timeout(client) or MAX_WAIT
    if deadline then
      local left = deadline - core.now()
      if left <= 0 then
        return nil, core.error("timeout", ("%d tasks still running after %g s"):format(s.count, timeout),
                               { retryable = true })
      end
      wait = math.min(wait, left)
    end
    wait = math.min(wait, MAX_WAIT)
  end
  if #s.errors > 0 then
    local failed = s.errors
    s.errors = {}
    return false, failed
  end
  return true
end

return tasks
