namespace Polly.PriorityRouting.Redis;

/// <summary>What follows a reservation: a claim given back, a correction by the answer's report, a release.</summary>
internal static partial class ReservationScripts
{
    /// <summary>
    /// KEYS[1] the budget's key (its windows; a flow's spend, which a flow claim given back leaves); KEYS[2] its claims
    /// (<see cref="RedisStoreLayout.ClaimsKeyOf"/>); KEYS[3] its flow claims (<see cref="RedisStoreLayout.FlowClaimsKeyOf"/>);
    /// KEYS[4] a claimant's record (<see cref="RedisStoreLayout.ClaimantKeyOf"/>). Gives the claimant's claim back (its
    /// amounts leave the entry of the refill nearest the moment it was told, as <see cref="Reserve"/> redeems it, and
    /// the record goes): a claim made for a reservation nobody waited for. Returns 1 when one was given back, else 0;
    /// whatever a peer wrote into either key is dropped, never thrown on.
    /// </summary>
    public const string Unclaim = NearestRefill + """
        local claimsKey = KEYS[2]
        local flowKey = KEYS[3]
        local recordKey = KEYS[4]
        local kind = redis.call('TYPE', recordKey)['ok']
        if kind == 'none' then return 0 end
        local t, a, q
        if kind == 'string' and redis.call('STRLEN', recordKey) <= 64 then
          t, a, q = string.match(redis.call('GET', recordKey), '^(%d+):(%d+):(%d+)$')
        end
        redis.call('DEL', recordKey)
        if t == nil or #t > 16 then return 0 end
        -- A flow's claim: its amount, counted when it was claimed, leaves the flow's spend (no decay needed: it is linear).
        if redis.call('TYPE', flowKey)['ok'] == 'zset' and
            redis.call('ZREM', flowKey, string.format('%s:%d:%d', string.sub(recordKey, -16), tonumber(a), tonumber(q))) == 1 then
          if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
            local v = redis.call('HMGET', KEYS[1], 'tx', 'th', 'rx', 'rh')
            local function number(x)
              x = tonumber(x) or 0
              if x ~= x or x < 0 or x > 9007199254740991 then x = 0 end
              return x
            end
            -- Never more than the claims hold (a peer's record may name any amount).
            local ta, rq = math.min(tonumber(a), number(v[2])), math.min(tonumber(q), number(v[4]))
            local function less(x, by) return string.format('%.17g', math.max(0, number(x) - by)) end
            redis.call('HSET', KEYS[1], 'tx', less(v[1], ta), 'th', less(v[2], ta), 'rx', less(v[3], rq), 'rh', less(v[4], rq))
          end
          return 1
        end
        local ckind = redis.call('TYPE', claimsKey)['ok']
        if ckind ~= 'hash' then
          if ckind ~= 'none' then redis.call('DEL', claimsKey) end
          return 0
        end
        local BIG = 9007199254740991
        -- The entry of the refill nearest t (as Reserve's entryOf finds it).
        local windows = {}
        if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then windows = redis.call('HMGET', KEYS[1], 'tw', 'rw') end
        local half = halfWindow(tonumber(a), tonumber(q), tonumber(windows[1]) or 0, tonumber(windows[2]) or 0)
        local entries, fields = {}, {}
        if redis.call('HLEN', claimsKey) <= 16 then
          local raw = redis.call('HGETALL', claimsKey)
          for i = 1, #raw, 2 do
            local m = raw[i]
            local mt = #m <= 16 and string.match(m, '^%d+$') and tonumber(m)
            if mt then
              entries[#entries + 1] = mt
              fields[mt] = m
            end
          end
        end
        local entry = nearestEntry(entries, tonumber(t), half)
        if entry == nil then return 0 end
        t = fields[entry]
        local amounts = redis.call('HGET', claimsKey, t)
        local ca, cq
        local cl
        if amounts and #amounts <= 60 then ca, cq, cl = string.match(amounts, '^(%d+):(%d+)(:?%d*)$') end
        if ca == nil then
          redis.call('HDEL', claimsKey, t)
          return 0
        end
        ca = math.min(BIG, math.max(0, tonumber(ca) - tonumber(a)))
        cq = math.min(BIG, math.max(0, tonumber(cq) - tonumber(q)))
        if ca == 0 and cq == 0 then
          redis.call('HDEL', claimsKey, t)
        else
          redis.call('HSET', claimsKey, t, string.format('%d:%d', ca, cq) .. cl)
        end
        return 1
        """;

