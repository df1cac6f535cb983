-- consent.rudderstack: RudderStack's context.consentManagement ->
-- categoryPreferences.
--
--   "context": { "consentManagement": {
--       "provider": "oneTrust" | "ketch" | "iubenda" | "custom",
--       "allowedConsentIds": ["C0001", "C0002"],
--       "deniedConsentIds":  ["C0004"],
--       "resolutionStrategy": "and" | "or" } }
--
-- mode = "strict" (default): allowed ids -> true, denied ids -> false
--   (an id in both lists is false); ids in neither list are absent, i.e.
--   not consented under our routing rule.
-- mode = "rudderstack": RudderStack's own decision, which only looks at
--   deniedConsentIds: no denied id -> nil (event left as is, as
--   RudderStack filters nothing); otherwise every id of `categories`
--   (and every allowed id) that is not denied -> true, denied -> false.
--
-- resolutionStrategy "or" (a destination gets the event if ANY of its ids
-- is consented) cannot be expressed per category, since our routing rule
-- requires ALL categories of a destination. Map such a destination to a
-- group: groups = { ["ads-any"] = { "C0003", "C0004" } } adds category
-- "ads-any", true when any member is consented under "or", all under
-- "and".

local util = require "consent.util"

local type, pairs, ipairs = type, pairs, ipairs

local M = {}

local STRATEGY = { ["and"] = true, ["or"] = true }

-- A JSON list of ids -> array without empty ids, or false + reason.
-- nil/null -> {}.
local function id_list(v, what)
    if v == nil or v == util.null then return {} end
    if type(v) ~= "table" then return false, what .. " is not a list" end
    local out = {}
    for k, x in pairs(v) do
        if type(k) ~= "number" then return false, what .. " is not a list" end
        if type(x) ~= "string" then
            return false, what .. " holds a non-string"
        end
    end
    for _, x in ipairs(v) do
        if x ~= "" then out[#out + 1] = x end     -- RudderStack drops ""
    end
    return out
end

function M.new(opts)
    opts = opts or {}
    assert(type(opts) == "table", "rudderstack.new: options must be a table")
    local c = util.common({ missing = opts.missing, invalid = opts.invalid,
                            merge = opts.merge }, "rudderstack")
    local path = util.path(opts.path or "context.consentManagement")
    local mode = opts.mode or "strict"
    assert(mode == "strict" or mode == "rudderstack",
           "rudderstack: mode must be strict or rudderstack")
    local strategy = opts.strategy or "event"
    assert(strategy == "event" or STRATEGY[strategy],
           "rudderstack: strategy must be event, and or or")
    local custom_strategy = opts.custom_strategy or "and"
    assert(STRATEGY[custom_strategy],
           "rudderstack: custom_strategy must be and or or")
    local categories = util.list(opts.categories, "categories")
    local providers
    if opts.providers then
        providers = {}
        for _, p in ipairs(util.list(opts.providers, "providers")) do
            providers[p] = true
        end
    end
    local groups = {}
    for id, members in pairs(opts.groups or {}) do
        assert(type(id) == "string", "rudderstack: group ids must be strings")
        groups[id] = util.list(members, "groups['" .. id .. "']")
        assert(#groups[id] > 0, "rudderstack: group '" .. id .. "' is empty")
    end
    assert(mode == "strict" or #categories > 0,
           "rudderstack: mode = rudderstack needs categories = {...}")

    local function deny_table()
        local out = {}
        for _, id in ipairs(categories) do out[id] = false end
        for id in pairs(groups) do out[id] = false end
        return out
    end

    local function from_event(ev)
        local cm = util.get(ev, path)
        if cm == nil then return nil end
        if type(cm) ~= "table" then
            return false, "consentManagement is not an object"
        end
        if providers and not providers[cm.provider] then return nil end
        local allowed, e1 = id_list(cm.allowedConsentIds, "allowedConsentIds")
        if not allowed then return false, e1 end
        local denied, e2 = id_list(cm.deniedConsentIds, "deniedConsentIds")
        if not denied then return false, e2 end

        local strat = strategy
        if strat == "event" then
            if cm.provider == "custom" then
                -- RudderStack takes the custom provider's strategy from
                -- the destination's settings, not from the event
                strat = custom_strategy
            else
                strat = cm.resolutionStrategy
                if strat == nil or strat == util.null then strat = "and" end
                if not STRATEGY[strat] then
                    return false, "resolutionStrategy is not and/or"
                end
            end
        end

        local out = {}
        local is_denied = {}
        for _, id in ipairs(denied) do is_denied[id] = true end
        if mode == "rudderstack" then
            if #denied == 0 then return "unchanged" end
            for _, id in ipairs(categories) do out[id] = not is_denied[id] end
            for _, id in ipairs(allowed) do out[id] = not is_denied[id] end
        else
            for _, id in ipairs(allowed) do out[id] = true end
        end
        for _, id in ipairs(denied) do out[id] = false end

        -- a member counts as consented when allowed (strict) or when not
        -- denied (rudderstack mode, as RudderStack decides)
        local rs = mode == "rudderstack"
        for id, members in pairs(groups) do
            local v
            if strat == "or" then
                v = false
                for _, m in ipairs(members) do
                    local ok
                    if rs then ok = not is_denied[m] else ok = out[m] == true end
                    if ok then v = true break end
                end
            else
                v = true
                for _, m in ipairs(members) do
                    local ok
                    if rs then ok = not is_denied[m] else ok = out[m] == true end
                    if not ok then v = false break end
                end
            end
            out[id] = v
        end
        return out
    end

    local hook = {}

    function hook.event(ev, req)
        local r, err = from_event(ev)
        if r == "unchanged" then return nil end
        return util.finish(c, ev, r, err, deny_table)
    end

    return hook
end

return M
