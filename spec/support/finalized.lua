-- finalized(fn): an object whose finalizer is fn. A table with __gc on 5.2
-- and later; a proxy userdata on 5.1 and LuaJIT, whose tables have no
-- finalizers. (A module of its own, so that the specs' child processes can
-- use it without the rest of the helpers.)
return function(fn)
  if newproxy then
    local proxy = newproxy(true)
    getmetatable(proxy).__gc = fn
    return proxy
  end
  return setmetatable({}, { __gc = fn })
end