    /// <summary>
    /// KEYS[1] the budget's key; ARGV[1] the reservation's n; ARGV[2] its c; ARGV[3] the history; ARGV[4] the longest
    /// window; ARGV[5] how far apart two resets may be and describe one window (milliseconds); then per budget (tokens at
    /// 6, requests at 10): remaining (−1 unknown), limit (−1 unknown), milliseconds from now until the reset, the reset
    /// delay as reported. Returns 1.
    /// </summary>
    public const string Correct = Prelude + """
        local sameWindow = num(ARGV[5], 0, maxWindow, 0)
        local function correct(b, at, since, count, sequence)
          local remaining = num(ARGV[at], -1, BIG, -1)
          local limit = num(ARGV[at + 1], -1, BIG, -1)
          local resetIn = num(ARGV[at + 2], -BIG, BIG, 0)
          local reported = num(ARGV[at + 3], 0, maxWindow, 0)
          if remaining < 0 then return end
          if limit >= 0 then b.l = limit end
          if reported > b.w then b.w = reported end
          if b.l < 0 or resetIn <= 0 or resetIn > maxWindow then return end
          local resetAt = now + resetIn
          local reserved = math.max(0, b.l - remaining) + since
          -- A reported full moment (not one the counter rolled to) that a report moves by less than a window.
          if b.s > b.m and resetAt > b.e + sameWindow and resetAt < b.e + b.w - sameWindow then b.k = 1 end
          if b.k == 1 and remaining < b.l and reported > 0 then
            -- A continuous refill with a rate: a flow (FlowReserve). What the backend lacked when it answered comes back
            -- at lacked / reset; what was reserved since and what claims hold are spent on top. An older report than
            -- the one that set it changes nothing.
            if sequence > b.o then
              local lacked = b.l - remaining
              b.z = lacked / reported
              b.x = math.max(0, lacked - b.z * math.max(0, now - (resetAt - reported))) + since + b.h
              b.y = now
              b.o = sequence
            end
          end
          if b.e == 0 or resetAt > b.e + sameWindow then
            b.e = resetAt
            b.v = reserved
            b.s = count
            b.g = 0
            -- The count is the report's now: a reservation made before it is in the report, or not counted at all.
            b.p = count
          elseif resetAt >= b.e - sameWindow then
            -- One window's later moment: an older answer names a sooner one (a continuous refill's), never the refill.
            if resetAt >= b.e then b.s = count b.g = 0 b.e = resetAt end
            if reserved > b.v then
              b.v = reserved
              -- Raised, the count is the report's too: releases of reservations made before it are void as above.
              b.p = count
            end
          end
        end
        local reservedC = num(ARGV[2], 0, BIG, c)
        local reservedN = num(ARGV[1], 0, BIG, n)
        correct(T, 6, math.max(0, c - reservedC), reservedC, reservedN)
        correct(R, 10, math.max(0, n - reservedN), reservedN, reservedN)
        save()
        return 1
        """;

    /// <summary>
    /// KEYS[1] the budget's key; ARGV[1] the reservation's n; ARGV[2] its c; ARGV[3] the history; ARGV[4] the longest
    /// window; ARGV[5] its cost. Returns 1 when something was given back, else 0.
    /// </summary>
    public const string Release = Prelude + """
        if redis.call('EXISTS', key) == 0 then return 0 end
        local sequence = num(ARGV[1], 1, BIG, 0)
        local offset = num(ARGV[2], 0, BIG, 0)
        local cost = num(ARGV[5], 0, BIG, 0)
        local released = 0
        -- Given back after the report that named a full moment: not counted again there (g, until another report names one).
        if sequence > 0 and offset - cost >= T.p then
          T.v = math.max(0, T.v - cost)
          if offset - cost >= T.s then T.g = T.g + cost end
          released = 1
        end
        if sequence > 0 and sequence - 1 >= R.p then
          R.v = math.max(0, R.v - 1)
          if sequence - 1 >= R.s then R.g = R.g + 1 end
          released = 1
        end
        -- A flow gives back what was reserved after the report that set it (FlowReserve).
        if flowing(T) and sequence > 0 and sequence - 1 >= T.o then
          T.x = math.max(0, T.x - cost)
          released = 1
        end
        if flowing(R) and sequence > 0 and sequence - 1 >= R.o then
          R.x = math.max(0, R.x - 1)
          released = 1
        end
        save()
        return released
        """;
}
