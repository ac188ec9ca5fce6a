namespace Polly.PriorityRouting.Redis;

/// <summary>
/// The Lua scripts of the shared reservations: one hash per backend and partition (<see cref="RedisStoreLayout.ReservationKeyOf"/>)
/// holding two budgets, tokens (<c>t*</c>) and requests (<c>r*</c>), each with its limit (<c>l</c>, −1 unknown), what
/// is reserved in the current window (<c>v</c>), the window's end (<c>e</c>, Redis server milliseconds, 0 unknown), the
/// window's length (<c>w</c>), the running count at its last refill (<c>m</c>), whether it refills continuously
/// (<c>k</c>, 1 once learned) and the running count at the reservation whose answer set the window's end (<c>s</c>); plus
/// the running counts of reservations (<c>n</c>) and of reserved tokens (<c>c</c>), which are the reservations' history
/// in two numbers; and per budget the foreground's demand, <c>ForegroundDemand</c>'s rule (<c>fq</c> spent in the current
/// one-second slice, which ends at <c>fe</c>; <c>fp</c> the most spent in one slice of the current window; <c>fk</c> the
/// most in one slice of a recent window, halved per window since: its recent peak rate, ended with the window); the
/// running count up to which releases are void (<c>p</c>: the last refill's, or the one of the reservation whose report
/// set or raised the count); and what was given back of the reservations made after <c>s</c> (<c>g</c>, emptied when
/// another report sets <c>s</c>, whose releases it cannot tell apart, and at each refill).
/// </summary>
/// <remarks>
/// <para>
/// Times are the Redis server's (<c>TIME</c>) and cross the network as relative milliseconds only, so replicas' clocks
/// never meet. At its end a window is full again (its reserved count drops to 0) and the next one is one window later: a
/// step, as in the process's budget view. A budget refilled continuously (OpenAI's: its reset is the time until it is
/// full, so two reports moments apart name moments less than a window apart) is full at that moment only if nothing was
/// admitted after the report that named it: at that first refill it keeps what was reserved since (<c>s</c> to the
/// running count) less what was given back of it (<c>g</c>), as the process's view keeps its spends; a window later
/// those have refilled too.
/// </para>
/// <para>
/// A correction sets the count to what the backend had spent when it admitted the request (<c>limit − remaining</c>)
/// plus what was reserved since that request's reservation (the running counts now less the request's own), so an
/// answer that arrives seconds late loses nothing reserved meanwhile; a report of a later window replaces the count, one
/// of the current window only raises it, one of an earlier window is ignored. A release gives a reservation back only if
/// the count holds it: made in the current window, and after the reservation whose report last set or raised the count
/// (one made before is in that report, or was never counted by the backend, as the simulation's counter keeps it too).
/// </para>
/// <para>
/// Whatever a peer wrote into the key never throws: a key of another type is deleted, a field that is not a number (or
/// lies outside its bounds) reads as unknown, and the foreground's demand reads as no more than the limit (a window
/// never spends more), so no value holds background work off longer than a foreground that spent the whole budget. Every write sets the key's expiry to the end of its known windows plus one
/// window and the history (long enough for the slowest answer to correct it), never more than twice the longest window
/// plus the history: keys never outlive what they describe. Each script touches its one key only, so every one works on
/// a Redis Cluster.
/// </para>
/// </remarks>
internal static class ReservationScripts
{
    /// <summary>
    /// KEYS[1] the budget's key; ARGV[1] the cost in tokens; ARGV[2] the headroom (0 to 1); ARGV[3] the history in
    /// milliseconds; ARGV[4] the longest window in milliseconds; ARGV[5] the share promised to foreground callers (0 to 1).
    /// Returns { 0, milliseconds until the refill } when refused, { 1, n, c } when granted, { 2, n, c } when counted
    /// without a known budget. After the cost, ceil(headroom × limit) stays free — no more than the limit less the cost,
    /// as in the process's view: a request too large to leave it goes on a full budget only — plus, strictly (no request
    /// is too large for them), ceil(promised × limit) (<c>BackendBudget.PromisedShare</c>) and, for a background request
    /// (a non-zero headroom), the foreground demand of every process expected until the reset
    /// (<c>ForegroundDemand.Expected</c>: the recent peak, the most spent in one second, for every second left begun); in
    /// tokens (also at cost 0, as in the process's view) and in requests. A background request refused for that demand
    /// only is told when the foreground can no longer spend it (<c>ForegroundDemand.UntilExpectedAtMost</c>). A granted
    /// foreground request (headroom 0) counts towards that demand.
    /// </summary>
    public const string Reserve = Prelude + """
        local cost = num(ARGV[1], 0, BIG, 0)
        local function share(v)
          local x = tonumber(v) or 0
          if x ~= x or x < 0 then return 0 elseif x > 1 then return 1 end
          return x
        end
        local headroom = share(ARGV[2])
        local promised = share(ARGV[5])
        local wait = 0
        local function check(b, amount, always)
          if b.l < 0 or b.e <= now or (amount == 0 and headroom == 0 and promised == 0) or (not always and amount > b.l) then return end
          local left = b.e - now
          local peak = math.max(b.fp, b.fk)
          local expected = 0
          if headroom > 0 then expected = math.min(peak * math.ceil(left / SLICE), b.l) end
          local kept = math.max(0, math.min(math.ceil(headroom * b.l), b.l - amount)) + math.ceil(promised * b.l)
          if b.v + amount <= b.l - kept - expected then return end
          -- ForegroundDemand.UntilExpectedAtMost: held back by the foreground's demand only, until the seconds left
          -- at its peak fit in the room.
          local room = b.l - kept - b.v - amount
          local untilLeft = left
          if room >= 0 and peak > 0 then
            untilLeft = left - math.min(math.floor(room / peak), math.floor(left / SLICE)) * SLICE
            if untilLeft <= 0 then untilLeft = left end
          end
          if untilLeft > wait then wait = untilLeft end
        end
        local function spend(b, amount)
          if now >= b.fe then
            b.fe = now + SLICE
            b.fq = 0
          end
          b.fq = b.fq + amount
          if b.l >= 0 and b.fq > b.l then b.fq = b.l end
          if b.fq > b.fp then b.fp = b.fq end
        end
        check(T, cost, false)
        check(R, 1, true)
        if wait > 0 then
          save()
          return { 0, wait }
        end
        T.v = T.v + cost
        R.v = R.v + 1
        if headroom == 0 then
          spend(T, cost)
          spend(R, 1)
        end
        n = n + 1
        c = c + cost
        save()
        if (T.l >= 0 and T.e > now) or (R.l >= 0 and R.e > now) then
          return { 1, n, c }
        end
        return { 2, n, c }
        """;

