-- Deletes up to `batch` done (and, on request, skipped) events last changed
-- before the cutoff. ARGV: prefix, older than ms, batch, skipped ('1'/'0').
-- Returns how many.
local cutoff = now - tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
local states = {'done'}
if ARGV[4] == '1' then table.insert(states, 'skipped') end
local n = 0
for _, s in ipairs(states) do
  if FROM.prune[s] then
    local refs = redis.call('ZRANGEBYSCORE', st(s), '-inf', '(' .. cutoff, 'LIMIT', 0, batch - n)
    for _, ref in ipairs(refs) do
      local id = redis.call('HGET', ev(ref), 'id')
      redis.call('DEL', ev(ref))
      redis.call('ZREM', st(s), ref)
      redis.call('ZREM', rs(s), ref)
      redis.call('ZREM', p .. ':all', ref)
      if id then redis.call('SREM', p .. ':ids:' .. string.len(id) .. ':' .. id, ref) end
      n = n + 1
    end
  end
end
return n
