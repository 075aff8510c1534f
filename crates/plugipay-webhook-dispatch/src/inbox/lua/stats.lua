-- Counts per state (in the order of ARGV[2..]) and the oldest due event's
-- age in ms. ARGV: prefix, states….
local out = {}
for i = 2, #ARGV do table.insert(out, redis.call('ZCARD', st(ARGV[i]))) end
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
local age = 0
if first[2] and tonumber(first[2]) <= now then age = now - tonumber(first[2]) end
table.insert(out, age)
return out
