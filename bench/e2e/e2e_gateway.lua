-- The consent gateway of the end-to-end benchmark written the OpenResty
-- way (Debian's libnginx-mod-http-lua, LuaJIT, lua-cjson): read the body,
-- cjson.decode it, validate every event, route it per destination with
-- the same rule as ngx_consent (README "Routing rule"), cjson.encode one
-- {"batch":[...], <envelope members>} body per destination and POST them
-- all at once with ngx.location.capture_multi.  Not part of the product:
-- it is the comparison point of bench/e2e.sh, written as well as we could.
--
--   location /v1/ { content_by_lua_block { require("e2e_gateway")() } }
--
-- The policy below is the benchmark's (bench/e2e/consent.conf declares
-- the same categories and destinations to ngx_consent); bench/e2e.sh
-- checks that both forward the same events to the same destinations.
--
-- What lua-cjson cannot see is not checked: duplicate keys, invalid
-- UTF-8, the per-event size limit.  Re-encoding changes the events'
-- bytes (member order, number formatting, "\/"), which destinations
-- accept, and an empty array [] would become {} (Debian's lua-cjson 2.1.0
-- has no array metatable); the benchmark's events hold no empty array.

local cjson = require "cjson.safe"

local decode, encode = cjson.decode, cjson.encode
local ngx = ngx
local req_read_body = ngx.req.read_body
local req_get_body_data = ngx.req.get_body_data
local req_get_body_file = ngx.req.get_body_file
local capture_multi = ngx.location.capture_multi
local HTTP_POST = ngx.HTTP_POST
local type, pairs, ipairs, next = type, pairs, ipairs, next
local byte, sub, find = string.byte, string.sub, string.find

local ok_new, new_tab = pcall(require, "table.new")
if not ok_new then
    new_tab = function() return {} end
end

local MAX_BODY = 500 * 1024
local MAX_EVENTS = 2500

-- the benchmark's policy: 8 OneTrust categories, 5 destinations
local DESTS = {
    { name = "amplitude",  uri = "/_dest/amplitude",  cats = { "C0002" } },
    { name = "braze",      uri = "/_dest/braze",      cats = { "C0003" } },
    { name = "google_ads", uri = "/_dest/google_ads", cats = { "C0004" } },
    { name = "facebook",   uri = "/_dest/facebook",
      cats = { "C0004", "C0005" } },
    { name = "webhook",    uri = "/_dest/webhook",    cats = {} },
}
local NDESTS = #DESTS

local TYPES = {
    track = true, identify = true, page = true, screen = true,
    group = true, alias = true,
}
local SINGLE = {
    track = true, identify = true, page = true, screen = true,
    group = true, alias = true, batch = false, import = false,
}

local PREF_UPDATED = "Segment Consent Preference Updated"

local MESSAGES = {
    invalid_event = "event must be a JSON object",
    no_user_anon_id = "userId or anonymousId is required",
    invalid_type = "type is missing, unknown or contradicts the endpoint",
    consent_categorypreferences_should_exist =
        "context.consent.categoryPreferences object is required",
    consent_categorypreferences_fields_should_be_object =
        "context.consent.categoryPreferences must be an object",
    consent_categorypreferences_fields_should_be_bool =
        "context.consent.categoryPreferences values must be booleans",
    consent_version_should_be_number =
        "context.consent.version must be a number",
}


