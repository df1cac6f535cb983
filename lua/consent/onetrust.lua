-- consent.onetrust: OneTrust consent -> categoryPreferences.
--
-- Sources (see docs/lua.md for the exact formats):
--   * the OptanonConsent cookie: URL-encoded query-string-like text whose
--     "groups" parameter is "C0001:1,C0002:0,..." (1 = consented);
--   * OneTrust's active-groups string sent in the event (default path
--     context.consent.onetrust.activeGroups): ",C0001,C0003," lists the
--     consented groups; a JSON array of group ids is accepted too.
--
-- local onetrust = require "consent.onetrust"
-- return onetrust.new{ all_groups = {"C0001","C0002","C0003","C0004"} }

local util = require "consent.util"

local type, pairs, ipairs = type, pairs, ipairs
local find, sub = string.find, string.sub

local M = {}

-- Parses the "groups" value "C0001:1,C0002:0". Returns the group -> bool
-- table, or false and a reason. An entry counts as consented only when
-- its value is exactly "1"; an entry without a value counts as false.
local function parse_groups(s)
    local out = {}
    for entry in s:gmatch("[^,]+") do
        entry = entry:match("^%s*(.-)%s*$")
        if entry ~= "" then
            local colon = find(entry, ":", 1, true)
            local id = colon and sub(entry, 1, colon - 1) or entry
            if id == "" then return false, "empty group id in groups" end
            util.set_and(out, id, colon ~= nil and sub(entry, colon + 1) == "1")
        end
    end
    return out
end

-- The event's active groups: ",C0001,C0003," or ["C0001","C0003"].
local function parse_active(v)
    local out = {}
    if type(v) == "string" then
        for _, id in ipairs(util.split(v, ",")) do out[id] = true end
        return out
    end
    if type(v) == "table" then
        for i, id in ipairs(v) do
            if type(id) ~= "string" then
                return false, "activeGroups element " .. i .. " is not a string"
            end
            if id ~= "" then out[id] = true end
        end
        for k in pairs(v) do
            if type(k) ~= "number" then
                return false, "activeGroups is an object, not a list"
            end
        end
        return out
    end
    return false, "activeGroups is not a string or a list"
end

function M.new(opts)
    opts = opts or {}
    local c = util.common(opts, "onetrust")
    local cookie_name = opts.cookie
    if cookie_name == nil then cookie_name = "OptanonConsent" end
    local event_path = opts.event_path
    if event_path == nil then
        event_path = "context.consent.onetrust.activeGroups"
    end
    event_path = util.path(event_path)
    local all_groups = util.list(opts.all_groups, "all_groups")
    local rename = opts.rename or {}
    assert(type(rename) == "table", "onetrust: rename must be a table")
    local keep_unknown = opts.keep_unknown
    if keep_unknown == nil then keep_unknown = true end

    local known = {}
    for _, g in ipairs(all_groups) do known[g] = true end
    for g in pairs(rename) do known[g] = true end

    -- group table -> category table: rename, drop, fill all_groups
    local function finish_groups(groups)
        local out = {}
        for g, v in pairs(groups) do
            local id = rename[g]
            if id == nil then
                id = (keep_unknown or known[g]) and g or false
            end
            if id then util.set_and(out, id, v) end
        end
        for _, g in ipairs(all_groups) do
            local id = rename[g]
            if id == nil then id = g end
            if id and out[id] == nil then out[id] = false end
        end
        return out
    end

    -- cookie text -> group table (read-only, cached) | nil | false, reason
    local cookie_groups = util.memo1(function(v)
        if find(v, "%", 1, true) == nil and find(v, "=", 1, true) == nil then
            return false, "OptanonConsent cookie is not query-string-like"
        end
        local groups = util.query_param(v, "groups")
        if groups == nil then return nil end        -- no signal in it
        return parse_groups(groups)
    end)
    local active_groups = util.memo1(parse_active)

    local function from_cookie_value(v)
        local t, err = cookie_groups(v)
        if not t then return t, err end
        return finish_groups(t)
    end

    local function deny_table()
        return finish_groups({})
    end

    local function from_event(ev)
        local v = util.get(ev, event_path)
        if v == nil then return nil end
        local t, e
        if type(v) == "string" then
            t, e = active_groups(v)
        else
            t, e = parse_active(v)
        end
        if not t then return false, e end
        return finish_groups(t)
    end

    local function from_cookie(_, req)
        local v = util.cookie(req, cookie_name)
        if v == nil then return nil end
        return from_cookie_value(v)
    end

    return util.hook(c, from_event, from_cookie, deny_table)
end

M.parse_groups = parse_groups
M.parse_active = parse_active

return M
