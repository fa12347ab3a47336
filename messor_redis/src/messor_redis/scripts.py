"""The Lua scripts behind every change a Redis memory makes, and its paged reads.

A script runs atomically in Redis: no other client sees a task between two
of its commands, so a task is never completed without its result, never in
two status sets at once, and a crash of the client mid-call changes nothing
(the script runs whole or not at all). Keys are built from the namespace
prefix, ``ARGV[1]``; ``KEYS[1]`` (the status hash) routes the call in a Cluster.

Every script that writes is fenced: ``ARGV[2]`` is the claim of the run that
writes (the exact value of ``run``), and the script changes nothing and
answers an error starting with :data:`CLAIM_LOST` unless that run still holds
it. A run paused past its claim's lapse, whose claim another run took, thus
cannot overwrite a thing. Writes made outside a run (``messor retry`` from
another terminal) pass ``''`` and are not fenced.

Each script works in bulk: one HMGET reads every old status, then a handful of
multi-field HSET/HDEL/SADD/SREM commands apply the whole batch, so a call
costs about ten commands per few thousand tasks. Lua's ``unpack`` is bounded
(about 8,000 values), so bulk commands go out in slices of 5,000 values.

Layout under the prefix ``messor:{namespace}:``:

* ``status``, ``data``, ``result``, ``error``, ``attempts``: hashes from task id
* ``ids:<status>``: the set of task ids with that status
* ``statuses``: the statuses ever used (to count and clear without scanning)
* ``run``: the claim of the run using the namespace (see :mod:`messor_redis.claim`)
* ``beats``: a hash from run id to that run's latest heartbeat (``messor.run.heartbeat``)
"""

from __future__ import annotations

from messor.plugin import UpdateRule

#: How the error of a fenced write begins.
CLAIM_LOST = "MESSOR_CLAIM_LOST"

_PREFIX = """
local p = ARGV[1]
"""

# Comes before a script's first write.
_FENCE = (
    """
if ARGV[2] ~= '' and redis.call('GET', p .. 'run') ~= ARGV[2] then
  return redis.error_reply('"""
    + CLAIM_LOST
    + """ this run no longer holds its claim on the namespace')
end
"""
)

# The prefix, and helpers shared by the scripts.
_HELPERS = (
    _PREFIX
    + """
local SLICE = 5000  -- values per redis.call; even, so that field/value pairs stay whole
local function push(t, ...)
  for _, v in ipairs({...}) do t[#t + 1] = v end
end
local function push_to(groups, key, value)
  if not groups[key] then groups[key] = {} end
  push(groups[key], value)
end
local function bulk(command, key, values)
  for i = 1, #values, SLICE do
    redis.call(command, key, unpack(values, i, math.min(i + SLICE - 1, #values)))
  end
end
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, SLICE do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + SLICE - 1, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end
"""
)

#: ARGV: prefix, claim, then task id and data (JSON) pairs; the first of a
#: repeated id wins. Returns how many tasks were new.
INSERT = (
    _HELPERS
    + _FENCE
    + """
local ids = {}
for i = 3, #ARGV, 2 do push(ids, ARGV[i]) end
if #ids == 0 then return 0 end
local known = hmget(p .. 'status', ids)
local statuses, data, new, seen = {}, {}, {}, {}
for k = 1, #ids do
  local id = ids[k]
  if not known[k] and not seen[id] then
    seen[id] = true
    push(statuses, id, 'pending')
    push(data, id, ARGV[2 * k + 2])
    push(new, id)
  end
end
if #new > 0 then
  bulk('HSET', p .. 'status', statuses)
  bulk('HSET', p .. 'data', data)
  bulk('SADD', p .. 'ids:pending', new)
  redis.call('SADD', p .. 'statuses', 'pending')
end
return #new
"""
)