    /// <summary>
    /// KEYS[1] the budget's key; ARGV[1] the reservation's n; ARGV[2] its c; ARGV[3] the history; ARGV[4] the longest
    /// window; ARGV[5] how far apart two resets may be and describe one window (milliseconds); then per budget (tokens at
    /// 6, requests at 10): remaining (−1 unknown), limit (−1 unknown), milliseconds from now until the reset, the reset
    /// delay as reported. Returns 1.
    /// </summary>
    public const string Correct = Prelude + """
        local sameWindow = num(ARGV[5], 0, maxWindow, 0)
        local function correct(b, at, since, count)
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
        correct(T, 6, math.max(0, c - reservedC), reservedC)
        correct(R, 10, math.max(0, n - reservedN), reservedN)
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
        save()
        return released
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
          'tfq', 'tfe', 'tfp', 'tfk', 'rfq', 'rfe', 'rfp', 'rfk', 'tp', 'rp', 'tg', 'rg')
        local function num(v, lo, hi, default)
          local x = tonumber(v)
          if x == nil or x ~= x or x < lo or x > hi then return default end
          return math.floor(x)
        end
        local n = num(f[11], 0, BIG, 0)
        local c = num(f[12], 0, BIG, 0)
        local function budget(i, j, d, q, count, g)
          local b = { l = num(f[i], -1, BIG, -1), v = num(f[i + 1], 0, BIG, 0), e = num(f[i + 2], 0, BIG, 0),
                      w = num(f[i + 3], 0, maxWindow, 0), m = num(f[i + 4], 0, BIG, 0), k = num(f[j], 0, 1, 0),
                      s = num(f[j + 1], 0, count, 0), fq = num(f[d], 0, BIG, 0), fe = num(f[d + 1], 0, BIG, 0),
                      fp = num(f[d + 2], 0, BIG, 0), fk = num(f[d + 3], 0, BIG, 0), p = num(f[q], 0, count, 0), g = num(f[g], 0, BIG, 0) }
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
        local T = budget(1, 13, 17, 25, c, 27)
        local R = budget(6, 15, 21, 26, n, 28)
        local function save()
          local d = function(x) return string.format('%d', x) end
          redis.call('HSET', key, 'tl', d(T.l), 'tv', d(T.v), 'te', d(T.e), 'tw', d(T.w), 'tm', d(T.m),
            'rl', d(R.l), 'rv', d(R.v), 're', d(R.e), 'rw', d(R.w), 'rm', d(R.m), 'n', d(n), 'c', d(c),
            'tk', d(T.k), 'ts', d(T.s), 'rk', d(R.k), 'rs', d(R.s),
            'tfq', d(T.fq), 'tfe', d(T.fe), 'tfp', d(T.fp), 'tfk', d(T.fk), 'rfq', d(R.fq), 'rfe', d(R.fe), 'rfp', d(R.fp), 'rfk', d(R.fk),
            'tp', d(T.p), 'rp', d(R.p), 'tg', d(T.g), 'rg', d(R.g))
          local ends = math.max(T.e, R.e)
          local ttl = history + math.max(T.w, R.w)
          if ends > now then ttl = ttl + math.min(ends - now, maxWindow) end
          redis.call('PEXPIRE', key, math.max(1, ttl))
        end

        """;
}
