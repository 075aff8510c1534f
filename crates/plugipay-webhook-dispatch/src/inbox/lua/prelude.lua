-- Shared by every script (after the generated FROM table). ARGV[1] is the
-- key prefix (a hash tag: every key of one inbox lives in one cluster slot).
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- pending: the next attempt; running: the lease's expiry. One ordering for
-- every claim, so a lapsed lease is due in its turn.
local due = p .. ':due'
local function ev(ref) return p .. ':ev:' .. ref end
local function st(s) return p .. ':state:' .. s end
-- Wakes the listeners of other processes (a short stream, trimmed).
local function wake() redis.call('XADD', p .. ':wake', 'MAXLEN', '~', 64, '*', 'n', '1') end
-- Per state, by received_at: what a listing of one state walks (layout 3).
local function rs(s) return p .. ':recv:' .. s end
-- Moves ref between the per-state sets (scored by when it changed) and the
-- per-state listing indexes (scored by when it was received).
local function set_state(ref, from, to)
  if from then
    redis.call('ZREM', st(from), ref)
    redis.call('ZREM', rs(from), ref)
  end
  if to then
    redis.call('ZADD', st(to), now, ref)
    redis.call('ZADD', rs(to), tonumber(redis.call('HGET', ev(ref), 'received_at') or now), ref)
  end
end