local function reply(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Access-Control-Allow-Origin"] = "*"
    ngx.print(body)
    return ngx.exit(status)
end


local function refuse(status, code, message)
    return reply(status, encode({ success = false, code = code,
                                  message = message }))
end


local function valid_id(v)
    local t = type(v)
    return (t == "string" and v ~= "") or t == "number"
end


-- carries, prefs: whether the context carries consent, and the
-- preferences (nil when not an object: nothing is consented)
local function consent_of(ctx)
    if type(ctx) ~= "table" then
        return false, nil
    end

    local c = ctx.consent
    if c ~= nil then
        if type(c) ~= "table" then
            return true, nil            -- malformed (also null): fails closed
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


-- an error code, or nil when the event is valid
local function check_event(ev, ep, bcarries, bctx)
    if type(ev) ~= "table" or ev[1] ~= nil then
        return "invalid_event"
    end

    local t = ev.type
    if t == nil then
        if ep == "batch" or ep == "import" then
            return "invalid_type"
        end
        ev.type = ep                    -- what ngx_consent inserts too
        t = ep
    elseif not TYPES[t] or (SINGLE[ep] and t ~= ep) then
        return "invalid_type"
    end

    if not valid_id(ev.userId) and not valid_id(ev.anonymousId) then
        return "no_user_anon_id"
    end

    if t == "track" and ev.event == PREF_UPDATED then
        local ctx = ev.context
        if not consent_of(ctx) and bcarries then
            ctx = bctx
        end

        local consent = type(ctx) == "table" and ctx.consent or nil
        local prefs = type(consent) == "table"
                      and consent.categoryPreferences or nil

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


-- the effective integrations value of key k: nil when neither the event
-- nor the batch has it, else whether it leaves the destination on
local function integ(einteg, binteg, k)
    local v
    if einteg ~= nil then
        v = einteg[k]
    end
    if v == nil and binteg ~= nil then
        v = binteg[k]
    end
    if v == nil then
        return nil
    end
    return v ~= false
end


local function read_body()
    req_read_body()
    local body = req_get_body_data()
    if body then
        return body
    end

    local name = req_get_body_file()
    if not name then
        return ""
    end

    local f = io.open(name, "rb")
    if not f then
        return nil
    end
    body = f:read("*a")
    f:close()
    return body
end


return function()
    local method = ngx.req.get_method()
    if method == "OPTIONS" then
        ngx.header["Access-Control-Allow-Origin"] = "*"
        ngx.header["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        return ngx.exit(204)
    end
    if method ~= "POST" then
        return refuse(405, "method_not_allowed", "only POST is accepted")
    end

    local uri = ngx.var.uri
    local slash = find(uri, "/[^/]*$")
    local ep = sub(uri, slash + 1)
    if SINGLE[ep] == nil then
        return refuse(404, "unknown_endpoint", "unknown endpoint")
    end

    local body = read_body()
    if body == nil then
        return reply(500, '{"success":false}')
    end
    if #body > MAX_BODY then
        return refuse(413, "too_large", "request body exceeds "
                                        .. MAX_BODY .. " bytes")
    end

    local req = decode(body)
    if type(req) ~= "table" or req[1] ~= nil or byte(body) == 91 then
        return refuse(400, "invalid_json", "invalid JSON")
    end

    local events, env
    if SINGLE[ep] then
        events = { req }
        env = nil
    else
        events = req.batch
        if type(events) ~= "table" or
           (next(events) ~= nil and events[1] == nil)
        then
            return refuse(400, "invalid_json",
                          '"batch" must be an array of events')
        end
        if events[1] == nil then
            return refuse(400, "empty_batch", "batch holds no events")
        end
        if #events > MAX_EVENTS then
            return refuse(400, "too_large",
                          "batch exceeds " .. MAX_EVENTS .. " events")
        end
        env = req
    end

    local bctx, binteg = nil, nil
    if env then
        bctx = env.context
        binteg = env.integrations
        if type(binteg) ~= "table" then
            binteg = nil
        end
    end
    local bcarries, bprefs = consent_of(bctx)

    local nevents = #events
    local out = new_tab(NDESTS, 0)
    local nout = new_tab(NDESTS, 0)
    for d = 1, NDESTS do
        out[d] = new_tab(nevents, 0)
        nout[d] = 0
    end

    local rejected

    for i = 1, nevents do
        local ev = events[i]
        local code = check_event(ev, ep, bcarries, bctx)

        if code then
            rejected = rejected or {}
            rejected[#rejected + 1] = { index = i - 1, code = code,
                                        message = MESSAGES[code] }
        else
            local carries, prefs = consent_of(ev.context)
            if not carries then
                carries, prefs = bcarries, bprefs
            end

            local einteg = ev.integrations
            if type(einteg) ~= "table" then
                einteg = nil
            end
            local all = integ(einteg, binteg, "All")

            for d = 1, NDESTS do
                local dest = DESTS[d]
                local pass = true

                if carries then
                    local cats = dest.cats
                    for c = 1, #cats do
                        if prefs == nil or prefs[cats[c]] ~= true then
                            pass = false
                            break
                        end
                    end
                end

                if pass then
                    local on = integ(einteg, binteg, dest.name)
                    if on == false or (on == nil and all == false) then
                        pass = false
                    end
                end

                if pass then
                    local n = nout[d] + 1
                    nout[d] = n
                    out[d][n] = ev
                end
            end
        end
    end

    if rejected and #rejected == nevents then
        if SINGLE[ep] then
            local code = rejected[1].code
            return refuse(400, code, MESSAGES[code])
        end
        return reply(400, encode({ success = false, code = "no_valid_events",
                                   rejected = rejected }))
    end

    -- one body per destination with events: {"batch":[...]} plus the
    -- batch's other top-level members
    local reqs, names = {}, {}
    for d = 1, NDESTS do
        if nout[d] > 0 then
            local b = { batch = out[d] }
            if env then
                for k, v in pairs(env) do
                    if k ~= "batch" then
                        b[k] = v
                    end
                end
            end
            local n = #reqs + 1
            reqs[n] = { DESTS[d].uri, { method = HTTP_POST, body = encode(b) } }
            names[n] = DESTS[d].name
        end
    end

    local failed
    if reqs[1] then
        local res = { capture_multi(reqs) }
        for n = 1, #res do
            local st = res[n].status
            if st < 200 or st > 299 then
                failed = failed or {}
                failed[#failed + 1] = names[n]
            end
        end
    end

    if failed then
        return reply(502, encode({ success = false, code = "delivery_failed",
                                   failed = failed }))
    end

    if rejected then
        return reply(200, encode({ success = true, rejected = rejected }))
    end

    return reply(200, '{"success":true}')
end
