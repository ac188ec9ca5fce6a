namespace Polly.PriorityRouting.Redis;

/// <summary>The fragments every script shares: reading and rolling a budget, saving it, the flow's arithmetic, the nearest-refill rule of claims.</summary>
internal static partial class ReservationScripts
{
    /// <summary>
    /// The nearest-refill rule of claims, one owner for <see cref="Reserve"/> and <see cref="Unclaim"/>: two claim moments
    /// belong to one refill when nearer than half the window of each budget the claim holds room of (the smaller when
    /// both do; with no such window known, only the very moment), and a claim's entry is the nearest such moment.
    /// </summary>
    private const string NearestRefill = """
        local function halfWindow(a, q, tw, rw)
          local half = 9007199254740991
          if a > 0 and tw > 0 then half = math.min(half, tw / 2) end
          if q > 0 and rw > 0 then half = math.min(half, rw / 2) end
          if half == 9007199254740991 then half = 0 end
          return half
        end
        local function nearestEntry(entries, t, half)
          local entry, distance = nil, nil
          for _, m in ipairs(entries) do
            local d = math.abs(m - t)
            if (d < half or d == 0) and (distance == nil or d < distance) then entry, distance = m, d end
          end
          return entry
        end

        """;

    /// <summary>Reads the key (healing what is not a hash), rolls both budgets to now, and defines <c>save</c>.</summary>
    private const string Prelude = """
        local key = KEYS[1]
        local BIG = 9007199254740991
        local history = tonumber(ARGV[3]) or 0
        local maxWindow = tonumber(ARGV[4]) or 0
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        local kind = redis.call('TYPE', key)['ok']
        if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', key) end
        local SLICE = 1000
        local f = redis.call('HMGET', key, 'tl', 'tv', 'te', 'tw', 'tm', 'rl', 'rv', 're', 'rw', 'rm', 'n', 'c', 'tk', 'ts', 'rk', 'rs',
          'tfq', 'tfe', 'tfp', 'tfk', 'rfq', 'rfe', 'rfp', 'rfk', 'tp', 'rp', 'tg', 'rg',
          'tx', 'ty', 'tz', 'to', 'th', 'rx', 'ry', 'rz', 'ro', 'rh')
        local function num(v, lo, hi, default)
          local x = tonumber(v)
          if x == nil or x ~= x or x < lo or x > hi then return default end
          return math.floor(x)
        end
        local n = num(f[11], 0, BIG, 0)
        local c = num(f[12], 0, BIG, 0)
        -- A budget refilled continuously, as a flow (FlowState): spent x as of y, rate z per millisecond, the running
        -- count o of the reservation whose report set x, and h what its claims not yet redeemed hold (counted in x).
        local g2 = { unpack(f, 29, 38) }
        -- Written back only for a budget that has had a flow (most keys never do: a budget refilled in windows).
        local hadFlow = false
        for i = 1, 10 do
          if g2[i] then hadFlow = true end
        end
        local function real(v, lo, hi, default)
          local x = tonumber(v)
          if x == nil or x ~= x or x < lo or x > hi then return default end
          return x
        end
        local function budget(i, j, d, q, count, g, fi)
          local b = { l = num(f[i], -1, BIG, -1), v = num(f[i + 1], 0, BIG, 0), e = num(f[i + 2], 0, BIG, 0),
                      w = num(f[i + 3], 0, maxWindow, 0), m = num(f[i + 4], 0, BIG, 0), k = num(f[j], 0, 1, 0),
                      s = num(f[j + 1], 0, count, 0), fq = num(f[d], 0, BIG, 0), fe = num(f[d + 1], 0, BIG, 0),
                      fp = num(f[d + 2], 0, BIG, 0), fk = num(f[d + 3], 0, BIG, 0), p = num(f[q], 0, count, 0), g = num(f[g], 0, BIG, 0),
                      x = real(g2[fi], 0, BIG, 0), y = num(g2[fi + 1], 0, BIG, 0), z = real(g2[fi + 2], 0, BIG, 0),
                      o = num(g2[fi + 3], 0, n, 0), h = num(g2[fi + 4], 0, BIG, 0) }
          -- A rate is lacked / reset, a reset never longer than the longest window: anything slower is a peer's garbage.
          if b.z < 1 / math.max(1, maxWindow) then b.z = 0 end
          if b.fe > now + SLICE then b.fe = 0 b.fq = 0 end
          if b.e > now + maxWindow or b.m > count then b.e = 0 b.v = 0 b.m = 0 b.s = 0 b.p = 0 b.g = 0 end
          -- ForegroundDemand.Spend's bound: a window never spends more than the limit (whatever a peer or a request too large wrote).
          if b.l >= 0 then b.fq = math.min(b.fq, b.l) b.fp = math.min(b.fp, b.l) b.fk = math.min(b.fk, b.l) end
          if b.e > 0 and now >= b.e then
            if b.k == 1 and b.s > b.m and now < b.e + b.w then
              -- A continuous refill's full moment: what was reserved after the report that named it is still spent,
              -- less what was given back since.
              b.v = math.max(0, count - b.s - b.g)
              b.m = b.s
            else
              b.v = 0
              b.m = count
            end
            b.p = b.m
            b.g = 0
            local windows = 1
            if b.w > 0 then
              windows = math.floor((now - b.e) / b.w) + 1
              b.e = b.e + windows * b.w
            else
              b.e = 0
            end
            -- ForegroundDemand.EndWindows: the window's peak, or the recent one halved; halved per further window. The next
            -- spend starts a slice.
            b.fk = math.floor(math.max(b.fp, math.floor(b.fk / 2)) / 2 ^ math.min(windows - 1, 63))
            b.fp = 0
            b.fq = 0
            b.fe = 0
          end
          return b
        end
        local T = budget(1, 13, 17, 25, c, 27, 1)
        local R = budget(6, 15, 21, 26, n, 28, 6)
        local function real17(x) return string.format('%.17g', x) end
        -- A flow: learned continuous with a rate (a report gave it), and a known limit.
        local function flowing(b) return b.k == 1 and b.z > 0 and b.l >= 0 end
        -- Brings a flow's spend forward to now: what came back since is free.
        local function decay(b)
          -- A moment ahead of this server's clock (a peer's, or a primary behind after a failover) is now.
          if b.y > now then b.y = now end
          if now > b.y then
            b.x = math.max(0, b.x - b.z * (now - b.y))
            b.y = now
          end
        end
        -- ForegroundDemand.Spend: a granted foreground request counts towards its budget's recent peak.
        local function spend(b, amount)
          if now >= b.fe then
            b.fe = now + SLICE
            b.fq = 0
          end
          b.fq = b.fq + amount
          if b.l >= 0 and b.fq > b.l then b.fq = b.l end
          if b.fq > b.fp then b.fp = b.fq end
        end
        -- A granted request: the running counts, and a foreground one (headroom 0) the foreground's peak.
        local function admit(cost, headroom)
          if headroom == 0 then
            spend(T, cost)
            spend(R, 1)
          end
          n = n + 1
          c = c + cost
        end
        local function save()
          local d = function(x) return string.format('%d', x) end
          redis.call('HSET', key, 'tl', d(T.l), 'tv', d(T.v), 'te', d(T.e), 'tw', d(T.w), 'tm', d(T.m),
            'rl', d(R.l), 'rv', d(R.v), 're', d(R.e), 'rw', d(R.w), 'rm', d(R.m), 'n', d(n), 'c', d(c),
            'tk', d(T.k), 'ts', d(T.s), 'rk', d(R.k), 'rs', d(R.s),
            'tfq', d(T.fq), 'tfe', d(T.fe), 'tfp', d(T.fp), 'tfk', d(T.fk), 'rfq', d(R.fq), 'rfe', d(R.fe), 'rfp', d(R.fp), 'rfk', d(R.fk),
            'tp', d(T.p), 'rp', d(R.p), 'tg', d(T.g), 'rg', d(R.g))
          if hadFlow or T.z > 0 or R.z > 0 or T.x > 0 or R.x > 0 or T.h > 0 or R.h > 0 then
            redis.call('HSET', key, 'tx', real17(T.x), 'ty', d(T.y), 'tz', real17(T.z), 'to', d(T.o), 'th', d(T.h),
              'rx', real17(R.x), 'ry', d(R.y), 'rz', real17(R.z), 'ro', d(R.o), 'rh', d(R.h))
          end
          local ends = math.max(T.e, R.e)
          local ttl = history + math.max(T.w, R.w)
          if ends > now then ttl = ttl + math.min(ends - now, maxWindow) end
          redis.call('PEXPIRE', key, math.max(1, ttl))
        end

        """;
}
