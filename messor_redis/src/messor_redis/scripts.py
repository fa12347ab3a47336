"""The Lua scripts behind every change a Redis memory makes.

A script runs atomically in Redis: no other client sees a task between two
of its commands, so a task is never completed without its result, never in
two status sets at once, and a crash of the client mid-call changes nothing
(the script runs whole or not at all). Keys are built from the namespace
prefix, ``ARGV[1]``; ``KEYS[1]`` (the status hash) routes the call in a Cluster.

Each script works in bulk: one HMGET reads every old status, then a handful of
multi-field HSET/HDEL/SADD/SREM commands apply the whole batch, so a call
costs about ten commands however many tasks it carries. Lua's ``unpack`` is
bounded (about 8,000 values): callers send at most 1,000 tasks per call.

Layout under the prefix ``messor:{namespace}:``:

* ``status``, ``data``, ``result``, ``error``: hashes from task id
* ``ids:<status>``: the set of task ids with that status
* ``statuses``: the statuses ever used (to count and clear without scanning)
"""

from __future__ import annotations

# Helpers shared by the scripts: add a value to a list kept in a table.
_HELPERS = """
local function push(t, ...)
  for _, v in ipairs({...}) do t[#t + 1] = v end
end
local function push_to(groups, key, value)
  if not groups[key] then groups[key] = {} end
  push(groups[key], value)
end
"""

#: ARGV: prefix, then task id and data (JSON) pairs; the first of a repeated id
#: wins. Returns how many tasks were new.
STORE_TASKS = (
    _HELPERS
    + """
local p = ARGV[1]
local ids = {}
for i = 2, #ARGV, 2 do push(ids, ARGV[i]) end
if #ids == 0 then return 0 end
local known = redis.call('HMGET', p .. 'status', unpack(ids))
local statuses, data, new, seen = {}, {}, {}, {}
for k = 1, #ids do
  local id = ids[k]
  if not known[k] and not seen[id] then
    seen[id] = true
    push(statuses, id, 'pending')
    push(data, id, ARGV[2 * k + 1])
    push(new, id)
  end
end
if #new > 0 then
  redis.call('HSET', p .. 'status', unpack(statuses))
  redis.call('HSET', p .. 'data', unpack(data))
  redis.call('SADD', p .. 'ids:pending', unpack(new))
  redis.call('SADD', p .. 'statuses', 'pending')
end
return #new
"""
)

#: ARGV: prefix, keep_completed ('1' or '0'), then per task: id, status,
#: result ('' for none, else JSON) and error ('n' for none, else 's' .. text).
#: Rows apply in order (a repeated id ends as its last row says); with
#: keep_completed a non-completed status never replaces a completed one.
#: Returns {0, id} for the first unknown id (nothing changed), else {1}.
UPDATE_STATUSES = (
    _HELPERS
    + """
local p = ARGV[1]
local keep_completed = ARGV[2] == '1'
local ids = {}
for i = 3, #ARGV, 4 do push(ids, ARGV[i]) end
if #ids == 0 then return {1} end
local olds = redis.call('HMGET', p .. 'status', unpack(ids))
for k = 1, #ids do
  if not olds[k] then return {0, ids[k]} end
end
-- Fold the rows into one final state per task, in order.
local original, final, order = {}, {}, {}
for k = 1, #ids do
  local id, row = ids[k], 3 + (k - 1) * 4
  if not original[id] then
    original[id] = olds[k]
    push(order, id)
  end
  local now = final[id] and final[id][1] or original[id]
  local status = ARGV[row + 1]
  if not (keep_completed and now == 'completed' and status ~= 'completed') then
    final[id] = {status, ARGV[row + 2], ARGV[row + 3]}
  end
end
local removes, adds, new_statuses = {}, {}, {}
local status_pairs, result_pairs, result_gone, error_pairs, error_gone = {}, {}, {}, {}, {}
for _, id in ipairs(order) do
  local state = final[id]
  if state then
    local status, result, err = state[1], state[2], state[3]
    if status ~= original[id] then
      push_to(removes, original[id], id)
      push_to(adds, status, id)
      push(status_pairs, id, status)
      new_statuses[status] = true
    end
    if result == '' then push(result_gone, id) else push(result_pairs, id, result) end
    if err == 'n' then push(error_gone, id) else push(error_pairs, id, string.sub(err, 2)) end
  end
end
for status, members in pairs(removes) do
  redis.call('SREM', p .. 'ids:' .. status, unpack(members))
end
for status, members in pairs(adds) do
  redis.call('SADD', p .. 'ids:' .. status, unpack(members))
end
for status in pairs(new_statuses) do redis.call('SADD', p .. 'statuses', status) end
if #status_pairs > 0 then redis.call('HSET', p .. 'status', unpack(status_pairs)) end
if #result_pairs > 0 then redis.call('HSET', p .. 'result', unpack(result_pairs)) end
if #result_gone > 0 then redis.call('HDEL', p .. 'result', unpack(result_gone)) end
if #error_pairs > 0 then redis.call('HSET', p .. 'error', unpack(error_pairs)) end
if #error_gone > 0 then redis.call('HDEL', p .. 'error', unpack(error_gone)) end
return {1}
"""
)

#: ARGV: prefix, then task ids. Forgets those tasks; unknown ids are ignored.
CLEAR_TASKS = (
    _HELPERS
    + """
local p = ARGV[1]
local ids = {}
for i = 2, #ARGV do push(ids, ARGV[i]) end
if #ids == 0 then return 1 end
local olds = redis.call('HMGET', p .. 'status', unpack(ids))
local by_status = {}
for k = 1, #ids do
  if olds[k] then push_to(by_status, olds[k], ids[k]) end
end
for status, members in pairs(by_status) do
  redis.call('SREM', p .. 'ids:' .. status, unpack(members))
end
for _, name in ipairs({'status', 'data', 'result', 'error'}) do
  redis.call('HDEL', p .. name, unpack(ids))
end
return 1
"""
)

#: ARGV: prefix. Deletes every key of the namespace, and nothing else.
CLEAR = """
local p = ARGV[1]
for _, status in ipairs(redis.call('SMEMBERS', p .. 'statuses')) do
  redis.call('DEL', p .. 'ids:' .. status)
end
redis.call('DEL', p .. 'status', p .. 'data', p .. 'result', p .. 'error', p .. 'statuses')
return 1
"""
