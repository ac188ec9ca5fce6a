namespace Polly.PriorityRouting.Redis;

/// <summary>The flow part of <see cref="ReservationScripts.Reserve"/>: a budget refilled continuously (docs/distributed.md, "Continuous budgets: a flow").</summary>
internal static partial class ReservationScripts
{
    /// <summary>
    /// The flow part of <see cref="Reserve"/> (docs/distributed.md, "Continuous budgets"; the simulation's
    /// <c>SharedReservationCounter.Flow.cs</c> keeps the same rule): when every budget of the key with a known limit refills
    /// continuously and has a rate, what is spent comes back at that rate, a refused request is told when the flow will
    /// have room for it, and a foreground one with a claimant claims that moment: its amount counts at once (x and h), its
    /// record (KEYS[4]) holds <c>moment:tokens:requests</c>, and the budget's sorted set of flow claims (KEYS[3],
    /// <see cref="RedisStoreLayout.FlowClaimsKeyOf"/>) the member <c>claimant:tokens:requests</c> scored by its moment,
    /// so that a claim whose grace ended unredeemed gives its room back. A claimant back at its moment is admitted without a
    /// check (its room was counted); back before, it is told the time left. A foreground request refused by the count may
    /// still take room no claim needs by its moment (a gap a claim given back left before later claims), read from the set
    /// while it holds at most 512 claims. Any other case falls through to the windows rule.
    /// </summary>
    internal const string FlowReserve = """
        local MAXFLOWCLAIMS = 4096
        local MAXROOMSCAN = 512
        local ROOMPAGE = 32
        -- A flow claim's member as this store writes it (its claimant's 16 hex digits, then its tokens and requests): the
        -- amounts; nil for anything else (a peer's), which no claimant can redeem.
        local function flowClaim(member)
          if #member > 60 then return nil end
          local id, a, q = string.match(member, '^(%x+):(%d+):(%d+)$')
          if id == nil or #id ~= 16 then return nil end
          return tonumber(a), tonumber(q)
        end
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
              local ga, gq = flowClaim(member)
              -- A claim this store made, amounts within the limits; never more than the claims hold. (A claim beyond a
              -- limit lowered since is dropped unfreed: what it held comes back at the rate.)
              if ga and ga <= math.max(T.l, 0) and gq <= math.max(R.l, 0) then
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
          -- Whether the count refuses the request on b (and wait then holds when it will have room).
          local function over(b, amount, always)
            if b.l < 0 or (amount == 0 and headroom == 0 and promised == 0) or (not always and amount > b.l) then return false end
            local kept = math.max(0, math.min(math.ceil(headroom * b.l), b.l - amount)) + math.ceil(promised * b.l)
            local expected = 0
            if headroom > 0 then expected = math.min(math.max(b.fp, b.fk) * math.ceil(math.ceil(b.x / b.z) / SLICE), b.l) end
            -- Never less spent than the claims hold: their room is theirs, even where the count decayed past them.
            local excess = math.max(b.x, b.h) + amount + kept + expected - b.l
            if excess <= 0 then return false end
            wait = math.max(wait, math.max(1, math.ceil(excess / b.z)))
            return true
          end
          local overT = flowing(T) and over(T, cost, false)
          local overR = flowing(R) and over(R, 1, true)
          local queued = nil
          local function claimsQueued()
            if queued == nil then queued = redis.call('ZCARD', flowKey) end
            return queued
          end
          if wait > 0 and headroom == 0 and promised == 0 then
            -- A foreground request may also take room no claim needs by its moment: a claim given back leaves a gap
            -- before the claims queued behind it, which keep their moments. Read on each budget whose count refuses the
            -- request only (one that does not judge it takes nothing of it): what its bucket holds now (the limit less what
            -- is spent but for the claims), then at each claim's moment by moment (refilled at the rate, never beyond the
            -- limit) less the claims due by then. A page at a time, until a level is short of the request (mostly the
            -- first), and only while at most 512 are queued. (A claim beyond a limit lowered since counts whole: its
            -- claimant may still redeem it.)
            local tl, rl = nil, nil
            if overT then tl = math.min(T.l, T.l - (T.x - T.h)) end
            if overR then rl = math.min(R.l, R.l - (R.x - R.h)) end
            local function fits() return (tl == nil or cost <= tl) and (rl == nil or 1 <= rl) end
            if fits() and claimsQueued() > 0 and claimsQueued() <= MAXROOMSCAN then
              local at, from = now, 0
              while fits() and from < queued do
                local page = redis.call('ZRANGEBYSCORE', flowKey, '-inf', '+inf', 'WITHSCORES', 'LIMIT', from, ROOMPAGE)
                if #page == 0 then break end
                for i = 1, #page, 2 do
                  local ca, cq = flowClaim(page[i])
                  local moment = tonumber(page[i + 1])
                  if ca and moment then
                    if moment > at then
                      if tl then tl = math.min(T.l, tl + T.z * (moment - at)) end
                      if rl then rl = math.min(R.l, rl + R.z * (moment - at)) end
                      at = moment
                    end
                    if tl then tl = tl - ca end
                    if rl then rl = rl - cq end
                    if not fits() then break end
                  end
                end
                from = from + ROOMPAGE
              end
              if fits() then wait = 0 end
            end
          end
          if wait > 0 then
            -- A claim counts at once: whatever comes after it, claimed or not, waits behind it.
            -- Claimed only within the horizon; told never beyond the longest window (a peer's rate may be any tiny number).
            if recordKey and headroom == 0 and wait <= HORIZON and (not flowing(T) or cost <= T.l) and (not flowing(R) or 1 <= R.l)
                and claimsQueued() < MAXFLOWCLAIMS then
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
}