#: ARGV: prefix, claim, the rule (:func:`rule_args`: keep_completed ('1' or
#: '0'), ignore unknown ids ('1' or '0'), the number n of statuses a change
#: applies from (-1: any), those n statuses), then per change: id, status,
#: result ('' for none, else JSON), error ('n' for none, else 's' .. text) and
#: attempts ('0' for not known).
#: Changes apply in order, each judged on the status the earlier ones left:
#: one is skipped if keep_completed and the task is completed and the change
#: is not a completion, or if the task's status is not among the n.
#: Returns {0, id} for the first unknown id (nothing changed) unless unknown
#: ids are ignored, else {1, positions of the changes skipped...} (the
#: skipped ones: a batch of outcomes usually skips none, and answers {1}).
UPDATE = (
    _HELPERS
    + """
local keep_completed, ignore_unknown = ARGV[3] == '1', ARGV[4] == '1'
local n, allowed = tonumber(ARGV[5]), nil
if n >= 0 then
  allowed = {}
  for i = 6, 5 + n do allowed[ARGV[i]] = true end
end
local first = 6 + math.max(n, 0)
local ids = {}
for i = first, #ARGV, 5 do push(ids, ARGV[i]) end
local olds = #ids > 0 and hmget(p .. 'status', ids) or {}
if not ignore_unknown then
  for k = 1, #ids do
    if not olds[k] then return {0, ids[k]} end
  end
end
"""
    # Unknown ids first (no write yet): a store that lost its data, the claim with it, says so.
    + _FENCE
    + """
-- Fold the changes into one final state per task, in order.
local original, final, order, skipped = {}, {}, {}, {1}
for k = 1, #ids do
  local id, row = ids[k], first + (k - 1) * 5
  if not olds[k] then
    push(skipped, k)
  else
    if not original[id] then
      original[id] = olds[k]
      push(order, id)
    end
    local now = final[id] and final[id][1] or original[id]
    local status = ARGV[row + 1]
    if (keep_completed and now == 'completed' and status ~= 'completed')
        or (allowed and not allowed[now]) then
      push(skipped, k)
    else
      final[id] = {status, ARGV[row + 2], ARGV[row + 3], ARGV[row + 4]}
    end
  end
end
local removes, adds, new_statuses = {}, {}, {}
local status_pairs, result_pairs, result_gone, error_pairs, error_gone = {}, {}, {}, {}, {}
local attempt_pairs, attempts_gone = {}, {}
for _, id in ipairs(order) do
  local state = final[id]
  if state then
    local status, result, err, attempts = state[1], state[2], state[3], state[4]
    if status ~= original[id] then
      push_to(removes, original[id], id)
      push_to(adds, status, id)
      push(status_pairs, id, status)
      new_statuses[status] = true
    end
    if result == '' then push(result_gone, id) else push(result_pairs, id, result) end
    if err == 'n' then push(error_gone, id) else push(error_pairs, id, string.sub(err, 2)) end
    if attempts == '0' then push(attempts_gone, id) else push(attempt_pairs, id, attempts) end
  end
end
for status, members in pairs(removes) do bulk('SREM', p .. 'ids:' .. status, members) end
for status, members in pairs(adds) do bulk('SADD', p .. 'ids:' .. status, members) end
for status in pairs(new_statuses) do redis.call('SADD', p .. 'statuses', status) end
bulk('HSET', p .. 'status', status_pairs)
bulk('HSET', p .. 'result', result_pairs)
bulk('HDEL', p .. 'result', result_gone)
bulk('HSET', p .. 'error', error_pairs)
bulk('HDEL', p .. 'error', error_gone)
bulk('HSET', p .. 'attempts', attempt_pairs)
bulk('HDEL', p .. 'attempts', attempts_gone)
return skipped
"""
)


def rule_args(rule: UpdateRule) -> list[str]:
    """``rule`` as :data:`UPDATE` reads it, after the claim (ARGV[3] on)."""
    flags = ["1" if rule.keep_completed else "0", "1" if rule.missing == "ignore" else "0"]
    if rule.only_from is None:
        return [*flags, "-1"]
    return [*flags, str(len(rule.only_from)), *sorted(rule.only_from)]


