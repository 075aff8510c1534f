-- Stores a delivery. ARGV: prefix, ref, ids key, tenant, id, type, body,
-- signature, matched secret, account (`-` none, `+value`), occurred (same),
-- state, object id (same), trace context (same). Returns 0 new, 1 duplicate, 2 revived (a redelivery of a dead event).
local ref = ARGV[2]
local h = ev(ref)
local cur = redis.call('HGET', h, 'state')
if cur then
  if not FROM.redeliver[cur] then return 1 end
  -- Its handlers not done (dead ones included) run afresh.
  redis.call('HSET', h, 'state', 'pending', 'attempts', 0, 'due_at', now, 'updated_at', now, 'owner', '',
    'rerun', '!')
  redis.call('HDEL', h, 'last_error')
  set_state(ref, cur, 'pending')
  redis.call('ZADD', due, now, ref)
  wake()
  return 2
end
local state = ARGV[12]
redis.call('HSET', h, 'tenant', ARGV[4], 'id', ARGV[5], 'type', ARGV[6], 'body', ARGV[7],
  'signature', ARGV[8], 'matched_secret', ARGV[9], 'received_at', now, 'state', state,
  'attempts', 0, 'due_at', now, 'updated_at', now, 'owner', '')
if string.sub(ARGV[10], 1, 1) == '+' then redis.call('HSET', h, 'account_id', string.sub(ARGV[10], 2)) end
if string.sub(ARGV[11], 1, 1) == '+' then redis.call('HSET', h, 'occurred_at', string.sub(ARGV[11], 2)) end
if ARGV[13] and string.sub(ARGV[13], 1, 1) == '+' then redis.call('HSET', h, 'object_id', string.sub(ARGV[13], 2)) end
if ARGV[14] and string.sub(ARGV[14], 1, 1) == '+' then redis.call('HSET', h, 'trace', string.sub(ARGV[14], 2)) end
redis.call('ZADD', p .. ':all', now, ref)
redis.call('SADD', ARGV[3], ref)
set_state(ref, nil, state)
if state == 'pending' then
  redis.call('ZADD', due, now, ref)
  wake()
end
return 0
