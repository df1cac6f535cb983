-- consent.gpp: IAB Global Privacy Platform string (US sections) ->
-- categoryPreferences.
--
-- Sources used (IAB Tech Lab, github.com/InteractiveAdvertisingBureau/
-- Global-Privacy-Platform, commit b27beb4 of 2025-12-17):
--   * Core/Consent String Specification.md: the string is sections
--     joined with '~', the header first; a section's sub-sections are
--     joined with '.'; each part is base64url (A-Z a-z 0-9 - _, no
--     padding), 6 bits a character, most significant first, zero-padded.
--     Header: Type Int(6) = 3 | Version Int(6) = 1 | Sections
--     Range(Fibonacci): Int(12) count, then per item IsGroup 1 bit,
--     Fibonacci offset from the last id seen (0 at first), and for a
--     group a Fibonacci length (ids start .. start + length).
--     Header examples DBABM (2), DBACNY (2, 6), DBABjw (5, 6).
--   * Sections/Section Information.md: section ids 7 usnat ... 27 usri.
--   * Sections/US-National/...US National Technical Specification.md
--     (version 2, Oct 2024) and the same file at commit 606b99e (version
--     1, Dec 2022: SensitiveDataProcessing 12 entries, KnownChild 2).
--   * Sections/US-States/<XX>/... Technical Specification.md, one per
--     state: the field tables copied into LAYOUTS below.
-- Int(2) fields: 0 not applicable, 1 opted out / no consent, 2 did not
-- opt out / consent; 3 is undefined and makes the string malformed.
-- The GPC sub-section is SubsectionType Int(2) = 1 | Gpc Boolean (1 =
-- true; the core spec's "0=true, 1=false" table contradicts every
-- section table and is not followed).
--
-- Sections 24-27 (usmd, usin, usky, usri; "public comment" drafts of
-- Oct 2025) also list a "Section Header" (SectionID Int(6), Version
-- Int(6), SubSections Range(Fibonacci)) without saying where it is
-- encoded. IAB Tech Lab's reference library iabgpp-es (commit 79b0295,
-- "Add support for Maryland (24), Indiana (25), Kentucky (26), Rhode
-- Island (27)") encodes no such header: the core sub-section starts with
-- MspaVersion. We follow the library; a first field other than 1 makes
-- the section malformed (fail closed).
--
-- local gpp = require "consent.gpp"
-- return gpp.new{
--     sale = "C0004", sharing = "C0004", targeted_advertising = "C0004",
--     gpc = "C0004", sensitive_data = "C0005",
-- }
-- A category is true unless one of the signals mapped to it is an
-- opt-out (or "no consent") in one of the sections in force.

local util = require "consent.util"

local type, pairs, ipairs, tonumber = type, pairs, ipairs, tonumber
local find, gmatch = string.find, string.gmatch

local M = {}

