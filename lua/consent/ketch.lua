-- consent.ketch: Ketch purposes consent -> categoryPreferences.
--
-- Sources (see docs/lua.md for the exact formats):
--   * the _ketch_consent_v1_ cookie: base64 (standard or URL-safe
--     alphabet, padding optional, possibly URL-encoded as %3D) of a JSON
--     object {"analytics":{"status":"granted"},"advertising":{"status":
--     "denied"}, ...};
--   * the event, default path context.consent.ketch.purposes:
--     {"analytics":true} or {"analytics":{"allowed":"true"}} (or the
--     cookie's {"status":"granted"} form).
-- Purposes become categories through the `purposes` map; several
-- purposes mapped to one category must all be granted.

local util = require "consent.util"

local type, pairs, ipairs = type, pairs, ipairs
local find = string.find

local M = {}

local GRANTED = { [true] = true, ["true"] = true, granted = true }

-- One purpose's value -> true (granted) / false (anything else).
local function granted(v)
    if type(v) == "table" then
        if v.status ~= nil then return GRANTED[v.status] == true end
        if v.allowed ~= nil then return GRANTED[v.allowed] == true end
        return false
    end
    return GRANTED[v] == true
end

-- A decoded purposes object -> purpose -> bool, or false + reason.
local function read_purposes(obj)
    if type(obj) ~= "table" then
        return false, "purposes is not an object"
    end
    local out = {}
    for k, v in pairs(obj) do
        if type(k) ~= "string" then
            return false, "purposes is a list, not an object"
        end
        out[k] = granted(v)
    end
    return out
end

-- The cookie's text -> purpose -> bool, or false + reason.
local function parse_cookie(v)
    if find(v, "%", 1, true) then v = util.url_decode(v) end
    local raw, err = util.base64_decode(v)
    if not raw then return false, "cookie is not base64: " .. err end
    local obj = util.json_decode(raw)
    if obj == nil then return false, "cookie is not JSON" end
    return read_purposes(obj)
end

function M.new(opts)
    opts = opts or {}
    local c = util.common(opts, "ketch")
    local cookie_name = opts.cookie
    if cookie_name == nil then cookie_name = "_ketch_consent_v1_" end
    local event_path = opts.event_path
    if event_path == nil then
        event_path = "context.consent.ketch.purposes"
    end
    event_path = util.path(event_path)
    local map = {}
    for purpose, cats in pairs(opts.purposes or {}) do
        map[purpose] = util.list(cats, "purposes['" .. purpose .. "']")
    end
    local keep_unmapped = opts.keep_unmapped
    if keep_unmapped == nil then keep_unmapped = true end

    local function to_prefs(purposes)
        local out = {}
        for p, v in pairs(purposes) do
            local cats = map[p]
            if cats then
                for _, id in ipairs(cats) do util.set_and(out, id, v) end
            elseif keep_unmapped then
                util.set_and(out, p, v)
            end
        end
        -- a mapped purpose the signal does not mention is not granted
        for p, cats in pairs(map) do
            if purposes[p] == nil then
                for _, id in ipairs(cats) do out[id] = false end
            end
        end
        return out
    end

    local function deny_table() return to_prefs({}) end

    local function from_event(ev)
        local v = util.get(ev, event_path)
        if v == nil then return nil end
        local t, e = read_purposes(v)
        if not t then return false, e end
        return to_prefs(t)
    end

    local cookie_purposes = util.memo1(parse_cookie)   -- read-only results

    local function from_cookie(_, req)
        local v = util.cookie(req, cookie_name)
        if v == nil then return nil end
        local t, e = cookie_purposes(v)
        if not t then return false, e end
        return to_prefs(t)
    end

    return util.hook(c, from_event, from_cookie, deny_table)
end

M.parse_cookie = parse_cookie
M.read_purposes = read_purposes

return M
