-- Brings layout 2 to 3: each event also in its state's listing index
-- (`recv:<state>`, by received_at), up to `batch` events per call. ARGV:
-- prefix, batch, the version to record. Returns how many events are left
-- (0: done, the version recorded). Idempotent: a second process migrating
-- at the same time adds the same members.
local batch = tonumber(ARGV[2])
local cursor = tonumber(redis.call('GET', p .. ':migrating3') or '0')
local refs = redis.call('ZRANGE', p .. ':all', cursor, cursor + batch - 1, 'WITHSCORES')
for i = 1, #refs, 2 do
  local ref = refs[i]
  local s = redis.call('HGET', ev(ref), 'state')
  if s then redis.call('ZADD', rs(s), tonumber(refs[i + 1]), ref) end
end
local n = #refs / 2
if n < batch then
  redis.call('DEL', p .. ':migrating3')
  redis.call('SET', p .. ':schema', ARGV[3])
  return 0
end
redis.call('SET', p .. ':migrating3', cursor + n)
return redis.call('ZCARD', p .. ':all') - cursor - n
