-- The one owned transition: moves ref if `owner` still holds its lease.
-- ARGV: prefix, ref, owner, to, due in ms ('' unchanged), error ('' kept),
-- refund ('1': the attempt is given back), the handlers' states ('' unchanged;
-- else stored, and a rerun request settled). Returns 1 moved, 0 not the owner.
local ref, me, to = ARGV[2], ARGV[3], ARGV[4]
local h = ev(ref)
local cur = redis.call('HMGET', h, 'state', 'owner')
if cur[1] ~= FROM.owned or cur[2] ~= me then return 0 end
if ARGV[7] == '1' then redis.call('HINCRBY', h, 'attempts', -1) end
if ARGV[6] ~= '' then redis.call('HSET', h, 'last_error', ARGV[6]) end
if ARGV[8] ~= '' then
  redis.call('HSET', h, 'handlers', ARGV[8])
  redis.call('HDEL', h, 'rerun')
end
if ARGV[5] ~= '' then
  local at = now + tonumber(ARGV[5])
  redis.call('HSET', h, 'due_at', at)
  redis.call('ZADD', due, at, ref)
end
if to ~= cur[1] then
  redis.call('HSET', h, 'state', to, 'updated_at', now)
  set_state(ref, cur[1], to)
  if not FROM.claim[to] then redis.call('ZREM', due, ref) end
end
return 1
