"""The Lua scripts behind every change a Redis memory makes.

A script runs atomically in Redis: no other client sees a task between two
of its commands, so a task is never completed without its result, never in
two status sets at once, and a crash of the client mid-call changes nothing
(the script runs whole or not at all). Keys are built from the namespace
prefix, ``ARGV[1]``; ``KEYS[1]`` (the status hash) routes the call in a Cluster.

Layout under the prefix ``messor:{namespace}:``:

* ``status``, ``data``, ``result``, ``error``: hashes from task id
* ``ids:<status>``: the set of task ids with that status
* ``statuses``: the statuses ever used (to count and clear without scanning)
"""

from __future__ import annotations

#: ARGV: prefix, then task id and data (JSON) pairs. Returns how many were new.
STORE_TASKS = """
local p = ARGV[1]
local added = 0
for i = 2, #ARGV, 2 do
  if redis.call('HSETNX', p .. 'status', ARGV[i], 'pending') == 1 then
    redis.call('HSET', p .. 'data', ARGV[i], ARGV[i + 1])
    redis.call('SADD', p .. 'ids:pending', ARGV[i])
    added = added + 1
  end
end
if added > 0 then
  redis.call('SADD', p .. 'statuses', 'pending')
end
return added
"""

#: ARGV: prefix, keep_completed ('1' or '0'), then per task: id, status,
#: result ('' for none, else JSON) and error ('n' for none, else 's' .. text).
#: Returns {0, id} for the first unknown id (nothing changed), else {1}.
UPDATE_STATUSES = """
local p = ARGV[1]
local keep_completed = ARGV[2] == '1'
for i = 3, #ARGV, 4 do
  if redis.call('HEXISTS', p .. 'status', ARGV[i]) == 0 then
    return {0, ARGV[i]}
  end
end
for i = 3, #ARGV, 4 do
  local id, status, result, err = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local old = redis.call('HGET', p .. 'status', id)
  if not (keep_completed and old == 'completed' and status ~= 'completed') then
    if old ~= status then
      redis.call('SREM', p .. 'ids:' .. old, id)
      redis.call('SADD', p .. 'ids:' .. status, id)
      redis.call('SADD', p .. 'statuses', status)
      redis.call('HSET', p .. 'status', id, status)
    end
    if result == '' then
      redis.call('HDEL', p .. 'result', id)
    else
      redis.call('HSET', p .. 'result', id, result)
    end
    if err == 'n' then
      redis.call('HDEL', p .. 'error', id)
    else
      redis.call('HSET', p .. 'error', id, string.sub(err, 2))
    end
  end
end
return {1}
"""

#: ARGV: prefix, then task ids. Forgets those tasks; unknown ids are ignored.
CLEAR_TASKS = """
local p = ARGV[1]
for i = 2, #ARGV do
  local old = redis.call('HGET', p .. 'status', ARGV[i])
  if old then
    redis.call('SREM', p .. 'ids:' .. old, ARGV[i])
    redis.call('HDEL', p .. 'status', ARGV[i])
    redis.call('HDEL', p .. 'data', ARGV[i])
    redis.call('HDEL', p .. 'result', ARGV[i])
    redis.call('HDEL', p .. 'error', ARGV[i])
  end
end
return 1
"""

#: ARGV: prefix. Deletes every key of the namespace, and nothing else.
CLEAR = """
local p = ARGV[1]
for _, status in ipairs(redis.call('SMEMBERS', p .. 'statuses')) do
  redis.call('DEL', p .. 'ids:' .. status)
end
redis.call('DEL', p .. 'status', p .. 'data', p .. 'result', p .. 'error', p .. 'statuses')
return 1
"""
