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
/// another report sets <c>s</c>, whose releases it cannot tell apart, and at each refill). Beside it, sharing its hash
/// tag: the budget's claims, a hash (<see cref="RedisStoreLayout.ClaimsKeyOf"/>, <c>&lt;budget key&gt;:q</c>) whose
/// field is a claim's moment (Redis server milliseconds) and whose value is what is set aside then
/// (<c>tokens:requests</c>, then <c>:</c> and the latest moment of the claims that joined it when later), and one string per claimant (<see cref="RedisStoreLayout.ClaimantKeyOf"/>,
/// <c>&lt;budget key&gt;:c:&lt;claimant as 16 hex digits&gt;</c>) holding <c>moment:tokens:requests</c>.
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
/// plus the history: keys never outlive what they describe. A budget's claims and its claimants' records expire with
/// their claims' grace (at most the horizon and the grace from now). Each script touches one budget's keys only, which
/// share its hash tag (<see cref="RedisStoreLayout.ReservationKeyOf"/>), so every one works on a Redis Cluster.
/// </para>
/// </remarks>
internal static partial class ReservationScripts
{
    /// <summary>
    /// The most claim moments a budget's claims hash holds (<c>MAXMOMENTS</c> in <see cref="Reserve"/>, which names it):
    /// about twice the refills of its two budgets looked at, so a moving window end still finds room; a hash with more
    /// (a peer's) is dropped, and no claim adds a moment beyond it.
    /// </summary>
    public const int MaxClaimMoments = 16;

