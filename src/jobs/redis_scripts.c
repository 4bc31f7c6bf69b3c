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
 * KEYS meta, ids, stream, done, out; ARGV token, cursor ("N", or "N:done" for the last
 * chunk, or "done" alone), then per line: kind
 * ("r" a request, "b" a bad line's record), custom_id, line number, the line or record.
 * A custom_id is taken once (one HMGET and one HSET of ids for the chunk); a request goes
 * to the stream, a record straight to the results. Chunks come in order, one at a time,
 * so the cursor only grows. Returns how many were new.
 */
static const char load_lua[] =
    "if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then\n"
    "  return redis.error_reply('NOJOB the job is gone') end\n"
    "if ARGV[2] == 'done' then redis.call('HSET', KEYS[1], 'load_done', 1) return 0 end\n"
    "local cursor = string.match(ARGV[2], '^(%d+):done$')\n"
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
    "if cursor then redis.call('HSET', KEYS[1], 'cursor', cursor, 'load_done', 1)\n"
    "else redis.call('HSET', KEYS[1], 'cursor', ARGV[2]) end\n"
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
 * op, value, then for "lease" ok and refused: the 2xx replies and the 429s the worker has
 * had since its last lease. Every attempt of every worker takes a token (the pipeline asks
 * before each, retries too), so the bucket, not the provider, holds the workers back.
 * "lease": up to value tokens; returns {granted, ms until the next token, rpm} (rpm "0": no
 * limit known, all granted). The oks are counted in windows of a second: the rate the
 * deployment serves. The rate is learned as the one-process limiter learns it (BIC): a
 * 429 takes it to 85% of the rate served then (the limit, while the provider refuses), or
 * 93% when that is the limit met last time, which is then held (at most 97% of it) for
 * 10 s; at most once in 2 s, and not while the rate served is well below the shared rate
 * (stray refusals of a burst already sent). Each second in which the workers use it all,
 * the rate closes half the gap to that limit (at least 5% of it), and past it probes 5%
 * higher. Until a first limit is known only whole windows count (the first replies of a
 * burst would say far too little): the first 429 starts at 600 RPM, doubling each second
 * while all of it is used (slow start), or going to 80% of a whole window's rate served
 * when that is more (the limit is taken to be that rate), until a 429 comes once a whole
 * window's rate served is known (at once, without the 2 s).
 * "set": the ceiling (--rpm), which becomes the limit met and the rate.
 * The shared start: while no limit is known, for a second from the first lease (or until a
 * first 429 sets a rate), the workers together get one process's start, not one each: a
 * shared window of 32 attempts whose replies have not been reported yet, growing by one a
 * success (slow start); the answer's rpm is then "-1" (count the tokens, ask again after
 * the ms given when none came). After that second, or once 128 successes are in with no
 * 429 (more than two of a fixed second's windows could pass below 64 a second), "0":
 * unpaced, each process's own slow start as before.
 */
static const char rate_lua[] =
    "local d, op, v = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local ok, refused = tonumber(ARGV[4] or '0'), tonumber(ARGV[5] or '0')\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local f = {d..':rpm', d..':tokens', d..':ts', d..':cut', d..':max', d..':win',\n"
    "           d..':count', d..':served', d..':slow', d..':wmax', d..':hold', d..':inc',\n"
    "           d..':st', d..':sout', d..':swin'}\n"
    "local h = redis.call('HMGET', KEYS[1], unpack(f))\n"
    "local rpm, tok = tonumber(h[1] or '0'), tonumber(h[2] or '0')\n"
    "local ts, cut, max = tonumber(h[3] or now), tonumber(h[4] or '0'), tonumber(h[5] or '0')\n"
    "local win, count = tonumber(h[6] or now), tonumber(h[7] or '0')\n"
    "local served, slow = tonumber(h[8] or '0'), h[9] == '1'\n"
    "local wmax, hold, inc = tonumber(h[10] or '0'), tonumber(h[11] or '0'), tonumber(h[12] or "
    "'0')\n"
    "local st, sout = tonumber(h[13] or now), tonumber(h[14] or '0')\n"
    "local swin = tonumber(h[15] or '32')\n"
    "if op == 'set' then\n"
    "  if rpm == 0 or rpm > v then rpm = v end\n"
    "  redis.call('HSET', KEYS[1], f[1], rpm, f[5], v, f[3], now, f[9], 0, f[10], v,\n"
    "             f[11], now + 10000)\n"
    "  return {0, 0, tostring(rpm)}\n"
    "end\n"
    "if now - win >= 1000 then\n"
    "  served = count * 60000 / (now - win); win = now; count = 0\n"
    "end\n"
    "count = count + ok\n"
    "local base = math.max(served, count * 60000 / math.max(now - win, 1000))\n"
    "if rpm == 0 or slow then base = served end\n"
    "if refused > 0 and (slow or now - cut >= 2000) then\n"
    "  if base > 0 and (rpm == 0 or slow or base >= 0.8 * rpm) then\n"
    "    local factor = 0.85\n"
    "    if wmax > 0 and math.abs(base - wmax) <= 0.1 * wmax then\n"
    "      factor = 0.93; hold = now + 10000\n"
    "    end\n"
    "    wmax = base; rpm = math.max(1, base * factor); slow = false\n"
    "    cut = now; tok = 0; ts = now\n"
    "  elseif rpm == 0 then\n"
    "    rpm = 600; slow = true; cut = now; tok = 0; ts = now\n"
    "  end\n"
    "elseif rpm > 0 and (max == 0 or rpm < max) and served >= 0.9 * rpm and\n"
    "       now - cut >= 1000 and now - inc >= 1000 then\n"
    "  if slow and served > 2 * rpm then\n"
    "    wmax = served; rpm = 0.8 * served; slow = false\n"
    "  elseif slow or wmax == 0 then\n"
    "    rpm = rpm * 2\n"
    "  else\n"
    "    local r = rpm + math.max((wmax - rpm) / 2, 0.05 * wmax)\n"
    "    if now < hold and r > 0.97 * wmax then r = math.max(rpm, 0.97 * wmax) end\n"
    "    rpm = r\n"
    "  end\n"
    "  if max > 0 then rpm = math.min(max, rpm) end\n"
    "  inc = now\n"
    "end\n"
    "local g, wait, said = v, 0, tostring(rpm)\n"
    "if rpm > 0 then\n"
    "  tok = math.min(math.max(1, rpm / 300), tok + (now - ts) * rpm / 60000)\n"
    "  g = math.min(v, math.floor(tok))\n"
    "  tok = tok - g\n"
    "  if tok < 1 then wait = math.ceil((1 - tok) * 60000 / rpm) end\n"
    "elseif now - st < 1000 and swin < 160 then\n"
    "  sout = math.max(0, sout - ok - refused); swin = swin + ok\n"
    "  g = math.max(0, math.min(v, swin - sout)); sout = sout + g\n"
    "  if g == 0 then wait = 20 end\n"
    "  said = '-1'\n"
    "end\n"
    "redis.call('HSET', KEYS[1], f[1], rpm, f[2], tostring(tok), f[3], now, f[4], cut,\n"
    "           f[6], win, f[7], count, f[8], served, f[9], slow and 1 or 0, f[10], wmax,\n"
    "           f[11], hold, f[12], inc, f[13], st, f[14], sout, f[15], swin)\n"
    "return {g, wait, said}\n";

const char *const sky__redis_scripts[SKY__RS_COUNT] = {create_lua, load_lua, accept_lua, rate_lua};
