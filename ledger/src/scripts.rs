//! Lua scripts that make multi-key ledger updates atomic and fenced.
//!
//! Every script that records progress first checks that the caller's fencing token is
//! still the lease's value (`KEYS[1]`); if not it returns -1 and changes nothing.

use redis::Script;
use std::sync::LazyLock;

/// Records a batch of landed messages.
/// KEYS: lease, stats, pending, failures, bucket index, then one record-bucket key per entry.
/// ARGV: token, pass, then per entry: uid, encoded record, size, bucket.
/// Returns how many records were new (-1 if fenced).
pub(crate) static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local pass = ARGV[2]
local added = 0
local n = (#ARGV - 2) / 4
for i = 0, n - 1 do
  local uid = ARGV[3 + i * 4]
  local size = tonumber(ARGV[5 + i * 4])
  if redis.call('HSETNX', KEYS[6 + i], uid, ARGV[4 + i * 4]) == 1 then
    added = added + 1
    redis.call('SADD', KEYS[5], ARGV[6 + i * 4])
    redis.call('HINCRBY', KEYS[2], 'msgs', 1)
    redis.call('HINCRBY', KEYS[2], 'bytes', size)
    redis.call('HINCRBY', KEYS[2], 'p' .. pass .. ':msgs', 1)
    redis.call('HINCRBY', KEYS[2], 'p' .. pass .. ':bytes', size)
  end
  redis.call('SREM', KEYS[3], uid)
  if redis.call('HDEL', KEYS[4], uid) == 1 then
    redis.call('HINCRBY', KEYS[2], 'failed', -1)
  end
end
return added
"#,
    )
});

/// Marks UIDs as in flight before they are sent to the target.
/// KEYS: lease, pending. ARGV: token, uids...
pub(crate) static MARK_PENDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
return 0
"#,
    )
});

/// Records a message that failed permanently, with its reason, stored as
/// `<pass>|<reason>` so a failure counts once in total and once in each pass that
/// tried it (a redelivered slice of the same pass does not count it again).
/// KEYS: lease, stats, pending, failures. ARGV: token, pass, uid, reason.
pub(crate) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SREM', KEYS[3], ARGV[3])
local old = redis.call('HGET', KEYS[4], ARGV[3])
if not old then redis.call('HINCRBY', KEYS[2], 'failed', 1) end
if not old or string.sub(old, 1, #ARGV[2] + 1) ~= ARGV[2] .. '|' then
  redis.call('HINCRBY', KEYS[2], 'p' .. ARGV[2] .. ':failed', 1)
end
redis.call('HSET', KEYS[4], ARGV[3], ARGV[2] .. '|' .. ARGV[4])
return 0
"#,
    )
});

/// Claims a target UID for a recovered or re-matched message, once.
/// KEYS: lease, claimed. ARGV: token, target uid. Returns 1 if claimed, 0 if taken, -1 if fenced.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('SADD', KEYS[2], ARGV[2])
"#,
    )
});

/// Extends a lease if the caller still holds it. KEYS: lease. ARGV: token, ttl ms.
pub(crate) static LEASE_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

/// Drops a lease if the caller still holds it. KEYS: lease. ARGV: token.
pub(crate) static LEASE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// Takes or refreshes one of `limit` permits (a semaphore whose entries expire).
/// KEYS: permit zset. ARGV: token, limit, ttl ms. Returns 1 if held, 0 if all are taken.
pub(crate) static PERMIT_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
local adapted = redis.call('HGET', KEYS[2], 'limit')
if adapted then limit = math.max(1, math.min(limit, math.floor(tonumber(adapted)))) end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
"#,
    )
});

/// Extends a held permit. KEYS: permit zset. ARGV: token, ttl ms. Returns 0 if it was lost.
pub(crate) static PERMIT_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"#,
    )
});

/// Gives every POP3 UIDL a numeric id, once: a UIDL seen before keeps its id, a new one
/// gets the next (ids only grow, like IMAP UIDs). KEYS: the UIDL hash. ARGV: UIDLs.
/// Returns the ids in ARGV order.
pub(crate) static ASSIGN_IDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for i = 1, #ARGV do
  local id = redis.call('HGET', KEYS[1], ARGV[i])
  if not id then
    id = redis.call('HINCRBY', KEYS[1], '', 1)
    redis.call('HSET', KEYS[1], ARGV[i], id)
  end
  out[i] = tonumber(id)
end
return out
"#,
    )
});

/// Adaptive concurrency (AIMD) of one permit semaphore. KEYS: the adaptive-limit hash.
/// ARGV: configured limit, `dec` or `inc`, increase step. Halves the limit on a throttle
/// signal (at most once a second, so one storm seen by many workers halves it once, not
/// once per worker), and grows it by step/limit per success, up to the configured limit.
/// Returns the new limit as a string (Lua numbers would be truncated).
pub(crate) static ADAPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'limit') or ARGV[1])
if ARGV[2] == 'dec' then
  local last = tonumber(redis.call('HGET', KEYS[1], 'dec') or '0')
  if now - last >= 1000 then
    cur = math.max(1, cur / 2)
    redis.call('HSET', KEYS[1], 'dec', now)
  end
else
  cur = math.min(max, cur + tonumber(ARGV[3]) / cur)
end
redis.call('HSET', KEYS[1], 'limit', tostring(cur))
redis.call('PEXPIRE', KEYS[1], 1800000)
return tostring(cur)
"#,
    )
});

/// Two token buckets (requests, bytes) of one target mailbox, taken together. KEYS: the
/// bucket hash. ARGV: request cost, byte cost, request capacity, requests per ms, byte
/// capacity, bytes per ms. Admits (and deducts) only if both hold enough; else returns
/// the milliseconds until they will, deducting nothing.
pub(crate) static BUDGET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rcap, rrate = tonumber(ARGV[3]), tonumber(ARGV[4])
local bcap, brate = tonumber(ARGV[5]), tonumber(ARGV[6])
local rc = math.min(tonumber(ARGV[1]), rcap)
local bc = math.min(tonumber(ARGV[2]), bcap)
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
local r = tonumber(redis.call('HGET', KEYS[1], 'r') or rcap)
local b = tonumber(redis.call('HGET', KEYS[1], 'b') or bcap)
local el = math.max(0, now - ts)
r = math.min(rcap, r + el * rrate)
b = math.min(bcap, b + el * brate)
local wait = 0
if r >= rc and b >= bc then
  r = r - rc
  b = b - bc
else
  wait = math.max((rc - r) / rrate, (bc - b) / brate)
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 'b', tostring(b), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(rcap / rrate, bcap / brate)) * 2 + 1000)
return math.ceil(wait)
"#,
    )
});
