-- The work of bench_core.c done the typical OpenResty way: cjson.decode
-- the body, validate each event, route it per destination with the same
-- policy (bench_policy.json, written by bench_core), cjson.encode one
-- {"batch":[...], <envelope members>} body per destination.
--
--   lua5.4 bench/bench_core.lua <dir> [seconds per measurement]
--
-- Same inputs (the files bench_core wrote to <dir>), same rules as the
-- C core's routing (README "Routing rule"), best of 3 timed runs, CPU
-- time.  The delivered (event, destination) counts are printed so that
-- core.sh can check both sides made the same decisions.  Last line:
-- "RESULT k=v ...".

local cjson = require "cjson"

local decode, encode = cjson.decode, cjson.encode
local clock = os.clock
local type, pairs, ipairs, pcall = type, pairs, ipairs, pcall

local dir = arg[1] or "."
local run_seconds = tonumber(arg[2] or "0.5")

local function slurp(name)
    local f = assert(io.open(dir .. "/" .. name, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

local policy = decode(slurp("bench_policy.json"))
local dests = policy.destinations
local ndests = #dests

local types = {
    track = true, identify = true, page = true, screen = true,
    group = true, alias = true,
}

local PREF_UPDATED = "Segment Consent Preference Updated"


local function valid_id(v)
    return (type(v) == "string" and #v > 0) or type(v) == "number"
end


-- carries, prefs: whether the context carries consent, and the
-- preferences table (nil when malformed: nothing consented)
local function consent_of(ctx)
    if type(ctx) ~= "table" then
        return false, nil
    end

    local c = ctx.consent
    if c ~= nil then
        if type(c) ~= "table" then
            return true, nil                  -- malformed: fails closed
        end

        local prefs = c.categoryPreferences
        if prefs ~= nil then
            return true, type(prefs) == "table" and prefs or nil
        end
    end

    local legacy = ctx.consentCategories
    if legacy ~= nil then
        return true, type(legacy) == "table" and legacy or nil
    end

    return false, nil
end


-- nil when absent, else whether the key leaves the destination on
local function integ(t, key)
    if type(t) ~= "table" then
        return nil
    end

    local v = t[key]
    if v == nil then
        return nil
    end

    return v ~= false
end


local function check_event(ev, ep, bcarries, bctx)
    if type(ev) ~= "table" then
        return "invalid_event"
    end

    local t = ev.type
    if t == nil then
        if ep == "batch" then
            return "invalid_type"
        end
        ev.type = ep                            -- what the split inserts
        t = ep
    elseif type(t) ~= "string" or not types[t] or (ep ~= "batch" and t ~= ep)
    then
        return "invalid_type"
    end

    if not valid_id(ev.userId) and not valid_id(ev.anonymousId) then
        return "no_user_anon_id"
    end

    if t == "track" and ev.event == PREF_UPDATED then
        -- the consent object used for routing: the event's, else the batch's
        local ctx = ev.context
        if not consent_of(ctx) and bcarries then
            ctx = bctx
        end

        local consent, prefs = nil, nil
        if type(ctx) == "table" then
            consent = ctx.consent
        end
        if type(consent) == "table" then
            prefs = consent.categoryPreferences
        else
            consent = nil
        end

        if prefs == nil then
            return "consent_categorypreferences_should_exist"
        end
        if type(prefs) ~= "table" then
            return "consent_categorypreferences_fields_should_be_object"
        end
        for _, v in pairs(prefs) do
            if type(v) ~= "boolean" then
                return "consent_categorypreferences_fields_should_be_bool"
            end
        end
        if consent.version ~= nil and type(consent.version) ~= "number" then
            return "consent_version_should_be_number"
        end
    end

    return nil
end


-- returns the bodies per destination, the delivered pair count, the
-- number of events and the forwarded bytes
local function process(body, ep)
    local ok, req = pcall(decode, body)
    if not ok or type(req) ~= "table" then
        return nil, "invalid_json"
    end

    local events, env
    if ep == "batch" then
        events = req.batch
        if type(events) ~= "table" then
            return nil, "invalid_json"
        end
        if #events == 0 then
            return nil, "empty_batch"
        end
        if #events > policy.max_events then
            return nil, "too_large"
        end
        env = req
    else
        events = { req }
        env = {}
    end

    local bcarries, bprefs = consent_of(env.context)
    local binteg = env.integrations

    local out = {}
    for d = 1, ndests do
        out[d] = {}
    end

    local delivered = 0

    for _, ev in ipairs(events) do
        if check_event(ev, ep, bcarries, env.context) == nil then
            local carries, prefs = consent_of(ev.context)
            if not carries then
                carries, prefs = bcarries, bprefs
            end

            local einteg = ev.integrations
            local all = integ(einteg, "All")
            if all == nil then
                all = integ(binteg, "All")
            end

            for d = 1, ndests do
                local dest = dests[d]
                local pass = true

                if dest.enforce and carries then
                    local cats = dest.categories
                    for c = 1, #cats do
                        if prefs == nil or prefs[cats[c]] ~= true then
                            pass = false
                            break
                        end
                    end
                end

                if pass then
                    local st = integ(einteg, dest.name)
                    if st == nil then
                        st = integ(binteg, dest.name)
                    end

                    if st == false or (st == nil and all == false) then
                        pass = false
                    end
                end

                if pass then
                    local o = out[d]
                    o[#o + 1] = ev
                    delivered = delivered + 1
                end
            end
        end
    end

    local bodies, bytes = {}, 0
    for d = 1, ndests do
        if #out[d] > 0 then
            local b = { batch = out[d] }
            for k, v in pairs(env) do
                if k ~= "batch" then
                    b[k] = v
                end
            end
            local s = encode(b)
            bodies[d] = s
            bytes = bytes + #s
        end
    end

    return bodies, delivered, #events, bytes
end


local function measure(name, body, ep)
    local bodies, delivered, nevents, bytes = process(body, ep)
    if bodies == nil then
        error(name .. ": refused: " .. tostring(delivered))
    end

    local best = 0
    for _ = 1, 3 do
        local iters = 0
        local t0 = clock()
        local t
        repeat
            process(body, ep)
            iters = iters + 1
            t = clock() - t0
        until t >= run_seconds
        local gbs = #body * iters / t / 1e9
        if gbs > best then
            best = gbs
        end
    end

    print(string.format("%-18s %8d bytes %5d events", name, #body, nevents))
    print(string.format("  lua-cjson (decode+validate+route+encode): "
                        .. "%6.3f GB/s  %6.3f M events/s", best,
                        best * 1e9 / (#body / nevents) / 1e6))
    print(string.format("  delivered %d of %d (event, destination) pairs, "
                        .. "%d bytes forwarded", delivered, nevents * ndests,
                        bytes))

    return best, delivered, nevents
end


local batch = slurp("bench_batch.json")
local big = slurp("bench_batch2500.json")
local single = slurp("bench_event.json")

-- where the time goes: cjson.decode alone over the 500 KB batch
local function decode_only(body)
    local best = 0
    for _ = 1, 3 do
        local iters, t0, t = 0, clock(), 0
        repeat
            decode(body)
            iters = iters + 1
            t = clock() - t0
        until t >= run_seconds
        best = math.max(best, #body * iters / t / 1e9)
    end
    return best
end

local g1, d1, n1 = measure("batch 500 KB", batch, "batch")
local gd = decode_only(batch)
print(string.format("  cjson.decode alone:                        %6.3f GB/s",
                    gd))
local g2, d2 = measure("batch 2500 events", big, "batch")
local g3, d3 = measure("single event", single, "track")

print(string.format("RESULT lua=%.4f lua2500=%.4f luasingle=%.4f "
                    .. "luadecode=%.4f delivered=%d delivered2500=%d "
                    .. "delivered_single=%d eps=%.0f", g1, g2, g3, gd, d1, d2,
                    d3, g1 * 1e9 / (#batch / n1)))
