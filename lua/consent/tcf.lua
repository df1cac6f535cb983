-- consent.tcf: IAB TCF v2 TC string -> categoryPreferences.
--
-- The TC string comes from a cookie (default euconsent-v2) or from the
-- event (default path context.consent.tcf.tcString). Only the core
-- segment (the text before the first '.') is read: base64url, bits most
-- significant first:
--   Version 6 (must be 2) | Created 36 | LastUpdated 36 | CmpId 12 |
--   CmpVersion 12 | ConsentScreen 6 | ConsentLanguage 12 |
--   VendorListVersion 12 | TcfPolicyVersion 6 | IsServiceSpecific 1 |
--   UseNonStandardTexts 1 | SpecialFeatureOptIns 12 |
--   PurposesConsent 24 (bit 152 = purpose 1) | PurposesLITransparency 24 |
--   PurposeOneTreatment 1 | PublisherCC 12 |
--   MaxVendorId 16 | IsRangeEncoding 1 | vendor bitfield or ranges ...
--
-- local tcf = require "consent.tcf"
-- return tcf.new{ categories = {
--     C0002 = { 1, 7, 8, 9, 10 },                     -- purposes
--     C0004 = { purposes = { 1, 3, 4 }, vendors = { 755 } },
-- } }
-- A category is true only if ALL its purposes (and vendors) consent.

local util = require "consent.util"

local type, pairs, ipairs = type, pairs, ipairs
local find, sub = string.find, string.sub

local M = {}

-- bit offsets in the core segment
local OFF_CMP_ID    = 78
local OFF_VLV       = 120
local OFF_POLICY    = 132
local OFF_PURPOSES  = 152
local OFF_VENDORS   = 213
local CORE_MIN_BITS = 213      -- up to and including PublisherCC

-- Purposes a vendor may process on legitimate interest under TCF 2.2
-- (never 1, and no longer 3, 4, 5, 6).
local LI_ALLOWED = { [2] = true, [7] = true, [8] = true, [9] = true,
                     [10] = true, [11] = true }

-- Decodes the core segment of a TC string. Returns a table
--   { version, cmp_id, vendor_list_version, policy_version,
--     purposes = {[p] = true...}, li = {[p] = true...},
--     max_vendor_id, vendor_bitfield | vendor_ranges (with want_vendors) }
-- or nil and a reason.
local function decode(tc, want_vendors, max_length)
    if type(tc) ~= "string" then return nil, "TC string is not a string" end
    if max_length and #tc > max_length then
        return nil, "TC string longer than " .. max_length
    end
    if find(tc, "%", 1, true) then tc = util.url_decode(tc) end
    local dot = find(tc, ".", 1, true)
    local core = dot and sub(tc, 1, dot - 1) or tc
    local r, err = util.bits(core)
    if not r then return nil, "TC string: " .. err end
    local out = {}
    out.version = r:read(6)
    if out.version == nil then return nil, "TC string too short" end
    if out.version ~= 2 then
        return nil, "TC string version " .. out.version .. ", not 2"
    end
    if r.len < CORE_MIN_BITS then return nil, "TC string too short" end
    r.pos = OFF_CMP_ID;  out.cmp_id = r:read(12)
    r.pos = OFF_VLV;     out.vendor_list_version = r:read(12)
    r.pos = OFF_POLICY;  out.policy_version = r:read(6)
    local purposes, li = {}, {}
    r.pos = OFF_PURPOSES
    local bits = r:read(24)
    for p = 1, 24 do
        if (bits >> (24 - p)) & 1 == 1 then purposes[p] = true end
    end
    bits = r:read(24)
    for p = 1, 24 do
        if (bits >> (24 - p)) & 1 == 1 then li[p] = true end
    end
    out.purposes, out.li = purposes, li
    if not want_vendors then return out end

    -- vendor consent section
    r.pos = OFF_VENDORS
    local max_id = r:read(16)
    local range = r:read(1)
    if max_id == nil or range == nil then
        return nil, "TC string truncated in vendor section"
    end
    if range == 0 then
        local start = r.pos
        if not r:skip(max_id) then
            return nil, "TC string truncated in vendor bitfield"
        end
        out.vendor_bitfield = { reader = r, start = start, max = max_id }
    else
        local n = r:read(12)
        if n == nil then return nil, "TC string truncated in vendor ranges" end
        local ranges = {}
        for i = 1, n do
            local a = r:read(17)             -- IsARange 1 | StartOrOnlyId 16
            if a == nil then
                return nil, "TC string truncated in vendor ranges"
            end
            local b
            if a >= 65536 then               -- IsARange: EndVendorId 16
                a = a - 65536
                b = r:read(16)
                if b == nil then
                    return nil, "TC string truncated in vendor ranges"
                end
            else
                b = a
            end
            if a < 1 or b < a or b > max_id then
                return nil, "TC string has a bad vendor range"
            end
            ranges[i] = { a, b }
        end
        out.vendor_ranges = ranges
    end
    out.max_vendor_id = max_id
    return out
