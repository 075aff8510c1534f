-- The tools' transitions: dead, skipped and stale events (revive), or done
-- ones (rerun, on purpose), back to pending with their attempts reset —
-- one id's events, or a batch of one state's at a time (the caller walks
-- the states and the batches: one script never blocks Redis for long).
-- ARGV: prefix, ids key ('' for a batch), dead, skipped, done ('1'/'0'), type
-- ('' any), tenant ('-' any, '+name'), stale ('1'/'0'), handler ('' none:
-- a done event reruns all, `*`; a dead one those not done, `!`), received since ms
-- ('' any); for a batch: the state walked, the first rank, the batch size,
-- and the walk's end ('' now: events that entered the state later — a rerun
-- event done again — are not taken again). Returns {moved, examined, end}.
local ids, only, tenant = ARGV[2], ARGV[6], ARGV[7]
local handler, since = ARGV[9], tonumber(ARGV[10])
local want = {dead = ARGV[3] == '1', skipped = ARGV[4] == '1', done = ARGV[5] == '1',
  stale = ARGV[8] == '1'}
local refs = {}
local till = now
if ids ~= '' then
  refs = redis.call('SMEMBERS', ids)
else
  if ARGV[14] and ARGV[14] ~= '' then till = tonumber(ARGV[14]) end
  refs = redis.call('ZRANGEBYSCORE', st(ARGV[11]), '-inf', till, 'LIMIT', tonumber(ARGV[12]),
    tonumber(ARGV[13]))
end
local n = 0
for _, ref in ipairs(refs) do
  local h = ev(ref)
  local cur = redis.call('HMGET', h, 'state', 'type', 'tenant', 'received_at')
  local s = cur[1]
  if s and want[s] and (FROM.revive[s] or FROM.rerun[s])
     and (only == '' or cur[2] == only)
     and (tenant == '-' or '+' .. (cur[3] or '') == tenant)
     and (not since or tonumber(cur[4] or 0) >= since) then
    redis.call('HSET', h, 'state', 'pending', 'attempts', 0, 'due_at', now, 'updated_at', now, 'owner', '')
    redis.call('HDEL', h, 'last_error')
    if handler ~= '' then
      redis.call('HSET', h, 'rerun', handler)
    elseif s == 'done' then
      redis.call('HSET', h, 'rerun', '*')
    else
      redis.call('HSET', h, 'rerun', '!')
    end
    set_state(ref, s, 'pending')
    redis.call('ZADD', due, now, ref)
    n = n + 1
  end
end
if n > 0 then wake() end
return {n, #refs, till}
