-- consent.gcm: Google Consent Mode (v2) states -> categoryPreferences.
--
-- Consent types (Google, "Consent mode reference", support.google.com
-- answer 13802165, and the gtag.js consent API): ad_storage,
-- analytics_storage, ad_user_data, ad_personalization, plus the privacy
-- types functionality_storage, personalization_storage,
-- security_storage; each "granted" or "denied".
--
-- Three input forms, from the event (default context.consent.gcm) or an
-- optional first-party cookie:
--   * a state object as the page passed it to gtag('consent', ...):
--     {"ad_storage":"granted","analytics_storage":"denied",...};
--   * a gcs value "G1xy" (a parameter of Google's measurement
--     requests): x = ad_storage, y = analytics_storage, '1' granted,
--     '0' denied: G100, G110, G101, G111. Any other character, or
--     another length, is not documented: malformed (fail closed).
--   * a gcd value, e.g. "11t1t1t1t5": '1', then for ad_storage,
--     analytics_storage, ad_user_data, ad_personalization in that order
--     a digit and a letter, then a trailing part.
--   Neither parameter is specified in the Google documentation found for
--   this work (the consent mode reference and the gtag.js consent API
--   define the types and "granted"/"denied", not the wire encoding). The
--   gcs reading is the one every published debugging guide agrees on
--   (e.g. adriennevermorel.com "Consent Mode debugging: network
--   parameters", conma.lat "What G100, G111 ... mean"). The gcd letters
--   follow the measurement community's decoder, the analytics-debugger
--   "Google Consent Parser" GTM template (github.com/analytics-debugger/
--   gtm-template-server-side-google-consent-parser), which reads a letter
--   as a base64url digit 0-9a-zA-Z-_ holding the default state in bits
--   3-2 and the update state in bits 1-0, 1 = not set, 2 = denied, 3 =
--   granted; the nine letters below are the ones such guides list. One
--   guide (adriennevermorel.com) reads "l" as "default denied, no
--   update" instead of "not set": with the default unset = "denied" both
--   readings deny.
--        l  no default, no update      p  default denied
--        q  default denied, update denied
--        t  default granted            r  default denied, update granted
--        m  update denied (no default) n  update granted (no default)
--        u  default granted, update denied
--        v  default granted, update granted
--   The update wins over the default. Any other letter is undocumented
--   and makes the value malformed (fail closed). The digits between the
--   letters and the trailing part are undocumented and not read (they
--   must be digits, and the trailing part letters or digits).
--
-- local gcm = require "consent.gcm"
-- return gcm.new{ ad_storage = "C0004", ad_user_data = "C0004",
--                 ad_personalization = "C0004", analytics_storage = "C0002" }
-- A category is true only when every state mapped to it is granted.

local util = require "consent.util"

local type, pairs, ipairs = type, pairs, ipairs
local byte, find, sub, match = string.byte, string.find, string.sub,
                               string.match

local M = {}

local TYPES = {
    ad_storage = true, analytics_storage = true, ad_user_data = true,
    ad_personalization = true, functionality_storage = true,
    personalization_storage = true, security_storage = true,
}
M.TYPES = TYPES

-- the order of the four types in gcd
local GCD_ORDER = { "ad_storage", "analytics_storage", "ad_user_data",
                    "ad_personalization" }

-- gcd letter -> { default, update }: true granted, false denied,
-- nil not set (see the table above)
local GCD_LETTERS = {
    l = {},
    p = { false },           q = { false, false },
    t = { true },            r = { false, true },
    m = { nil, false },      n = { nil, true },
    u = { true, false },     v = { true, true },
}
M.GCD_LETTERS = GCD_LETTERS

-- "G1xy" -> { ad_storage = bool, analytics_storage = bool } | nil, err
local function decode_gcs(s)
    if #s ~= 4 or sub(s, 1, 2) ~= "G1" then
        return nil, "gcs value is not G1xy"
    end
    local out = {}
    for i, t in ipairs{ "ad_storage", "analytics_storage" } do
        local c = byte(s, 2 + i)
        if c == 49 then out[t] = true              -- '1'
        elseif c == 48 then out[t] = false         -- '0'
        else
            return nil, "gcs character '" .. sub(s, 2 + i, 2 + i) ..
                   "' is not documented"
        end
    end
    return out
end

-- gcd -> { [type] = bool } (types not set are absent) | nil, err
local function decode_gcd(s)
    local d1, l1, d2, l2, d3, l3, d4, l4, rest =
        match(s, "^1(.)(.)(.)(.)(.)(.)(.)(.)(.*)$")
    if not d1 then return nil, "gcd value too short" end
    if not (find(d1 .. d2 .. d3 .. d4, "^%d+$") and
            find(rest, "^%w+$")) then
        return nil, "gcd value is not '1', four digit-letter pairs and a " ..
               "trailing part"
    end
    local out = {}
    for i, letter in ipairs{ l1, l2, l3, l4 } do
        local st = GCD_LETTERS[letter]
        if st == nil then
            return nil, "gcd letter '" .. letter .. "' is not documented"
        end
        local v = st[2]
        if v == nil then v = st[1] end
        if v ~= nil then out[GCD_ORDER[i]] = v end
    end
    return out
end

-- a gtag consent-state object -> { [type] = bool } | nil, err
local function decode_object(obj)
    local out = {}
    for k, v in pairs(obj) do
        if type(k) ~= "string" then
            return nil, "consent state is a list, not an object"
        end
        if TYPES[k] then
            if v == "granted" then out[k] = true
            elseif v == "denied" then out[k] = false
            elseif v ~= util.null then
                return nil, k .. " is neither \"granted\" nor \"denied\""
            end
        end
    end
    return out
end

-- Any of the three forms -> states | nil, err. A string starting with
-- 'G' is gcs, other strings gcd; an object with a gcd or gcs member is
-- that value, otherwise a state object.
local function decode(v)
    if type(v) == "string" then
        if byte(v, 1) == 71 then return decode_gcs(v) end   -- 'G'
        return decode_gcd(v)
    end
    if type(v) == "table" then
        if type(v.gcd) == "string" then return decode_gcd(v.gcd) end
        if type(v.gcs) == "string" then return decode_gcs(v.gcs) end
        return decode_object(v)
    end
    return nil, "consent mode value is not a string or an object"
end

local OPTION_KEYS = { cookie = true, event_path = true, unset = true,
    prefer = true, missing = true, invalid = true, merge = true }

function M.new(opts)
    opts = opts or {}
    local c = util.common(opts, "gcm")
    local cookie_name = opts.cookie or false
    local event_path = opts.event_path
    if event_path == nil then event_path = "context.consent.gcm" end
    event_path = util.path(event_path)
    local unset = opts.unset or "denied"
    assert(unset == "denied" or unset == "granted",
           "gcm: unset must be denied or granted")

    -- consent type -> list of categories
    local map, cats = util.category_map(opts, TYPES, OPTION_KEYS, "gcm",
        "consent types ad_storage, analytics_storage, ad_user_data, " ..
        "ad_personalization, ...")

    local function to_prefs(states)
        local out = util.fill(cats, true)
        for t, list in pairs(map) do
            local v = states[t]
            if v == nil then v = (unset == "granted") end
            if not v then
                for _, id in ipairs(list) do out[id] = false end
            end
        end
        return out
    end

    local function deny_table() return util.fill(cats, false) end

    local function from_value(v)
        local states, err = decode(v)
        if not states then return false, err end
        return to_prefs(states)
    end

    local function from_event(ev)
        local v = util.get(ev, event_path)
        if v == nil or v == "" then return nil end
        return from_value(v)
    end

    -- the cookie's states are cached (read-only); the result is fresh
    local decode_cookie = util.memo1(function(v)
        if find(v, "%", 1, true) then v = util.url_decode(v) end
        if byte(v, 1) == 123 then                    -- '{': a JSON object
            local obj = util.json_decode(v)
            if type(obj) ~= "table" then
                return nil, "cookie is not a JSON object"
            end
            v = obj
        end
        return decode(v)
    end)

    local function from_cookie(_, req)
        local v = util.cookie(req, cookie_name)
        if v == nil then return nil end
        local states, err = decode_cookie(v)
        if not states then return false, err end
        return to_prefs(states)
    end

    return util.hook(c, from_event, from_cookie, deny_table)
end

M.decode = decode
M.decode_gcs = decode_gcs
M.decode_gcd = decode_gcd

return M
