-- Claims the earliest due event, or moves it to dead when its attempts are
-- exhausted. ARGV: prefix, owner, lease ms, max attempts.
-- Returns {0, due in ms or -1} when nothing is due; {1 claimed | 2 exhausted,
-- tenant, id, type, body, matched secret, attempts, received at, handlers,
-- rerun, trace, 1 when it was running under a lapsed lease (the attempt
-- before was cut short: kept as its error, cleared by the next claim)}.
local me, lease, max = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
for _ = 1, 32 do
  local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
  if not first[1] then return {0, -1} end
  local at = tonumber(first[2])
  if at > now then return {0, at - now} end
  local ref = first[1]
  local h = ev(ref)
  local v = redis.call('HMGET', h, 'state', 'attempts', 'tenant', 'id', 'type', 'body', 'matched_secret', 'received_at',
    'handlers', 'rerun', 'trace', 'last_error')
  if v[1] and FROM.claim[v[1]] then
    local attempts = tonumber(v[2])
    if attempts >= max then
      local why = EXHAUSTED[v[1]]
      redis.call('HSET', h, 'state', 'dead', 'last_error', why, 'owner', me, 'updated_at', now)
      redis.call('ZREM', due, ref)
      set_state(ref, v[1], 'dead')
      return {2, v[3], v[4], v[5], v[6], v[7], attempts, v[8], v[9], v[10], v[11]}
    end
    attempts = attempts + 1
    redis.call('HSET', h, 'state', 'running', 'attempts', attempts, 'owner', me,
      'due_at', now + lease, 'updated_at', now)
    local cut = 0
    if v[1] == 'running' then
      cut = 1
      redis.call('HSET', h, 'last_error', CUT_SHORT)
    elseif v[12] == CUT_SHORT then
      redis.call('HDEL', h, 'last_error')
    end
    redis.call('ZADD', due, now + lease, ref)
    set_state(ref, v[1], 'running')
    return {1, v[3], v[4], v[5], v[6], v[7], attempts, v[8], v[9], v[10], v[11], cut}
  end
  -- Not open any more (moved on, or pruned): drop it.
  redis.call('ZREM', due, ref)
end
return {0, 0}
