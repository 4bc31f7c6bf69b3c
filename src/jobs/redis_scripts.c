/*
 * The Redis job's Lua scripts. Each runs alone and sees one state, so a step that reads and
 * then writes (a custom_id taken once, a result kept once, tokens leased) cannot interleave
 * with another worker's. Every script but the rate's checks the job's token first: when the
 * job's state has gone (Redis came back empty) it answers NOJOB and changes nothing.
 */
#include "redis_internal.h"

/* KEYS meta, stream; ARGV create (0/1), new token, group. The job's token, or nil. */
static const char create_lua[] =
    "local t = redis.call('HGET', KEYS[1], 'token')\n"
    "if t then return t end\n"
    "if ARGV[1] ~= '1' then return false end\n"
    "redis.call('HSET', KEYS[1], 'token', ARGV[2], 'cursor', 0, 'load_done', 0,\n"
    "           'canceled', 0, 'failed', 0)\n"
    "redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[3], '0', 'MKSTREAM')\n"
    "return ARGV[2]\n";

/*
 * KEYS meta, ids, stream, done, out; ARGV token, cursor (or "done"), then per line: kind
 * ("r" a request, "b" a bad line's record), custom_id, line number, the line or record.
 * A custom_id is taken once (one HMGET and one HSET of ids for the chunk); a request goes
 * to the stream, a record straight to the results. Chunks come in order, one at a time,
 * so the cursor only grows. Returns how many were new.
 */
static const char load_lua[] =
    "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then\n"
    "  return redis.error_reply('NOJOB the job is gone') end\n"
    "if ARGV[2] == 'done' then redis.call('HSET', KEYS[1], 'load_done', 1) return 0 end\n"
    "local cids = {}\n"
    "for i = 3, #ARGV, 4 do cids[#cids+1] = ARGV[i+1] end\n"
    "local added, fields, ids, seen = 0, {}, {}, {}\n"
    "local have = #cids > 0 and redis.call('HMGET', KEYS[2], unpack(cids)) or {}\n"
    "for k = 1, #cids do\n"
    "  local i = 3 + (k - 1) * 4\n"
    "  local cid, n, p = ARGV[i+1], ARGV[i+2], ARGV[i+3]\n"
    "  if not have[k] and not seen[cid] then\n"
    "    seen[cid] = true\n"
    "    added = added + 1\n"
    "    ids[#ids+1] = cid; ids[#ids+1] = n\n"
    "    if ARGV[i] == 'r' then\n"
    "      redis.call('XADD', KEYS[3], '*', 'c', cid, 'n', n, 'l', p)\n"
    "    else\n"
    "      fields[#fields+1] = cid; fields[#fields+1] = '1' .. p\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #ids > 0 then redis.call('HSET', KEYS[2], unpack(ids)) end\n"
    "if #fields > 0 then\n"
    "  local done = {}\n"
    "  for k = 1, #fields, 2 do done[#done+1] = fields[k]; done[#done+1] = '1' end\n"
    "  redis.call('HSET', KEYS[4], unpack(done))\n"
    "  redis.call('XADD', KEYS[5], '*', unpack(fields))\n"
    "  redis.call('HINCRBY', KEYS[1], 'failed', #fields / 2)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'cursor', ARGV[2])\n"
    "return added\n";

/*
 * KEYS meta, stream, done, out; ARGV token, group, then per result: custom_id, flag ("0"
 * ok, "1" failed), record line, stream entry id ("" for none). The first result of a
 * custom_id is kept (done) and published (one entry on out for the batch); every entry is
 * acknowledged. Returns how many were kept.
 */
static const char accept_lua[] =
    "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then\n"
    "  return redis.error_reply('NOJOB the job is gone') end\n"
    "local cids, acks = {}, {}\n"
    "for i = 3, #ARGV, 4 do\n"
    "  cids[#cids+1] = ARGV[i]\n"
    "  if ARGV[i+3] ~= '' then acks[#acks+1] = ARGV[i+3] end\n"
    "end\n"
    "if #cids == 0 then return 0 end\n"
    "local have = redis.call('HMGET', KEYS[3], unpack(cids))\n"
    "local seen, done, fields, failed = {}, {}, {}, 0\n"
    "for k = 1, #cids do\n"
    "  local i, cid = 3 + (k - 1) * 4, cids[k]\n"
    "  if not have[k] and not seen[cid] then\n"
    "    seen[cid] = true\n"
    "    done[#done+1] = cid; done[#done+1] = ARGV[i+1]\n"
    "    fields[#fields+1] = cid; fields[#fields+1] = ARGV[i+1] .. ARGV[i+2]\n"
    "    if ARGV[i+1] == '1' then failed = failed + 1 end\n"
    "  end\n"
    "end\n"
    "if #done > 0 then\n"
    "  redis.call('HSET', KEYS[3], unpack(done))\n"
    "  redis.call('XADD', KEYS[4], '*', unpack(fields))\n"
    "  if failed > 0 then redis.call('HINCRBY', KEYS[1], 'failed', failed) end\n"
    "end\n"
    "if #acks > 0 then redis.call('XACK', KEYS[2], ARGV[2], unpack(acks)) end\n"
    "return #done / 2\n";

