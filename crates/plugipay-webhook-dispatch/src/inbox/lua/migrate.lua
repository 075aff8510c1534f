-- Brings the first release's layout (a stream read by a consumer group, a
-- delayed set, the types of an id in `:id:` sets) to version 2, up to
-- `batch` events per call. ARGV: prefix, batch, lease ms (a running event's
-- lease is taken to end one lease after it was claimed). Returns how many
-- events are left to migrate (0: done, the version recorded).
local batch, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local cursor = tonumber(redis.call('GET', p .. ':migrating') or '0')
local refs = redis.call('ZRANGE', p .. ':all', cursor, cursor + batch - 1)
for _, ref in ipairs(refs) do
  local h = ev(ref)
  local v = redis.call('HMGET', h, 'state', 'next_attempt_at', 'updated_at', 'id', 'type')
  if v[1] then
    local at = tonumber(v[2] or '0')
    if v[1] == 'running' then at = tonumber(v[3] or '0') + lease end
    redis.call('HSET', h, 'tenant', '', 'due_at', at)
    redis.call('HDEL', h, 'next_attempt_at', 'entry')
    if FROM.claim[v[1]] then redis.call('ZADD', due, at, ref) end
    redis.call('ZADD', st(v[1]), tonumber(v[3] or '0'), ref)
    if v[4] then
      local idref = string.len(v[4]) .. ':' .. v[4]
      redis.call('SADD', p .. ':ids:' .. idref, ref)
      redis.call('DEL', p .. ':id:' .. idref)
    end
  end
end
if #refs < batch then
  redis.call('DEL', p .. ':stream', p .. ':delayed', p .. ':migrating')
  redis.call('SET', p .. ':schema', ARGV[4])
  return 0
end
redis.call('SET', p .. ':migrating', cursor + #refs)
return redis.call('ZCARD', p .. ':all') - cursor - #refs
