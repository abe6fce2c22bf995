//! Lua scripts that make multi-key ledger updates atomic and fenced.
//!
//! Every script that records progress first runs the fence (see [`FENCE`]): the
//! caller's fencing token must still be the lease's value, or the lease must have merely
//! expired with nobody taking it since (then it is taken again), and the ledger must be
//! the one the task was planned against. Otherwise the script returns a negative code
//! and changes nothing.

use redis::Script;
use std::sync::LazyLock;

/// How long the record of a lease's last taker outlives the lease (ms): a worker frozen
/// for longer than this finds its lease as if the ledger had been emptied, and stops.
pub(crate) const OWNER_TTL_MS: u64 = 24 * 3600 * 1000;

/// The fence every progress-recording script starts with.
/// KEYS[1..3]: lease, lease owner, mailbox stats (which hold the ledger epoch).
/// ARGV[1..3]: token, lease ttl ms, ledger epoch ('' = not checked).
/// Returns 0 (the lease is ours), 1 (it had expired and nobody took it since: taken
/// again), -1 (a newer worker holds it now), -2 (the ledger's epoch is not the task's:
/// it was emptied or replaced), -3 (a newer worker took it and no longer holds it).
const FENCE: &str = r#"
local function fence()
  local cur = redis.call('GET', KEYS[1])
  if cur == ARGV[1] then return 0 end
  if cur then return -1 end
  if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], 'epoch') ~= ARGV[3] then return -2 end
  local owner = redis.call('GET', KEYS[2])
  if owner and owner ~= ARGV[1] then return -3 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1], 'PX', OWNER_TTL)
  return 1
end
"#;

fn fenced(body: &str) -> Script {
    let fence = FENCE.replace("OWNER_TTL", &OWNER_TTL_MS.to_string());
    Script::new(&format!(
        "{fence}\nlocal f = fence()\nif f < 0 then return f end\n{body}"
    ))
}

/// Takes a free lease. KEYS: lease, owner, stats. ARGV: token, ttl ms, epoch.
/// Returns 1 (taken), 0 (another worker holds it), -2 (the ledger's epoch is not the
/// task's).
pub(crate) static LEASE_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], 'epoch') ~= ARGV[3] then return -2 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', {OWNER_TTL_MS})
  return 1
end
return 0
"#
    ))
});

/// Records a batch of landed messages.
/// KEYS: lease, owner, stats, pending, failures, bucket index, then one record-bucket
/// key per entry. ARGV: token, ttl, epoch, pass, then per entry: uid, encoded record,
/// size, bucket. Returns how many records were new (or the fence's refusal).
pub(crate) static RECORD: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r#"
local pass = ARGV[4]
local added = 0
local n = (#ARGV - 4) / 4
for i = 0, n - 1 do
  local uid = ARGV[5 + i * 4]
  local size = tonumber(ARGV[7 + i * 4])
  if redis.call('HSETNX', KEYS[7 + i], uid, ARGV[6 + i * 4]) == 1 then
    added = added + 1
    redis.call('SADD', KEYS[6], ARGV[8 + i * 4])
    redis.call('HINCRBY', KEYS[3], 'msgs', 1)
    redis.call('HINCRBY', KEYS[3], 'bytes', size)
    redis.call('HINCRBY', KEYS[3], 'p' .. pass .. ':msgs', 1)
    redis.call('HINCRBY', KEYS[3], 'p' .. pass .. ':bytes', size)
  end
  redis.call('SREM', KEYS[4], uid)
  if redis.call('HDEL', KEYS[5], uid) == 1 then
    redis.call('HINCRBY', KEYS[3], 'failed', -1)
  end
end
return added
"#,
    )
});

/// Marks UIDs as in flight before they are sent to the target.
/// KEYS: lease, owner, stats, pending. ARGV: token, ttl, epoch, uids...
pub(crate) static MARK_PENDING: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r#"
for i = 4, #ARGV do redis.call('SADD', KEYS[4], ARGV[i]) end
return 0
"#,
    )
});

