-- Counts per state (in the order of ARGV[2..]), the oldest due event's age
-- in ms, and — when something runs — in how many ms the earliest running
-- event's lease lapses (its score in `due`; the running are a few per
-- worker, at most 1,000 read). ARGV: prefix, states….
local out = {}
for i = 2, #ARGV do table.insert(out, redis.call('ZCARD', st(ARGV[i]))) end
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local age = 0
if first[2] and tonumber(first[2]) <= now then age = now - tonumber(first[2]) end
table.insert(out, age)
local running = redis.call('ZRANGE', st('running'), 0, 999)
local lapse = nil
for _, ref in ipairs(running) do
  local at = redis.call('ZSCORE', due, ref)
  if at and (lapse == nil or tonumber(at) < lapse) then lapse = tonumber(at) end
end
if lapse then table.insert(out, lapse - now) end
return out
