--- Tasks: many API calls in flight on one thread, for hosts whose main loop
-- must never wait on the network.
--
--   client:spawn(fn, ...)   runs fn(...) as a task: inside it every API call
--                           (and job:wait's pauses) yields instead of blocking
--   client:step()           never blocks: advances transfers and timers,
--                           resumes the tasks whose work is ready; returns the
--                           number of unfinished tasks
--   client:run([timeout])   drives until every task is done
--   client:sockets(), client:timeout()   what an outside loop waits on
--
-- The C core yields (WAIT_TRANSFER, x) from a task's API call and
-- (WAIT_SLOT) when max_in_flight requests are already on the wire; this
-- scheduler resumes the task when the core reports x done.
local core = require "voiceclone.core"

local Client = core.Client
local WAIT_TRANSFER, WAIT_SLOT = core.WAIT_TRANSFER, core.WAIT_SLOT
local SLEEP = {}                 -- what client:sleep yields inside a task
local MAX_WAIT = 1               -- seconds run() waits at a time when nothing is due

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
    local parent = i // 2
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

-- One scheduler per client; weak keys, so it goes with its client.
local schedulers = setmetatable({}, { __mode = "k" })

local function scheduler(client)
  local s = schedulers[client]
  if not s then
    s = {
      threads = client:_tasks(),   -- [thread] = task: how the C core knows a task
      count = 0,                   -- unfinished tasks
      ready = {},                  -- to resume at the next step
      runnable = {}, head = 1, tail = 0,   -- to resume now, in order
      waiting = {},                -- [transfer] = task
      slot_waiters = { head = 1, tail = 0 },   -- waiting for room among max_in_flight
      timers = {},
      errors = {},                 -- failed tasks, for run() when no on_error
    }
    schedulers[client] = s
  end
  return s
end

local function settle(s, task, ok, ...)
  local co = task.co
  if coroutine.status(co) ~= "dead" then
    if not ok then return end   -- it was not suspended (resumed by its own code): not ours
    local what, detail = ...
    if what == WAIT_TRANSFER then
      s.waiting[detail] = task
    elseif what == WAIT_SLOT then
      local waiters = s.slot_waiters
      waiters.tail = waiters.tail + 1
      waiters[waiters.tail] = task
    elseif what == SLEEP then
      heap_push(s.timers, { due = core.now() + detail, task = task })
    else
      s.ready[#s.ready + 1] = task   -- a plain coroutine.yield(): resume next step
    end
    return
  end
  s.threads[co] = nil
  s.count = s.count - 1
  task.done, task.ok = true, ok
  if ok then
    task.results = table.pack(...)
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
  if not task.done then settle(s, task, coroutine.resume(task.co)) end
end

--- Runs fn(...) as a task of this client; returns the task, whose fields
-- done, ok, results (a table.pack), error and traceback tell how it ended.
function Client:spawn(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 2)
  end
  self:_tasks()   -- raises on a closed client
  local s = scheduler(self)
  local args = table.pack(...)
  local task = setmetatable({ done = false }, Task)
  task.co = coroutine.create(function() return fn(table.unpack(args, 1, args.n)) end)
  s.threads[task.co] = task
  s.count = s.count + 1
  s.ready[#s.ready + 1] = task
  return task
end

--- Called with (err, task) when a task raises; without it, run() returns
-- the failed tasks.
function Client:on_error(handler)
  if handler ~= nil and type(handler) ~= "function" then
    error(("bad argument #1 to 'on_error' (function expected, got %s)"):format(type(handler)), 2)
  end
  scheduler(self).on_error = handler
end

--- True inside one of this client's tasks, where API calls yield.
function Client:in_task()
  local co, main = coroutine.running()
  return not main and scheduler(self).threads[co] ~= nil
end

--- Pauses: yields inside a task (the others go on), blocks outside one.
function Client:sleep(seconds)
  if type(seconds) ~= "number" then
    error(("bad argument #1 to 'sleep' (number expected, got %s)"):format(type(seconds)), 2)
  end
  if self:in_task() then
    coroutine.yield(SLEEP, seconds)
  else
    self:_sleep(seconds)
  end
end

-- The tasks to resume, in order: a queue with a moving head.
local function enqueue(s, task)
  s.tail = s.tail + 1
  s.runnable[s.tail] = task
end

-- One round: let libcurl act (waiting up to `wait` seconds for it), queue
-- every task whose transfer ended, timer fired or turn came, and resume them
-- in order; with a budget (seconds), stop resuming once it is spent: the
-- rest go first next round.
local function advance(client, s, wait, budget)
  local finished, free = client:_drive(wait)
  for i = 1, #finished do
    local task = s.waiting[finished[i]]
    s.waiting[finished[i]] = nil
    if task then enqueue(s, task) end
  end
  local now, timers = core.now(), s.timers
  while timers[1] and timers[1].due <= now do enqueue(s, heap_pop(timers).task) end
  local waiters = s.slot_waiters
  while free > 0 and waiters.head <= waiters.tail do
    enqueue(s, waiters[waiters.head])
    waiters[waiters.head] = nil
    waiters.head, free = waiters.head + 1, free - 1
  end
  if #s.ready > 0 then
    local ready = s.ready
    s.ready = {}
    for i = 1, #ready do enqueue(s, ready[i]) end
  end
  local deadline = budget and now + budget
  while s.head <= s.tail do
    local task = s.runnable[s.head]
    s.runnable[s.head] = nil
    s.head = s.head + 1
    resume(s, task)
    if deadline and core.now() >= deadline then break end
  end
  return s.count
end

--- Never blocks: advances transfers and timers and resumes the tasks whose
-- work is ready, spending at most `budget` seconds resuming them (default:
-- no limit; a host's frame loop passes what it can spare, and the rest run
-- at the next step). Returns the number of unfinished tasks.
function Client:step(budget)
  if budget ~= nil and type(budget) ~= "number" then
    error(("bad argument #1 to 'step' (number expected, got %s)"):format(type(budget)), 2)
  end
  return advance(self, scheduler(self), 0, budget)
end

--- Seconds until step() has something to do (0: now), or nil when nothing
-- is pending: with sockets(), what an outside loop waits on.
function Client:timeout()
  local s = scheduler(self)
  local wait, free = self:_timer()   -- raises on a closed client
  if #s.ready > 0 or s.head <= s.tail then return 0 end
  if free > 0 and s.slot_waiters.head <= s.slot_waiters.tail then return 0 end
  if s.timers[1] then
    local due = math.max(0, s.timers[1].due - core.now())
    wait = wait and math.min(wait, due) or due
  end
  return wait
end

--- Drives until every task is done, or for at most `timeout` seconds.
-- Returns true; or false and the failed tasks (when no on_error is set);
-- or nil and a "timeout" error with tasks still running.
function Client:run(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    error(("bad argument #1 to 'run' (number expected, got %s)"):format(type(timeout)), 2)
  end
  local s = scheduler(self)
  local deadline = timeout and core.now() + timeout
  local wait = 0
  while advance(self, s, wait) > 0 do
    wait = self:timeout() or MAX_WAIT
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

return Client