/// The body shared by the two failure scripts: records UID `uid` as failed in `pass`
/// with `reason`, stored as `<pass>|<reason>` so a failure counts once in total and once
/// in each pass that tried it (a redelivered slice of the same pass does not count it
/// again). `keep` keeps the words of a reason recorded before (the message's own words
/// outrank its task's). Uses KEYS stats (`st`), pending (`pe`), failures (`fa`).
const FAIL_ONE: &str = r#"
local function fail_one(st, pe, fa, pass, uid, reason, keep)
  if pe then redis.call('SREM', pe, uid) end
  local old = redis.call('HGET', fa, uid)
  if not old then redis.call('HINCRBY', st, 'failed', 1) end
  local this_pass = old and string.sub(old, 1, #pass + 1) == pass .. '|'
  if not this_pass then redis.call('HINCRBY', st, 'p' .. pass .. ':failed', 1) end
  if keep and old then
    local bar = string.find(old, '|', 1, true)
    if bar then reason = string.sub(old, bar + 1) end
  end
  redis.call('HSET', fa, uid, pass .. '|' .. reason)
end
"#;

/// Records a message that failed, with its reason.
/// KEYS: lease, owner, stats, pending, failures. ARGV: token, ttl, epoch, pass, uid, reason.
pub(crate) static FAIL: LazyLock<Script> = LazyLock::new(|| {
    fenced(&format!(
        "{FAIL_ONE}\nfail_one(KEYS[3], KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6], false)\nreturn 0\n"
    ))
});

/// Records as failed every UID given that has no record, for a task that gave up for
/// good (not fenced: it writes only where no record is, and a record written later
/// clears the failure). KEYS: stats, failures, then one record-bucket key per UID.
/// ARGV: epoch, pass, reason, then the UIDs. Returns how many were marked, -2 when the
/// ledger's epoch is not the task's.
pub(crate) static FAIL_UNRECORDED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{FAIL_ONE}
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return -2 end
local n = 0
for i = 4, #ARGV do
  if redis.call('HEXISTS', KEYS[i - 1], ARGV[i]) == 0 then
    fail_one(KEYS[1], false, KEYS[2], ARGV[2], ARGV[i], ARGV[3], true)
    n = n + 1
  end
end
return n
"#
    ))
});

/// Claims a target copy for a recovered or re-matched message, once. A claim retried
/// after a lost reply finds its own token and is granted again.
/// KEYS: lease, owner, stats, claimed, claimers. ARGV: token, ttl, epoch, target.
/// Returns 1 if claimed by us, 0 if taken by another (or the fence's refusal).
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r#"
if redis.call('SADD', KEYS[4], ARGV[4]) == 1 then
  redis.call('HSET', KEYS[5], ARGV[4], ARGV[1])
  return 1
end
if redis.call('HGET', KEYS[5], ARGV[4]) == ARGV[1] then return 1 end
return 0
"#,
    )
});

/// Extends a lease the caller holds, or takes it again if it merely expired.
/// KEYS: lease, owner, stats. ARGV: token, ttl ms, epoch. Returns the fence's answer.
pub(crate) static LEASE_RENEW: LazyLock<Script> = LazyLock::new(|| {
    fenced(
        r#"
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return f
"#,
    )
});

/// Drops a lease if the caller still holds it (its owner record stays: it tells a later
/// expiry from a takeover). KEYS: lease. ARGV: token.
pub(crate) static LEASE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// Marks a task finished for its mailbox, once. KEYS: stats, the mailbox's done set.
/// ARGV: epoch, pass, task id. Returns 1 (newly done), 0 (done before), -2 (the
/// ledger's epoch is not the task's).
pub(crate) static TASK_DONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return -2 end
if redis.call('SADD', KEYS[2], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'p' .. ARGV[2] .. ':tasks_done', 1)
  return 1
end
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