/*
 * The shared rate limit: a token bucket per deployment in one hash (KEYS rate), refilled
 * at rpm/60000 a millisecond, holding at most a fifth of a second's worth. ARGV deployment,
 * op, value. "lease": up to value tokens; returns {granted, ms until the next token, rpm}
 * (rpm "0": no limit known, all granted). "done": value more requests answered, counted in
 * windows of 5 s: the rate the deployment really serves. "refused": a 429 somewhere: the
 * rate becomes 95% of the rate served (which, while refusals come, is the provider's
 * limit), at most once in 5 s, so that the shared bucket, not the provider, is what holds
 * the workers back (their own limiters then see no 429s to fight over). Not while the rate served
 * is well below the shared rate: those 429s are retries and bursts, which the workers' own
 * limiters pace, and cutting for them would ratchet the rate down. With nothing served
 * yet (the first second) the workers' own limiters act alone. "set": the ceiling (--rpm), and
 * the rate when that is higher or unset. Every 5 s without a 429 the rate climbs 5% (up to
 * the ceiling when there is one), while the workers use it all: the limit is probed again,
 * as the one-process limiter does.
 */
static const char rate_lua[] =
    "local d, op, v = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local f = {d..':rpm', d..':tokens', d..':ts', d..':cut', d..':max', d..':win',\n"
    "           d..':count', d..':served'}\n"
    "local h = redis.call('HMGET', KEYS[1], unpack(f))\n"
    "local rpm, tok = tonumber(h[1] or '0'), tonumber(h[2] or '0')\n"
    "local ts, cut, max = tonumber(h[3] or now), tonumber(h[4] or '0'), tonumber(h[5] or '0')\n"
    "local win, count = tonumber(h[6] or now), tonumber(h[7] or '0')\n"
    "local served = tonumber(h[8] or '0')\n"
    "if op == 'set' then\n"
    "  if rpm == 0 or rpm > v then rpm = v end\n"
    "  redis.call('HSET', KEYS[1], f[1], rpm, f[5], v, f[3], now)\n"
    "  return {0, 0, tostring(rpm)}\n"
    "end\n"
    "if op == 'done' then\n"
    "  if now - win >= 5000 then\n"
    "    served = count * 60000 / (now - win); win = now; count = 0\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], f[6], win, f[7], count + v, f[8], served)\n"
    "  return {0, 0, tostring(rpm)}\n"
    "end\n"
    "if op == 'refused' then\n"
    "  if now - cut < 5000 then return {0, 0, tostring(rpm)} end\n"
    "  local base = served\n"
    "  if now - win >= 2000 then base = math.max(base, count * 60000 / (now - win)) end\n"
    "  if base == 0 then return {0, 0, tostring(rpm)} end\n"
    "  if rpm > 0 and base < 0.8 * rpm then return {0, 0, tostring(rpm)} end\n"
    "  rpm = math.max(1, base * 0.95)\n"
    "  redis.call('HSET', KEYS[1], f[1], rpm, f[4], now, f[2], 0, f[3], now)\n"
    "  return {0, 0, tostring(rpm)}\n"
    "end\n"
    "if rpm == 0 then return {v, 0, '0'} end\n"
    "if now - cut > 5000 and (max == 0 or rpm < max) and served >= 0.9 * rpm then\n"
    "  rpm = rpm * 1.05\n"
    "  if max > 0 then rpm = math.min(max, rpm) end\n"
    "  cut = now\n"
    "  redis.call('HSET', KEYS[1], f[1], rpm, f[4], cut)\n"
    "end\n"
    "local burst = math.max(1, rpm / 300)\n"
    "tok = math.min(burst, tok + (now - ts) * rpm / 60000)\n"
    "local g = math.min(v, math.floor(tok))\n"
    "tok = tok - g\n"
    "redis.call('HSET', KEYS[1], f[2], tostring(tok), f[3], now)\n"
    "local wait = 0\n"
    "if tok < 1 then wait = math.ceil((1 - tok) * 60000 / rpm) end\n"
    "return {g, wait, tostring(rpm)}\n";

const char *const sky__redis_scripts[SKY__RS_COUNT] = {create_lua, load_lua, accept_lua, rate_lua};