-- ---------------------------------------------------------------------------
-- Section layouts: { name, bits } or { name, bits, count } (a list of
-- `count` Int(bits), the specifications' "N-Bitfield(bits, count)").

-- The layout shared by the state sections 9-23: Version, the Int(2)
-- notices and opt-outs `head`, SensitiveDataProcessing(2, sensitive),
-- KnownChildSensitiveDataConsents (a list of `child` Int(2), or one
-- Int(2) when child is 0), AdditionalDataProcessingConsent when `adpc`,
-- then the three MSPA fields. `sub` as in SECTIONS below.
local function us_state(name, head, sensitive, child, adpc, sub, child_name)
    local f = { { "Version", 6 } }
    for _, h in ipairs(head) do f[#f + 1] = { h, 2 } end
    f[#f + 1] = { "SensitiveDataProcessing", 2, sensitive }
    child_name = child_name or "KnownChildSensitiveDataConsents"
    f[#f + 1] = child > 0 and { child_name, 2, child } or { child_name, 2 }
    if adpc then f[#f + 1] = { "AdditionalDataProcessingConsent", 2 } end
    f[#f + 1] = { "MspaCoveredTransaction", 2 }
    f[#f + 1] = { "MspaOptOutOptionMode", 2 }
    f[#f + 1] = { "MspaServiceProviderMode", 2 }
    return { name = name, core = f, sub = sub }
end

local SHARING = { "SharingNotice", "SaleOptOutNotice",
    "TargetedAdvertisingOptOutNotice", "SaleOptOut",
    "TargetedAdvertisingOptOut" }
local PROCESSING = { "ProcessingNotice", "SaleOptOutNotice",
    "TargetedAdvertisingOptOutNotice", "SaleOptOut",
    "TargetedAdvertisingOptOut" }

local function usnat(sensitive, child)
    return {
        { "Version", 6 }, { "SharingNotice", 2 }, { "SaleOptOutNotice", 2 },
        { "SharingOptOutNotice", 2 }, { "TargetedAdvertisingOptOutNotice", 2 },
        { "SensitiveDataProcessingOptOutNotice", 2 },
        { "SensitiveDataLimitUseNotice", 2 }, { "SaleOptOut", 2 },
        { "SharingOptOut", 2 }, { "TargetedAdvertisingOptOut", 2 },
        { "SensitiveDataProcessing", 2, sensitive },
        { "KnownChildSensitiveDataConsents", 2, child },
        { "PersonalDataConsents", 2 }, { "MspaCoveredTransaction", 2 },
        { "MspaOptOutOptionMode", 2 }, { "MspaServiceProviderMode", 2 },
    }
end

local function mspa_core(extra)         -- sections 24-27 (see above)
    local f = { { "MspaVersion", 6 }, { "MspaCoveredTransaction", 2 },
        { "MspaMode", 2 }, { "ProcessingNotice", 2 },
        { "SaleOptOutNotice", 2 }, { "TargetedAdvertisingOptOutNotice", 2 },
        { "SaleOptOut", 2 }, { "TargetedAdvertisingOptOut", 2 } }
    for _, name in ipairs(extra) do f[#f + 1] = { name, 2 } end
    return f
end

-- sub: "gpc" = optional GPC sub-sections (SubsectionType 1);
-- "sensitive" = optional sub-section SensitiveDataProcessing(2, 8)
-- without a type field (25-27); nil = no sub-section defined.
local SECTIONS = {
    [7] = { name = "usnat", sub = "gpc",
            versions = { [1] = usnat(12, 2), [2] = usnat(16, 3) } },
    [8] = { name = "usca", sub = "gpc", core = {
        { "Version", 6 }, { "SaleOptOutNotice", 2 },
        { "SharingOptOutNotice", 2 }, { "SensitiveDataLimitUseNotice", 2 },
        { "SaleOptOut", 2 }, { "SharingOptOut", 2 },
        { "SensitiveDataProcessing", 2, 9 },
        { "KnownChildSensitiveDataConsents", 2, 2 },
        { "PersonalDataConsents", 2 }, { "MspaCoveredTransaction", 2 },
        { "MspaOptOutOptionMode", 2 }, { "MspaServiceProviderMode", 2 } } },
    --        name    notices, opt-outs  SDP child ADPC  sub-section
    [9]  = us_state("usva", SHARING,    8,  0, false),
    [10] = us_state("usco", SHARING,    7,  0, false, "gpc"),
    [11] = us_state("usut", { "SharingNotice", "SaleOptOutNotice",
               "TargetedAdvertisingOptOutNotice",
               "SensitiveDataProcessingOptOutNotice", "SaleOptOut",
               "TargetedAdvertisingOptOut" }, 8, 0, false),
    [12] = us_state("usct", SHARING,    8,  3, false, "gpc"),
    [13] = us_state("usfl", PROCESSING, 8,  3, true),
    [14] = us_state("usmt", SHARING,    8,  3, true,  "gpc"),
    [15] = us_state("usor", PROCESSING, 11, 3, true,  "gpc"),
    [16] = us_state("ustx", PROCESSING, 8,  0, true,  "gpc"),
    [17] = us_state("usde", PROCESSING, 9,  5, true,  "gpc"),
    [18] = us_state("usia", { "ProcessingNotice", "SaleOptOutNotice",
               "TargetedAdvertisingOptOutNotice", "SensitiveDataOptOutNotice",
               "SaleOptOut", "TargetedAdvertisingOptOut" }, 8, 0, false,
               "gpc"),
    [19] = us_state("usne", PROCESSING, 8,  0, true,  "gpc"),
    [20] = us_state("usnh", PROCESSING, 8,  3, true,  "gpc"),
    [21] = us_state("usnj", PROCESSING, 10, 5, true,  "gpc"),
    -- the Tennessee table spells it KnownChildSensitiveDataConsent
    -- (singular) and its summary says "Section ID 17" (Delaware's; the
    -- section list gives 22)
    [22] = us_state("ustn", PROCESSING, 8,  0, true,  "gpc",
                    "KnownChildSensitiveDataConsent"),
    [23] = us_state("usmn", PROCESSING, 8,  0, true,  "gpc"),
    [24] = { name = "usmd", sub = "gpc",
             core = mspa_core{ "AdditionalDataProcessingConsent" } },
    [25] = { name = "usin", sub = "sensitive",
             core = mspa_core{ "KnownChildSensitiveDataConsents",
                               "AdditionalDataProcessingConsent" } },
    [26] = { name = "usky", sub = "sensitive",
             core = mspa_core{ "KnownChildSensitiveDataConsents",
                               "AdditionalDataProcessingConsent" } },
    [27] = { name = "usri", sub = "sensitive",
             core = mspa_core{ "KnownChildSensitiveDataConsents",
                               "AdditionalDataProcessingConsent" } },
}
M.SECTIONS = SECTIONS

local BY_NAME = {}
for id, s in pairs(SECTIONS) do BY_NAME[s.name] = id end

local MAX_SECTION_ID = 1000      -- far above any id the platform assigns

-- Reads the fields of `layout` from bit reader r into out. Returns out,
-- or nil and a reason. An Int(2) holding 3 (undefined) is malformed.
local function read_fields(r, layout, out, what)
    for _, f in ipairs(layout) do
        local name, bits, count = f[1], f[2], f[3]
        local list = {}
        for i = 1, count or 1 do
            local v = r:read(bits)
            if v == nil then return nil, what .. " truncated" end
            if bits == 2 and v == 3 then
                return nil, what .. ": " .. name .. " holds 3"
            end
            list[i] = v
        end
        out[name] = count and list or list[1]
    end
    return out
end

local GPC_LAYOUT = { { "SubsectionType", 2 }, { "Gpc", 1 } }
local SENSITIVE_LAYOUT = { { "SensitiveDataProcessing", 2, 8 } }

-- Decodes one US section's text (sub-sections joined with '.').
-- Returns { id, name, fields = {...}, gpc = true|false|nil } or nil, err.
local function decode_section(id, text)
    local spec = SECTIONS[id]
    local what = spec.name
    local parts, n = {}, 0
    for p in gmatch(text .. ".", "([^.]*)%.") do
        n = n + 1
        parts[n] = p
    end
    local r, err = util.bits(parts[1])
    if not r then return nil, what .. ": " .. err end
    local fields = {}
    local layout = spec.core
    if spec.versions then
        local v = r:read(6)
        if v == nil then return nil, what .. " truncated" end
        if not spec.versions[v] then
            return nil, what .. " version " .. v .. " is not defined"
        end
        -- The layout follows the length, as in IAB's reference library
        -- (iabgpp-es UsNatCoreSegment): 60 or 66 bits (10 or 11
        -- characters) is the version 1 layout, 70 bits and more the
        -- version 2 one, whatever the Version field says; that library
        -- has written both versions in both layouts.
        layout = spec.versions[(r.len < 70) and 1 or 2]
        r.pos = 0
    end
    local ok, e = read_fields(r, layout, fields, what)
    if not ok then return nil, e end
    local version = fields.Version or fields.MspaVersion
    if not spec.versions and version ~= 1 then
        return nil, what .. " version " .. version .. " is not defined"
    end
    local out = { id = id, name = what, fields = fields }
    if n > 1 and spec.sub == nil then
        return nil, what .. " has no sub-sections"
    end
    if n > 2 and spec.sub == "sensitive" then
        return nil, what .. " has more than one sub-section"
    end
    for i = 2, n do
        local sr, serr = util.bits(parts[i])
        if not sr then return nil, what .. " sub-section: " .. serr end
        if spec.sub == "gpc" then
            local g, gerr = read_fields(sr, GPC_LAYOUT, {}, what .. " GPC")
            if not g then return nil, gerr end
            if g.SubsectionType ~= 1 then
                return nil, what .. " sub-section type " ..
                       g.SubsectionType .. " is not GPC"
            end
            if out.gpc ~= nil then
                return nil, what .. " has two GPC sub-sections"
            end
            out.gpc = (g.Gpc == 1)
        else
            local s, serr2 = read_fields(sr, SENSITIVE_LAYOUT, fields,
                                         what .. " sensitive data")
            if not s then return nil, serr2 end
        end
    end
    return out
end

-- Reads the header's Range(Fibonacci) of section ids. At most `limit`
-- ids (the number of sections that follow) are accepted.
local function read_ids(r, limit)
    local count = r:read(12)
    if count == nil then return nil, "GPP header truncated" end
    local ids, n, last = {}, 0, 0
    for _ = 1, count do
        local group = r:read(1)
        local offset = group and r:fibonacci()
        if offset == nil then return nil, "GPP header truncated" end
        local first = last + offset
        local final = first
        if group == 1 then
            local len = r:fibonacci()
            if len == nil then return nil, "GPP header truncated" end
            final = first + len
        end
        if final > MAX_SECTION_ID then
            return nil, "GPP header: section id over " .. MAX_SECTION_ID
        end
        if n + (final - first + 1) > limit then
            return nil, "GPP header lists more sections than the string has"
        end
        for id = first, final do
            n = n + 1
            ids[n] = id
        end
        last = final
    end
    return ids
end

-- Decodes a GPP string. Returns
--   { version = 1, ids = { id, ... },              -- in string order
--     sections = { [id] = decoded US section | { id, raw = text } } }
-- or nil and a reason. Every US section (7-27) is decoded; the others
-- are kept as text.
local function decode(s, max_length)
    if type(s) ~= "string" then return nil, "GPP string is not a string" end
    if max_length and #s > max_length then
        return nil, "GPP string longer than " .. max_length
    end
    if find(s, "%", 1, true) then s = util.url_decode(s) end
    local parts, n = {}, 0
    for p in gmatch(s .. "~", "([^~]*)~") do
        n = n + 1
        parts[n] = p
    end
    local r, err = util.bits(parts[1])
    if not r then return nil, "GPP header: " .. err end
    local typ, version = r:read(6), r:read(6)
    if version == nil then return nil, "GPP header truncated" end
    if typ ~= 3 then return nil, "GPP header type " .. typ .. ", not 3" end
    if version ~= 1 then
        return nil, "GPP version " .. version .. ", not 1"
    end
    local ids, ierr = read_ids(r, n - 1)
    if not ids then return nil, ierr end
    if #ids ~= n - 1 then
        return nil, "GPP header lists " .. #ids .. " sections, the string has "
               .. (n - 1)
    end
    local sections = {}
    for i, id in ipairs(ids) do
        local text = parts[i + 1]
        if SECTIONS[id] then
            local d, derr = decode_section(id, text)
            if not d then return nil, derr end
            sections[id] = d
        else
            sections[id] = { id = id, raw = text }
        end
    end
    return { version = version, ids = ids, sections = sections }
end

-- ---------------------------------------------------------------------------
-- Signals: opt-outs read from a decoded US section. Each returns true
-- when the section says the user opted out (or gave no consent).

local function is1(v) return v == 1 end

local function any1(v)
    if type(v) == "table" then
        for _, x in ipairs(v) do if x == 1 then return true end end
        return false
    end
    return v == 1
end

local SIGNALS = {
    sale = function(f) return is1(f.SaleOptOut) end,
    sharing = function(f) return is1(f.SharingOptOut) end,
    targeted_advertising = function(f)
        return is1(f.TargetedAdvertisingOptOut)
    end,
    sensitive_data = function(f) return any1(f.SensitiveDataProcessing) end,
    known_child = function(f)
        return any1(f.KnownChildSensitiveDataConsents)
            or any1(f.KnownChildSensitiveDataConsent)
    end,
    personal_data = function(f)
        return is1(f.PersonalDataConsents)
            or is1(f.AdditionalDataProcessingConsent)
    end,
    gpc = function(_, s) return s.gpc == true end,
}
M.SIGNALS = SIGNALS

-- Section ids from a gpp_sid value: a number, an array of numbers, or
-- text holding numbers ("7", "7,8", "[7]", "_7_"). Returns a list, or
-- nil when v is of another type or holds no number.
local function parse_sid(v)
    if type(v) == "number" then return { v } end
    local out = {}
    if type(v) == "table" then
        for _, x in ipairs(v) do
            if type(x) == "string" then x = tonumber(x) end
            if type(x) ~= "number" then return nil end
            out[#out + 1] = x
        end
    elseif type(v) == "string" then
        for d in gmatch(v, "%-?%d+") do out[#out + 1] = tonumber(d) end
    else
        return nil
    end
    if #out == 0 then return nil end
    return out
end
M.parse_sid = parse_sid

local OPTION_KEYS = { cookie = true, event_path = true, sid_path = true,
    sid_cookie = true, header = true, sid_header = true, sections = true,
    max_length = true, prefer = true, missing = true, invalid = true,
    merge = true }

function M.new(opts)
    opts = opts or {}
    local c = util.common(opts, "gpp")
    local function opt(k, default)
        if opts[k] == nil then return default end
        return opts[k]
    end
    local cookie_name = opt("cookie", "__gpp")
    local sid_cookie = opt("sid_cookie", "__gpp_sid")
    local header = opt("header", false)
    local sid_header = opt("sid_header", false)
    if header then header = header:lower() end
    if sid_header then sid_header = sid_header:lower() end
    local event_path = util.path(opt("event_path", "context.consent.gpp"))
    local sid_path = util.path(opt("sid_path", "context.gpp_sid"))
    local max_length = opts.max_length or 8192

    -- which sections may decide (default: every US section)
    local allowed = {}
    if opts.sections == nil then
        for id in pairs(SECTIONS) do allowed[id] = true end
    else
        for _, x in ipairs(util.list(
                type(opts.sections) == "table" and opts.sections or
                { opts.sections }, "sections")) do
            local id = BY_NAME[x] or tonumber(x)
            assert(SECTIONS[id], "gpp: sections: '" .. x ..
                   "' is not a US section (usnat, usca, ... or 7..27)")
            allowed[id] = true
        end
    end

    -- signal -> list of categories
    local map, cats = util.category_map(opts, SIGNALS, OPTION_KEYS, "gpp",
        "signals sale, sharing, targeted_advertising, sensitive_data, " ..
        "known_child, personal_data, gpc")

    local function deny_table() return util.fill(cats, false) end

    -- decoded string + section ids in force -> preferences; nil when no
    -- US section is in force, false + reason when inconsistent
    local function to_prefs(d, sid)
        local use = {}
        if sid then
            for _, id in ipairs(sid) do
                if id <= 0 then return nil end      -- [-1]: none applies
                if allowed[id] then
                    if not d.sections[id] then
                        return false, "gpp_sid names section " .. id ..
                               ", which the string does not hold"
                    end
                    use[#use + 1] = d.sections[id]
                end
            end
        else
            for _, id in ipairs(d.ids) do
                if allowed[id] then use[#use + 1] = d.sections[id] end
            end
        end
        if #use == 0 then return nil end
        local out = util.fill(cats, true)
        for signal, list in pairs(map) do
            local check = SIGNALS[signal]
            for _, s in ipairs(use) do
                if check(s.fields, s) then
                    for _, id in ipairs(list) do out[id] = false end
                    break
                end
            end
        end
        return out
    end

    local function decoder()
        return util.memo1(function(s) return decode(s, max_length) end)
    end
    local decode_event, decode_request = decoder(), decoder()

    local function from_string(s, sid_value, dec)
        if s == "" then return nil end
        local d, err = dec(s)
        if not d then return false, err end
        local sid
        if sid_value ~= nil then
            sid = parse_sid(sid_value)
            if not sid then return false, "gpp_sid is not a list of ids" end
        end
        return to_prefs(d, sid)
    end

    local function from_event(ev)
        local v = util.get(ev, event_path)
        if v == nil then return nil end
        local sid
        if type(v) == "table" then
            -- the CMP API's PingReturn shape: gppString, applicableSections
            sid = v.applicableSections
            if sid == util.null then sid = nil end
            v = v.gppString
            if v == nil or v == util.null then return nil end
        end
        if type(v) ~= "string" then
            return false, "GPP string is not a string"
        end
        if sid == nil then sid = util.get(ev, sid_path) end
        return from_string(v, sid, decode_event)
    end

    local function from_request(_, req)
        local v = header and req.headers and req.headers[header] or nil
        local sid = sid_header and req.headers and req.headers[sid_header]
                    or nil
        if v == nil then v = util.cookie(req, cookie_name) end
        if v == nil then return nil end
        if sid == nil then
            sid = util.cookie(req, sid_cookie)
            if sid and find(sid, "%", 1, true) then
                sid = util.url_decode(sid)
            end
        end
        return from_string(v, sid, decode_request)
    end

    return util.hook(c, from_event, from_request, deny_table)
end

M.decode = decode
M.decode_section = decode_section

return M