    /// <summary>
    /// KEYS[1] the budget's key; KEYS[2] its claims (<see cref="RedisStoreLayout.ClaimsKeyOf"/>); KEYS[3] its flow claims
    /// (<see cref="RedisStoreLayout.FlowClaimsKeyOf"/>, <see cref="FlowReserve"/>: a budget refilled continuously); KEYS[4],
    /// only for a request that may claim, its claimant's record (<see cref="RedisStoreLayout.ClaimantKeyOf"/>); ARGV[1] the cost in
    /// tokens; ARGV[2] the headroom (0 to 1); ARGV[3] the history in milliseconds; ARGV[4] the longest window in
    /// milliseconds; ARGV[5] the share promised to foreground callers (0 to 1); ARGV[6] the grace, ARGV[7] the horizon
    /// (milliseconds) and ARGV[8] the most refills per budget looked at (<see cref="RedisReservations.Grace"/>,
    /// <see cref="RedisReservations.Horizon"/>, <see cref="RedisReservations.Refills"/>).
    /// Returns { 0, milliseconds until the refill } when refused, { 1, n, c } when granted, { 2, n, c } when counted
    /// without a known budget, { 3, milliseconds until the claimed refill } when refused holding a claim. After the cost,
    /// ceil(headroom × limit) stays free — no more than the limit less the cost, as in the process's view: a request too
    /// large to leave it goes on a full budget only — plus, strictly (no request is too large for them),
    /// ceil(promised × limit) (<c>BackendBudget.PromisedShare</c>), the claims of the budget's current window's refill, and,
    /// for a background request (a non-zero headroom), the foreground demand of every process expected until the reset
    /// (<c>ForegroundDemand.Expected</c>: the recent peak, the most spent in one second, for every second left begun); in
    /// tokens (also at cost 0, as in the process's view) and in requests. A background request refused for that demand
    /// only is told when the foreground can no longer spend it (<c>ForegroundDemand.UntilExpectedAtMost</c>). A granted
    /// foreground request (headroom 0) counts towards that demand.
    /// <para>
    /// Claims (the one rule of docs/distributed.md, which the simulation's <c>SharedReservationCounter</c> mirrors): the
    /// claims hash maps a claim's moment (<c>t</c>, Redis server milliseconds) to the amounts set aside then
    /// (<c>tokens:requests</c>, and <c>:latest</c> once a later claim joined it); a claimant's record holds
    /// <c>t:tokens:requests</c> and expires at t + grace, its claim at its latest claimant's moment + grace. A claim joins
    /// the entry its refill already has (a moment nearer than half the window of each budget it claims: answers move a
    /// window's end by milliseconds), which keeps its moment and takes the claim's amounts, so a budget holds one entry
    /// per refill claimed; redeemed or given back, a claim leaves the entry of the refill nearest the moment its
    /// claimant was told. A claimant with a record is refused until t (told the time left) and then redeems it: its room is free again
    /// for its own check. A claim counts in the refill nearest its moment: with a window w known, the claims of the refill
    /// at s are those whose moment lies in [s − w/2, s + w/2) (answers move a window's end by milliseconds: counted from
    /// its moment on, a claim made just before a refill fell in the window before and the refill was claimed twice
    /// over), so the current window (ending at e) leaves free the claims of its refill e − w; with w unknown (0), every
    /// claim before e, and a refill at e holds every claim from e on. A request that does not fit now is told the soonest
    /// refill (of the budgets that judged it, at most ARGV[8] per budget, within the horizon, and never sooner than
    /// today's answer) where it fits the room no claim holds in the window of each such budget that contains it (a
    /// moment t ≥ e lies in the refill e + floor((t − e) / w) × w); a foreground request with a claimant claims it
    /// there. None fits: the moment after the last refill looked at (its window later; with w unknown, the horizon),
    /// or, when even the first is beyond the horizon, today's answer, unclaimed; a budget whose limit no refill can hold
    /// the request in (0 requests) answers its refill as before, unclaimed. At most <see cref="MaxClaimMoments"/> moments are kept:
    /// a claims hash with more, or a field or record that does not parse or lies outside now + horizon + grace, is
    /// dropped, and amounts are clamped to the limit.
    /// </para>
    /// </summary>
    public const string Reserve = Prelude + NearestRefill + """
        local cost = num(ARGV[1], 0, BIG, 0)
        local function share(v)
          local x = tonumber(v) or 0
          if x ~= x or x < 0 then return 0 elseif x > 1 then return 1 end
          return x
        end
        local headroom = share(ARGV[2])
        local promised = share(ARGV[5])
        local GRACE = num(ARGV[6], 0, 3600000, 0)
        local HORIZON = num(ARGV[7], 0, 3600000, 0)
        local REFILLS = num(ARGV[8], 0, 16, 0)
        -- MaxClaimMoments.
        local MAXMOMENTS = 16
        local claimsKey = KEYS[2]
        local flowKey = KEYS[3]
        local recordKey = KEYS[4]
""" + FlowReserve + """
        -- The claims: moment -> { tokens, requests }, read within every bound (whatever a peer wrote heals here).
        local claims = {}
        local moments = 0
        local dirty = false
        local function bounded(x, b)
          if b.l >= 0 and x > b.l then return b.l end
          return math.min(x, BIG)
        end
        local function moment(v, latest)
          if type(v) ~= 'string' or #v > 16 or not string.match(v, '^%d+$') then return nil end
          local t = tonumber(v)
          if math.max(latest or t, t) + GRACE <= now or t > now + HORIZON + GRACE then return nil end
          return t
        end
        if claimsKey then
          local kind = redis.call('TYPE', claimsKey)['ok']
          if kind == 'hash' and redis.call('HLEN', claimsKey) > MAXMOMENTS then
            redis.call('DEL', claimsKey)
          elseif kind == 'hash' then
            local raw = redis.call('HGETALL', claimsKey)
            for i = 1, #raw, 2 do
              -- tokens:requests, then the latest claimant's moment when later than the entry's (it lasts that one's grace).
              local a, q, l
              if #raw[i + 1] <= 60 then a, q, l = string.match(raw[i + 1], '^(%d+):(%d+):?(%d*)$') end
              local latest = nil
              if l and l ~= '' and #l <= 16 then latest = tonumber(l) end
              local t = a and moment(raw[i], latest)
              if t and latest and (latest < t or latest > t + HORIZON) then latest = nil dirty = true end
              if t then
                a, q = tonumber(a), tonumber(q)
                local ba, bq = bounded(a, T), bounded(q, R)
                if ba ~= a or bq ~= q then dirty = true end
                claims[t] = { a = ba, q = bq, l = latest or t }
                moments = moments + 1
              else
                dirty = true
              end
            end
            if redis.call('PTTL', claimsKey) < 0 then dirty = true end
          elseif kind ~= 'none' then
            redis.call('DEL', claimsKey)
          end
        end
        local function saveClaims()
          if not dirty then return end
          redis.call('DEL', claimsKey)
          local last = 0
          local fields = {}
          for t, amounts in pairs(claims) do
            fields[#fields + 1] = string.format('%d', t)
            if amounts.l > t then
              fields[#fields + 1] = string.format('%d:%d:%d', amounts.a, amounts.q, amounts.l)
            else
              fields[#fields + 1] = string.format('%d:%d', amounts.a, amounts.q)
            end
            if amounts.l > last then last = amounts.l end
          end
          if #fields > 0 then
            redis.call('HSET', claimsKey, unpack(fields))
            redis.call('PEXPIRE', claimsKey, math.max(1, last + GRACE - now))
          end
        end
        -- The entry of the refill a claim told moment t belongs to (NearestRefill; a window's end moves by milliseconds
        -- with the answers that report it, so a refill's claims name moments milliseconds apart, and share one entry).
        local function entryOf(t, a, q)
          local entries = {}
          for m, _ in pairs(claims) do entries[#entries + 1] = m end
          return nearestEntry(entries, t, halfWindow(a, q, T.w, R.w))
        end
        local function unclaim(rt, a, q)
          local t = entryOf(rt, a, q)
          if t == nil then return end
          local amounts = claims[t]
          amounts.a = math.max(0, amounts.a - a)
          amounts.q = math.max(0, amounts.q - q)
          if amounts.a == 0 and amounts.q == 0 then
            claims[t] = nil
            moments = moments - 1
          end
          dirty = true
        end
        -- Redeem: a claimant back before its moment is told the time left; from its moment on its room is its own again.
        if recordKey then
          local kind = redis.call('TYPE', recordKey)['ok']
          if kind == 'string' then
            local rt, ra, rq
            if redis.call('STRLEN', recordKey) <= 64 then
              local record = redis.call('GET', recordKey)
              local mt, ma, mq = string.match(record, '^(%d+):(%d+):(%d+)$')
              rt = moment(mt)
              ra, rq = tonumber(ma), tonumber(mq)
            end
            if rt and ra and rq and now < rt then
              redis.call('PEXPIRE', recordKey, rt + GRACE - now)
              save()
              saveClaims()
              return { 3, rt - now }
            end
            if rt and ra and rq then unclaim(rt, ra, rq) end
            redis.call('DEL', recordKey)
          elseif kind ~= 'none' then
            redis.call('DEL', recordKey)
          end
        end
        -- What the claims hold of a budget in [from, to).
        local function claimed(field, from, to)
          local sum = 0
          for t, amounts in pairs(claims) do
            if t >= from and t < to then sum = sum + amounts[field] end
          end
          return sum
        end
        -- A claim counts in the refill nearest its moment (within half a window either side): a window's end moves by
        -- milliseconds with the answers that report it, and counted from its moment on, a claim made a millisecond
        -- before a refill would fall in the window before, letting the same refill be claimed twice over. With no
        -- window known, every claim from the refill on.
        local function ofRefill(b, field, s)
          if b.w > 0 then return claimed(field, s - b.w / 2, s + b.w / 2) end
          return claimed(field, s, BIG)
        end
        -- The claims the current window leaves free: its own refill's (e - w); with no window known, every claim before its end.
        local function due(b, field)
          if b.w > 0 then return ofRefill(b, field, b.e - b.w) end
          return claimed(field, -BIG, b.e)
        end
        local function applies(b, amount, always)
          return not (b.l < 0 or b.e <= now or (amount == 0 and headroom == 0 and promised == 0) or (not always and amount > b.l))
        end
        local wait = 0
        local outright = false
        local function check(b, amount, always, field)
          if not applies(b, amount, always) then return end
          local left = b.e - now
          local peak = math.max(b.fp, b.fk)
          local expected = 0
          if headroom > 0 then expected = math.min(peak * math.ceil(left / SLICE), b.l) end
          local kept = math.max(0, math.min(math.ceil(headroom * b.l), b.l - amount)) + math.ceil(promised * b.l) + due(b, field)
          if b.v + amount <= b.l - kept - expected then return end
          -- ForegroundDemand.UntilExpectedAtMost: held back by the foreground's demand only, until the seconds left
          -- at its peak fit in the room.
          local room = b.l - kept - b.v - amount
          local untilLeft = left
          if room >= 0 and peak > 0 then
            untilLeft = left - math.min(math.floor(room / peak), math.floor(left / SLICE)) * SLICE
            if untilLeft <= 0 then untilLeft = left end
          end
          if room < 0 then outright = true end
          if untilLeft > wait then wait = untilLeft end
        end
        check(T, cost, false, 'a')
        check(R, 1, true, 'q')
        if wait > 0 and outright then
          -- The soonest refill (of either budget) where the request fits the room no claim holds, in the window of each
          -- budget that contains it; future windows keep no headroom, promise or expected demand.
          local known = {}
          if applies(T, cost, false) then known[#known + 1] = { b = T, amount = cost, field = 'a' } end
          if applies(R, 1, true) then known[#known + 1] = { b = R, amount = 1, field = 'q' } end
          local candidates = {}
          local windows = {}
          -- A budget no refill can hold the request in (a limit of 0 requests) answers as today: its refill, no claim.
          local never = false
          for _, k in ipairs(known) do
            if k.b.l < k.amount then never = true end
          end
          if never then known = {} end
          -- No sooner than today's answer (the later of the refusing budgets' moments): a moment this window refused is
          -- never named, nor claimed.
          for _, k in ipairs(known) do
            for i = 0, REFILLS - 1 do
              local t = k.b.e + i * k.b.w
              if t > now + HORIZON or (i > 0 and k.b.w <= 0) then break end
              if t >= now + wait then
                if windows[t] == nil then candidates[#candidates + 1] = t end
                windows[t] = math.max(windows[t] or 0, k.b.w)
              end
            end
          end
          table.sort(candidates)
          local function fits(t)
            for _, k in ipairs(known) do
              local b = k.b
              local room
              if t < b.e then
                room = b.l - b.v - due(b, k.field)
              elseif b.w > 0 then
                -- The refill of this budget whose window holds t.
                room = b.l - ofRefill(b, k.field, b.e + math.floor((t - b.e) / b.w) * b.w)
              else
                room = b.l - ofRefill(b, k.field, b.e)
              end
              if room < k.amount then return false end
            end
            return true
          end
          local soonest = nil
          for _, t in ipairs(candidates) do
            if fits(t) then
              soonest = t
              break
            end
          end
          local a, q = 0, 0
          for _, k in ipairs(known) do
            if k.field == 'a' then a = k.amount else q = k.amount end
          end
          -- A claim joins the entry its refill already has, which keeps the moment it counts at (its first claim's: moved
          -- to each later claimant's, it would creep a refill forward join by join where refill moments move by seconds,
          -- a continuous refill's) and lasts its latest claimant's grace; the claimant's record keeps the moment it is told.
          local entry = nil
          if soonest then entry = entryOf(soonest, a, q) end
          if soonest and recordKey and headroom == 0 and (entry or moments < MAXMOMENTS) then
            local amounts
            if entry then
              amounts = claims[entry]
              amounts.l = math.max(amounts.l, soonest)
            else
              amounts = { a = 0, q = 0, l = soonest }
              claims[soonest] = amounts
              moments = moments + 1
            end
            amounts.a = bounded(amounts.a + a, T)
            amounts.q = bounded(amounts.q + q, R)
            dirty = true
            redis.call('SET', recordKey, string.format('%d:%d:%d', soonest, a, q), 'PX', soonest + GRACE - now)
            save()
            saveClaims()
            return { 3, soonest - now }
          end
          if soonest then
            wait = math.max(wait, soonest - now)
          elseif #candidates > 0 then
            -- Nothing fits within the horizon: the moment after the last refill looked at.
            local last = candidates[#candidates]
            local after = now + HORIZON
            if windows[last] > 0 then after = last + windows[last] end
            wait = math.max(wait, after - now)
          end
        end
        if wait > 0 then
          save()
          saveClaims()
          return { 0, wait }
        end
        T.v = T.v + cost
        R.v = R.v + 1
        admit(cost, headroom)
        save()
        saveClaims()
        if (T.l >= 0 and T.e > now) or (R.l >= 0 and R.e > now) then
          return { 1, n, c }
        end
        return { 2, n, c }
        """;
}
