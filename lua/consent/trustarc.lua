-- consent.trustarc: TrustArc (TRUSTe) consent manager -> categoryPreferences.
--
-- TrustArc numbers its consent categories ("buckets") 1..n: 1 = Required,
-- 2 = Functional, 3 = Advertising in the default three-bucket setup.
-- Its cookies:
--   notice_gdpr_prefs     "0,1,2:"          0-based levels before ':'
--                                           (',' or '|' separated; what
--                                           follows ':' is ignored)
--   cmapi_cookie_privacy  "permit 1,2,3"    1-based buckets after
--                         "permit_1|2|3"    "permit" + ' ' or '_'
--                         "permit 1 required"
--   notice_behavior       "implied,eu"      only read with implied = true
-- Bucket n becomes category names[n], default "ta-<n>":
-- notice_gdpr_prefs=0,1:  ->  { ["ta-1"]=true, ["ta-2"]=true, ["ta-3"]=false }

local util = require "consent.util"

local type, pairs, ipairs, tonumber = type, pairs, ipairs, tonumber
local find, sub = string.find, string.sub

local M = {}

local MAX_BUCKET = 64

-- "0,1,2:..." / "0|1|2" -> array of 1-based buckets, or false + reason.
local function parse_levels(list, base)
    local out = {}
    for tok in list:gmatch("[^,|]+") do
        tok = tok:match("^%s*(.-)%s*$")
        if tok ~= "" then
            if not tok:match("^%d+$") then
                return false, "bad level '" .. tok .. "'"
            end
            local n = tonumber(tok) + (1 - base)
            if n < 1 or n > MAX_BUCKET then
                return false, "level " .. tok .. " out of range"
            end
            out[#out + 1] = n
        end
    end
    return out
end

-- notice_gdpr_prefs: levels (0-based) before the first ':'.
local function parse_gdpr_prefs(v)
    if find(v, "%", 1, true) then v = util.url_decode(v) end
    local colon = find(v, ":", 1, true)
    local list = colon and sub(v, 1, colon - 1) or v
    return parse_levels(list, 0)
end

-- cmapi_cookie_privacy: "permit 1,2,3" (1-based), optional trailing word.
local function parse_cmapi(v)
    if find(v, "%", 1, true) then v = util.url_decode(v, true) end
    local list = v:match("^%s*permit[ _]+([%d,| ]+)")
    if not list then return false, "cmapi_cookie_privacy is not 'permit ...'" end
    -- "permit 1 required": the word after the last number is a label
    return parse_levels(list, 1)
end

-- The event's value: a list of 0-based levels or the cookie's text.
local function parse_event(v)
    if type(v) == "string" then return parse_gdpr_prefs(v) end
    if type(v) == "table" then
        local out = {}
        for i, x in ipairs(v) do
            x = type(x) == "number" and math.tointeger(x) or nil  -- 2.0 ok
            if x == nil then
                return false, "consentDecision element " .. i ..
                              " is not an integer"
            end
            if x < 0 or x >= MAX_BUCKET then
                return false, "level " .. x .. " out of range"
            end
            out[#out + 1] = x + 1
        end
        return out
    end
    return false, "consentDecision is not a list or a string"
end

function M.new(opts)
    opts = opts or {}
    local c = util.common(opts, "trustarc")
    local cookie_name = opts.cookie
    if cookie_name == nil then cookie_name = "notice_gdpr_prefs" end
    local cmapi_name = opts.cmapi_cookie
    if cmapi_name == nil then cmapi_name = "cmapi_cookie_privacy" end
    local behavior_name = opts.behavior_cookie
    if behavior_name == nil then behavior_name = "notice_behavior" end
    local implied = opts.implied and true or false
    local event_path = opts.event_path
    if event_path == nil then
        event_path = "context.consent.trustarc.consentDecision"
    end
    event_path = util.path(event_path)
    local prefix = opts.prefix or "ta-"
    local names = opts.names or {}
    assert(type(names) == "table", "trustarc: names must be a list")
    for _, name in pairs(names) do
        assert(type(name) == "string", "trustarc: names must be strings")
    end
    local buckets = opts.buckets or math.max(3, #names)
    assert(math.type(buckets) == "integer" and buckets >= 1 and
           buckets <= MAX_BUCKET, "trustarc: buckets must be 1..64")

    local cat = {}
    for n = 1, MAX_BUCKET do cat[n] = names[n] or (prefix .. n) end

    -- granted buckets -> preferences; buckets 1..`buckets` not granted are
    -- false; buckets sharing a name must all be granted
    local function to_prefs(list)
        local granted, top = {}, buckets
        for _, n in ipairs(list) do
            granted[n] = true
            if n > top then top = n end
        end
        local out = {}
        for n = 1, top do
            if n <= buckets or granted[n] then
                util.set_and(out, cat[n], granted[n] == true)
            end
        end
        return out
    end

    local function deny_table() return to_prefs({}) end

    local function from_cookies(_, req)
        local v = util.cookie(req, cookie_name)
        local list, err
        if v then
            list, err = parse_gdpr_prefs(v)
        else
            v = util.cookie(req, cmapi_name)
            if v then
                list, err = parse_cmapi(v)
            elseif implied then
                local b = util.cookie(req, behavior_name)
                if b and b:match("^%s*implied") then
                    list = {}
                    for n = 1, buckets do list[n] = n end
                end
            end
        end
        if list == nil then return nil end
        if list == false then return false, err end
        return to_prefs(list)
    end

    local function from_event(ev)
        local v = util.get(ev, event_path)
        if v == nil then return nil end
        local list, e = parse_event(v)
        if not list then return false, e end
        return to_prefs(list)
    end

    return util.hook(c, from_event, from_cookies, deny_table)
end

M.parse_gdpr_prefs = parse_gdpr_prefs
M.parse_cmapi = parse_cmapi

return M
