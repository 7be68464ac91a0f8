"""The Lua scripts the Redis backend runs.

Every script gets the names of one *bucket* (see :mod:`._layout`): its first KEYS entry is
a key of that bucket, and every other key it touches is built from bases of the same
bucket, so in layout v2 all of them share one hash tag, hence one Cluster slot. On a single
server (layout v1, one bucket) the same scripts run unchanged. Only Redis 6.0 commands.
"""

from __future__ import annotations

__all__ = ["DELETE", "DROP_NAMESPACE", "FORGET", "HITS", "LOCK", "PRUNE", "PUT", "UNLOCK"]

# KEYS: the namespaces set of the first entry's bucket (it routes the call on a cluster);
# ARGV: JSON [[key, namespace, expire-at ms or "", [field, value, ...], bucket base], ...]
# A group of entries travels as one JSON argument (all strings, so nothing is lost to Lua's
# numbers): packing arguments in redis-py, not Redis, is most of a batch's cost. Each entry
# names its bucket, so on one server a call carries entries of many buckets; on a cluster
# every entry of a call shares a bucket (one slot).
PUT = """
for _, e in ipairs(cjson.decode(ARGV[1])) do
  local key, ns, exp, base = e[1], e[2], e[3], e[5]
  local ek, ib, xb = base .. 'entry:' .. key, base .. 'index:', base .. 'expiry:'
  local old = redis.call('HGET', ek, 'namespace')
  if old and old ~= ns then
    redis.call('ZREM', ib .. old, key)
    redis.call('ZREM', xb .. old, key)
  end
  redis.call('DEL', ek)
  redis.call('HSET', ek, unpack(e[4]))
  redis.call('ZADD', ib .. ns, 0, key)
  redis.call('SADD', base .. 'namespaces', ns)
  if exp ~= '' then
    redis.call('PEXPIREAT', ek, exp)
    redis.call('ZADD', xb .. ns, exp, key)
  else
    redis.call('ZREM', xb .. ns, key)
  end
end
return 1
"""

# KEYS: entry; ARGV: key, index base, expiry base. Returns 1 if the entry existed.
DELETE = """
local ns = redis.call('HGET', KEYS[1], 'namespace')
if not ns then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[2] .. ns, ARGV[1])
redis.call('ZREM', ARGV[3] .. ns, ARGV[1])
return 1
"""

# KEYS: entries (of one bucket); ARGV: n1, at1, n2, at2, ... A missing entry is skipped,
# never created as a hits-only hash. A few microseconds of server time per key.
HITS = """
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then
    local at = ARGV[2 * i]
    redis.call('HINCRBY', k, 'hits', ARGV[2 * i - 1])
    local last = redis.call('HGET', k, 'last_hit_at')
    if not last or tonumber(last) < tonumber(at) then
      redis.call('HSET', k, 'last_hit_at', at)
    end
  end
end
return 1
"""

# KEYS: a key of the first bucket (routing); ARGV: limit, JSON [[bucket base, namespace], ...]
# Drops keys Redis has expired from each (bucket, namespace) index, by the server's clock (a
# client's may be off). Returns how many expiry members it read.
PRUNE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n = 0
for _, pair in ipairs(cjson.decode(ARGV[2])) do
  local base, ns = pair[1], pair[2]
  local index, expiry = base .. 'index:' .. ns, base .. 'expiry:' .. ns
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', '(' .. now, 'LIMIT', 0, ARGV[1])
  for _, k in ipairs(gone) do
    if redis.call('EXISTS', base .. 'entry:' .. k) == 0 then redis.call('ZREM', index, k) end
    redis.call('ZREM', expiry, k)
  end
  n = n + #gone
end
return n
"""

# KEYS: index, expiry; ARGV: entry base, key, ... Drops index members whose entry is gone
# (evicted under maxmemory, deleted by hand), but only if it is still gone.
FORGET = """
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
return 1
"""

# KEYS: index, expiry, namespaces; ARGV: namespace. Forget an emptied namespace atomically,
# so a concurrent put into it is never left out of the namespaces set.
DROP_NAMESPACE = """
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[1])
end
return 1
"""

# KEYS: lock, entry; ARGV: owner token, ttl ms, client now (s).
# An answer already stored (servable: not rejected, not expired by the caller's clock) means
# the race is lost: return 0 so the caller reads it instead of computing it again. This
# closes the window between a caller's lookup miss and its lock attempt, in which the other
# process may have stored the answer and released the lock.
LOCK = """
local e = redis.call('HMGET', KEYS[2], 'value', 'status', 'expires_at')
if e[1] and e[2] ~= 'rejected' and not (e[3] and tonumber(e[3]) <= tonumber(ARGV[3])) then
  return 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# KEYS: lock; ARGV: owner token. Only the holder deletes its lock: after it expired and
# another process took it, a late unlock must not release the new holder's.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