end

-- Whether vendor id has consent in a decoded string (decode(tc, true)).
local function vendor_consent(d, id)
    if id < 1 or id > d.max_vendor_id then return false end
    local bf = d.vendor_bitfield
    if bf then
        return bf.reader:bit_at(bf.start + id - 1) == 1
    end
    for _, rg in ipairs(d.vendor_ranges) do
        if id >= rg[1] and id <= rg[2] then return true end
    end
    return false
end

function M.new(opts)
    opts = opts or {}
    local c = util.common(opts, "tcf")
    local cookie_name = opts.cookie
    if cookie_name == nil then cookie_name = "euconsent-v2" end
    local event_path = opts.event_path
    if event_path == nil then event_path = "context.consent.tcf.tcString" end
    event_path = util.path(event_path)
    local use_li = opts.legitimate_interest and true or false
    local max_length = opts.max_length or 4096

    assert(type(opts.categories) == "table",
           "tcf: categories = { id = {purposes...}, ... } is required")
    local cats, want_vendors = {}, false
    for id, spec in pairs(opts.categories) do
        assert(type(id) == "string", "tcf: category ids must be strings")
        assert(type(spec) == "table", "tcf: categories['" .. id ..
               "'] must be a list of purposes or {purposes=..., vendors=...}")
        local purposes = spec.purposes or spec
        local vendors = spec.vendors or {}
        local p, v = {}, {}
        for i, x in ipairs(purposes) do
            assert(math.type(x) == "integer" and x >= 1 and x <= 24,
                   "tcf: purposes must be integers 1..24")
            p[i] = x
        end
        for i, x in ipairs(vendors) do
            assert(math.type(x) == "integer" and x >= 1 and x <= 65535,
                   "tcf: vendors must be integers 1..65535")
            v[i] = x
            want_vendors = true
        end
        assert(#p + #v > 0, "tcf: categories['" .. id .. "'] is empty")
        cats[id] = { purposes = p, vendors = v }
    end

    local function to_prefs(d)
        local out = {}
        for id, spec in pairs(cats) do
            local ok = true
            for _, p in ipairs(spec.purposes) do
                if not (d.purposes[p] or
                        (use_li and LI_ALLOWED[p] and d.li[p])) then
                    ok = false
                    break
                end
            end
            if ok then
                for _, v in ipairs(spec.vendors) do
                    if not vendor_consent(d, v) then ok = false break end
                end
            end
            out[id] = ok
        end
        return out
    end

    local function deny_table() return util.fill(cats, false) end

    -- decoded strings are cached (one per source) and only read
    local function decoder()
        return util.memo1(function(s)
            return decode(s, want_vendors, max_length)
        end)
    end
    local decode_event, decode_cookie = decoder(), decoder()

    local function from_string(s, dec)
        if s == "" then return nil end
        local d, err = dec(s)
        if not d then return false, err end
        return to_prefs(d)
    end

    local function from_event(ev)
        local v = util.get(ev, event_path)
        if v == nil then return nil end
        if type(v) ~= "string" then
            return false, "tcString is not a string"
        end
        return from_string(v, decode_event)
    end

    local function from_cookie(_, req)
        local v = util.cookie(req, cookie_name)
        if v == nil then return nil end
        return from_string(v, decode_cookie)
    end

    return util.hook(c, from_event, from_cookie, deny_table)
end

M.decode = decode
M.vendor_consent = vendor_consent

return M