#: ARGV: prefix, claim, then task ids. Forgets those tasks; unknown ids are ignored.
DELETE = (
    _HELPERS
    + _FENCE
    + """
local ids = {}
for i = 3, #ARGV do push(ids, ARGV[i]) end
if #ids == 0 then return 1 end
local olds = hmget(p .. 'status', ids)
local by_status = {}
for k = 1, #ids do
  if olds[k] then push_to(by_status, olds[k], ids[k]) end
end
for status, members in pairs(by_status) do bulk('SREM', p .. 'ids:' .. status, members) end
for _, name in ipairs({'status', 'data', 'result', 'error', 'attempts'}) do
  bulk('HDEL', p .. name, ids)
end
return 1
"""
)

#: ARGV: prefix, claim. Deletes every key of the namespace but the claim, and
#: nothing else (UNLINK: a harvest of millions of tasks is freed in the
#: background, not blocking others).
DELETE_ALL = (
    _PREFIX
    + _FENCE
    + """
for _, status in ipairs(redis.call('SMEMBERS', p .. 'statuses')) do
  redis.call('UNLINK', p .. 'ids:' .. status)
end
redis.call('UNLINK', p .. 'status', p .. 'data', p .. 'result', p .. 'error', p .. 'attempts',
  p .. 'statuses', p .. 'beats')
return 1
"""
)

#: ARGV: prefix, cursor (of HSCAN over the status hash), rows per page, task
#: ids looked at per call at most, data ('1' to read it), then optionally the
#: one status wanted. Returns {cursor, then per task: id, status, result,
#: error, attempts[, data]} (nil for a value the task has not); cursor '0'
#: ends the scan. Read-only.
#:
#: Every scan walks the status hash, whatever the status wanted (filtered
#: here, so that only the tasks wanted travel): a scan by status lists its
#: tasks in the order of the scan of all, and a task whose status changes
#: meanwhile is never skipped by a scan of all, as a walk over the status
#: sets one after the other would skip a task that moved back to a set
#: already walked.
SCAN = (
    _HELPERS
    + """
local cursor, rows, budget, with_data, wanted = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  ARGV[5] == '1', ARGV[6]
if wanted and redis.call('SCARD', p .. 'ids:' .. wanted) == 0 then return {'0'} end
local ids, statuses, looked = {}, {}, 0
repeat
  local reply = redis.call('HSCAN', p .. 'status', cursor, 'COUNT', rows)
  cursor = reply[1]
  local found = reply[2]
  for i = 1, #found, 2 do
    if not wanted or found[i + 1] == wanted then
      push(ids, found[i])
      push(statuses, found[i + 1])
    end
  end
  looked = looked + #found / 2
until cursor == '0' or #ids >= rows or looked >= budget
local page = {cursor}
if #ids == 0 then return page end
local columns = {hmget(p .. 'result', ids), hmget(p .. 'error', ids), hmget(p .. 'attempts', ids)}
if with_data then push(columns, hmget(p .. 'data', ids)) end
for k = 1, #ids do
  page[#page + 1] = ids[k]
  page[#page + 1] = statuses[k]
  for _, column in ipairs(columns) do page[#page + 1] = column[k] end
end
return page
"""
)

#: ARGV: prefix, claim, run id, beat. Keeps the run's latest heartbeat, fenced
#: like every write: a run that lost its claim cannot pass for live.
WRITE_BEAT = (
    _PREFIX
    + _FENCE
    + """
redis.call('HSET', p .. 'beats', ARGV[3], ARGV[4])
return 1
"""
)

#: ARGV: prefix, claim, then run ids. Forgets those runs' heartbeats.
DELETE_BEATS = (
    _PREFIX
    + _FENCE
    + """
if #ARGV > 2 then redis.call('HDEL', p .. 'beats', unpack(ARGV, 3)) end
return 1
"""
)
