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
internal static class ReservationScripts
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

    /// <summary>
    /// The flow part of <see cref="Reserve"/> (docs/distributed.md, "Continuous budgets"; the simulation's
    /// <c>SharedReservationCounter.Flow.cs</c> keeps the same rule): when every budget of the key with a known limit refills
    /// continuously and has a rate, what is spent comes back at that rate, a refused request is told when the flow will
    /// have room for it, and a foreground one with a claimant claims that moment: its amount counts at once (x and h), its
    /// record (KEYS[4]) holds <c>moment:tokens:requests</c>, and the budget's sorted set of flow claims (KEYS[3],
    /// <see cref="RedisStoreLayout.FlowClaimsKeyOf"/>) the member <c>claimant:tokens:requests</c> scored by its moment,
    /// so that a claim whose grace ended unredeemed gives its room back. A claimant back at its moment is admitted without a
    /// check (its room was counted); back before, it is told the time left. Any other case falls through to the windows rule.
    /// </summary>
    internal const string FlowReserve = """
        local MAXFLOWCLAIMS = 4096
        -- A flow when a budget of the key flows and the other either flows too or judges nothing now (unknown, or no
        -- window known: OpenAI's requests budget at a low rate reports resets of milliseconds, which name no window).
        local function idle(b) return b.l < 0 or b.e <= now end
        local isFlow = (flowing(T) or flowing(R)) and (flowing(T) or idle(T)) and (flowing(R) or idle(R))
        if isFlow then
          decay(T)
          decay(R)
          local fkind = redis.call('TYPE', flowKey)['ok']
          if fkind ~= 'zset' then
            -- No claims (expired with their key, or a peer's key of another type): nothing is held for them any more.
            if fkind ~= 'none' then redis.call('DEL', flowKey) end
            T.x, T.h = math.max(0, T.x - T.h), 0
            R.x, R.h = math.max(0, R.x - R.h), 0
          elseif fkind == 'zset' and redis.call('ZCARD', flowKey) > MAXFLOWCLAIMS then
            -- More than this store ever adds (a peer's): dropped whole; what it counted comes back at the rate.
            redis.call('DEL', flowKey)
            T.h, R.h = 0, 0
          elseif fkind == 'zset' then
            -- Claims whose grace ended unredeemed: their room, counted when they were claimed, is free again.
            local gone = redis.call('ZRANGEBYSCORE', flowKey, '-inf', now - GRACE)
            for _, member in ipairs(gone) do
              local id, ga, gq
              if #member <= 60 then id, ga, gq = string.match(member, '^(%x+):(%d+):(%d+)$') end
              if ga then ga, gq = tonumber(ga), tonumber(gq) end
              -- A claim this store made: 16 hex digits, amounts within the limits; never more than the claims hold. (A claim
              -- beyond a limit lowered since is dropped unfreed: what it held comes back at the rate.)
              if ga and #id == 16 and ga <= math.max(T.l, 0) and gq <= math.max(R.l, 0) then
                ga, gq = math.min(ga, T.h), math.min(gq, R.h)
                T.x, T.h = math.max(0, T.x - ga), T.h - ga
                R.x, R.h = math.max(0, R.x - gq), R.h - gq
              end
            end
            if #gone > 0 then redis.call('ZREMRANGEBYSCORE', flowKey, '-inf', now - GRACE) end
          end
          local a, q = 0, 0
          if flowing(T) then a = cost end
          if flowing(R) then q = 1 end
          local function grant()
            admit(cost, headroom)
            save()
            return { 1, n, c }
          end
          if recordKey then
            local kind = redis.call('TYPE', recordKey)['ok']
            local rt, ra, rq
            if kind == 'string' and redis.call('STRLEN', recordKey) <= 64 then
              local mt, ma, mq = string.match(redis.call('GET', recordKey), '^(%d+):(%d+):(%d+)$')
              -- A moment beyond the horizon and its grace is no claim of this store's (a peer's record).
            if mt and #mt <= 16 and tonumber(mt) <= now + HORIZON + GRACE then rt, ra, rq = tonumber(mt), tonumber(ma), tonumber(mq) end
            end
            local member = nil
            if rt then member = string.format('%s:%d:%d', string.sub(recordKey, -16), ra, rq) end
            if member and redis.call('ZSCORE', flowKey, member) then
              if now < rt then
                redis.call('PEXPIRE', recordKey, math.max(1, rt + GRACE - now))
                save()
                return { 3, rt - now }
              end
              -- Redeemed: counted when it was claimed (a request of another size moves the count by the difference).
              redis.call('ZREM', flowKey, member)
              redis.call('DEL', recordKey)
              ra, rq = math.min(ra, T.h), math.min(rq, R.h)
              T.h, R.h = T.h - ra, R.h - rq
              T.x, R.x = math.max(0, T.x + a - ra), math.max(0, R.x + q - rq)
              return grant()
            end
            -- A record with no flow claim (made in windows, or its claim expired): the request is an ordinary one.
            if kind ~= 'none' then redis.call('DEL', recordKey) end
          end
          local wait = 0
          local function over(b, amount, always)
            if b.l < 0 or (amount == 0 and headroom == 0 and promised == 0) or (not always and amount > b.l) then return end
            local kept = math.max(0, math.min(math.ceil(headroom * b.l), b.l - amount)) + math.ceil(promised * b.l)
            local expected = 0
            if headroom > 0 then expected = math.min(math.max(b.fp, b.fk) * math.ceil(math.ceil(b.x / b.z) / SLICE), b.l) end
            local excess = b.x + amount + kept + expected - b.l
            if excess > 0 then wait = math.max(wait, math.max(1, math.ceil(excess / b.z))) end
          end
          if flowing(T) then over(T, cost, false) end
          if flowing(R) then over(R, 1, true) end
          if wait > 0 then
            -- A claim counts at once: whatever comes after it, claimed or not, waits behind it.
            -- Claimed only within the horizon; told never beyond the longest window (a peer's rate may be any tiny number).
            if recordKey and headroom == 0 and wait <= HORIZON and (not flowing(T) or cost <= T.l) and (not flowing(R) or 1 <= R.l)
                and redis.call('ZCARD', flowKey) < MAXFLOWCLAIMS then
              local at = now + wait
              -- Counted once: a claimant whose record was lost while its claim stayed is not counted twice (its claim
              -- moves to the new moment).
              local member = string.format('%s:%d:%d', string.sub(recordKey, -16), a, q)
              if redis.call('ZADD', flowKey, 'NX', at, member) == 1 then
                T.x, T.h = T.x + a, T.h + a
                R.x, R.h = R.x + q, R.h + q
              else
                redis.call('ZADD', flowKey, 'XX', at, member)
              end
              -- The set outlives its last claim's grace by a horizon, so that a sweep sees every claim whose grace ended.
              if redis.call('PTTL', flowKey) < wait + GRACE + HORIZON then redis.call('PEXPIRE', flowKey, wait + GRACE + HORIZON) end
              redis.call('SET', recordKey, string.format('%d:%d:%d', at, a, q), 'PX', wait + GRACE)
              save()
              return { 3, wait }
            end
            save()
            return { 0, math.min(wait, math.max(1, maxWindow)) }
          end
          T.x = T.x + a
          R.x = R.x + q
          return grant()
        end
        """;

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
