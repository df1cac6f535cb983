-- consent.gpp
local H = ...
local gpp = require "consent.gpp"
local util = require "consent.util"

-- ---------------------------------------------------------------------------
-- An independent GPP encoder (never shares code with lua/consent/): bits
-- as '0'/'1' text, zero-padded to 6, one base64url character per 6 bits.

local URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

local function b64(bits)
    bits = bits .. string.rep("0", (6 - #bits % 6) % 6)
    local out = {}
    for i = 1, #bits, 6 do
        local n = tonumber(bits:sub(i, i + 5), 2)
        out[#out + 1] = URL:sub(n + 1, n + 1)
    end
    return table.concat(out)
end

local function int(v, n)
    return table.concat(H.bitwriter():int(v, n).bits)
end

-- Fibonacci code word, by the specification's four steps
local function fib(n)
    local f = { 1, 2 }
    while f[#f] + f[#f - 1] <= n do f[#f + 1] = f[#f] + f[#f - 1] end
    local word = {}
    for i = 1, #f do word[i] = "0" end
    local top = 0
    while n > 0 do
        local i = #f
        while f[i] > n do i = i - 1 end
        word[i] = "1"
        if i > top then top = i end
        n = n - f[i]
    end
    return table.concat(word, "", 1, top) .. "1"
end

-- header for sorted ids, grouping runs
local function header(ids)
    local ranges = {}
    for _, id in ipairs(ids) do
        local last = ranges[#ranges]
        if last and last[2] + 1 == id then last[2] = id
        else ranges[#ranges + 1] = { id, id } end
    end
    local bits = { int(3, 6), int(1, 6), int(#ranges, 12) }
    local prev = 0
    for _, r in ipairs(ranges) do
        if r[1] == r[2] then
            bits[#bits + 1] = "0" .. fib(r[1] - prev)
        else
            bits[#bits + 1] = "1" .. fib(r[1] - prev) .. fib(r[2] - r[1])
        end
        prev = r[2]
    end
    return b64(table.concat(bits))
end

-- field layouts typed from the specifications' tables
local USNAT2 = { { "Version", 6 }, { "SharingNotice", 2 },
    { "SaleOptOutNotice", 2 }, { "SharingOptOutNotice", 2 },
    { "TargetedAdvertisingOptOutNotice", 2 },
    { "SensitiveDataProcessingOptOutNotice", 2 },
    { "SensitiveDataLimitUseNotice", 2 }, { "SaleOptOut", 2 },
    { "SharingOptOut", 2 }, { "TargetedAdvertisingOptOut", 2 },
    { "SensitiveDataProcessing", 2, 16 },
    { "KnownChildSensitiveDataConsents", 2, 3 },
    { "PersonalDataConsents", 2 }, { "MspaCoveredTransaction", 2 },
    { "MspaOptOutOptionMode", 2 }, { "MspaServiceProviderMode", 2 } }
local USCA = { { "Version", 6 }, { "SaleOptOutNotice", 2 },
    { "SharingOptOutNotice", 2 }, { "SensitiveDataLimitUseNotice", 2 },
    { "SaleOptOut", 2 }, { "SharingOptOut", 2 },
    { "SensitiveDataProcessing", 2, 9 },
    { "KnownChildSensitiveDataConsents", 2, 2 },
    { "PersonalDataConsents", 2 }, { "MspaCoveredTransaction", 2 },
    { "MspaOptOutOptionMode", 2 }, { "MspaServiceProviderMode", 2 } }
local USVA = { { "Version", 6 }, { "SharingNotice", 2 },
    { "SaleOptOutNotice", 2 }, { "TargetedAdvertisingOptOutNotice", 2 },
    { "SaleOptOut", 2 }, { "TargetedAdvertisingOptOut", 2 },
    { "SensitiveDataProcessing", 2, 8 },
    { "KnownChildSensitiveDataConsents", 2 },
    { "MspaCoveredTransaction", 2 }, { "MspaOptOutOptionMode", 2 },
    { "MspaServiceProviderMode", 2 } }
local LAYOUT = { [7] = USNAT2, [8] = USCA, [9] = USVA }

-- section text from field values (absent fields 0, Version 1 / 2)
local function section(id, f, gpc)
    local bits = {}
    for _, fd in ipairs(LAYOUT[id]) do
        local name, n, count = fd[1], fd[2], fd[3]
        local v = f[name]
        if name == "Version" and v == nil then v = (id == 7) and 2 or 1 end
        if count then
            for i = 1, count do bits[#bits + 1] = int((v or {})[i] or 0, n) end
        else
            bits[#bits + 1] = int(v or 0, n)
        end
    end
    local s = b64(table.concat(bits))
    if gpc ~= nil then s = s .. "." .. b64("01" .. (gpc and "1" or "0")) end
    return s
end

-- full string from { {id, fields, gpc}, ... } (ids ascending)
local function gpp_string(list)
    local ids, parts = {}, {}
    for i, x in ipairs(list) do
        ids[i] = x[1]
        parts[i] = type(x[2]) == "string" and x[2] or section(x[1], x[2], x[3])
    end
    return header(ids) .. "~" .. table.concat(parts, "~")
end

local TRACK = [[{"type":"track","event":"Order Completed","userId":"u1"}]]

-- ---------------------------------------------------------------------------
-- Core specification examples

H.test("Fibonacci code words of the specification's table", function()
    local want = { "11", "011", "0011", "1011", "00011", "10011", "01011" }
    for n = 1, 7 do
        H.eq(fib(n), want[n], "encoder: " .. n)
        local r = util.bits(b64(want[n]))
        H.eq(r:fibonacci(), n, "decoder: " .. want[n])
    end
    local r = util.bits(b64(fib(1000) .. fib(1) .. fib(4181)))
    H.eq({ r:fibonacci(), r:fibonacci(), r:fibonacci() }, { 1000, 1, 4181 },
         "three in a row")
    H.eq(util.bits(b64(string.rep("0", 50) .. "11")):fibonacci(), nil,
         "longer than 40 bits: nil")
    H.eq(util.bits("A"):fibonacci(), nil, "no terminating 11: nil")
end)

H.test("header examples (Consent String Specification)", function()
    -- Example 1, DBABM: 000011 000001 | 000000 000001 | 0 011 (00)
    --   type 3, version 1, 1 item, single, Fibonacci 011 = 2: [2]
    -- Example 2, DBACNY: 000011 000001 | 000000 000010 | 0 011 | 0 1011
    --   (0) : 2 items, 2, then offset 1011 = 4: 2 + 4 = 6
    -- Example 3, DBABjw: 000011 000001 | 000000 000001 | 1 00011 11 (0000)
    --   1 item, a group: start 00011 = 5, length 11 = 1: 5..6
    local tc = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
    local d = gpp.decode("DBABM~" .. tc)
    H.eq(d.version, 1, "version 1")
    H.eq(d.ids, { 2 }, "example 1: EU TCF v2")
    H.eq(d.sections[2].raw, tc, "TCF section kept as text")
    H.eq(gpp.decode("DBACNY~" .. tc .. "~1YNN").ids, { 2, 6 },
         "example 2: TCF and US Privacy")
    H.eq(gpp.decode("DBABjw~" .. tc .. "~1YNN").ids, { 5, 6 },
         "example 3: Canadian TCF and US Privacy, as a range")
    -- the URL example's header has a trailing padding character
    H.eq(gpp.decode("DBACNYA~" .. tc .. "~1YNN").ids, { 2, 6 },
         "DBACNYA (URL example)")
    H.eq(header{ 2 }, "DBABM", "our encoder agrees (1)")
    H.eq(header{ 2, 6 }, "DBACNY", "our encoder agrees (2)")
    H.eq(header{ 5, 6 }, "DBABjw", "our encoder agrees (3)")
end)

-- ---------------------------------------------------------------------------
-- Strings from IAB Tech Lab's reference library (iabgpp-es, tests of
-- UsNat and GppModel), decoded by hand below.

H.test("usnat CVVVkkkkkpFY.YA, field by field", function()
    -- C = 000010: Version 2. V V V = 010101 x3: the nine Int(2) fields
    -- SharingNotice .. TargetedAdvertisingOptOut are all 01 = 1.
    -- k = 36 = 100100: 2,1,0; five k = SensitiveDataProcessing 1-15
    -- (2,1,0 repeated); p = 41 = 10|1001: SDP 16 = 2, KnownChild 1, 2 =
    -- 2, 1; F = 5 = 00|0101: KnownChild 3 = 0, PersonalDataConsents 1,
    -- MspaCoveredTransaction 1; Y = 24 = 01|10|00: OptOutOptionMode 1,
    -- ServiceProviderMode 2, padding. Sub-section YA = 01|1|000 000:
    -- SubsectionType 1 (GPC), Gpc 1.
    local d = gpp.decode_section(7, "CVVVkkkkkpFY.YA")
    local f = d.fields
    H.eq(f.Version, 2, "Version")
    for _, k in ipairs{ "SharingNotice", "SaleOptOutNotice",
            "SharingOptOutNotice", "TargetedAdvertisingOptOutNotice",
            "SensitiveDataProcessingOptOutNotice",
            "SensitiveDataLimitUseNotice", "SaleOptOut", "SharingOptOut",
            "TargetedAdvertisingOptOut" } do
        H.eq(f[k], 1, k)
    end
    H.eq(f.SensitiveDataProcessing,
         { 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 2 }, "SDP")
    H.eq(f.KnownChildSensitiveDataConsents, { 2, 1, 0 }, "KnownChild")
    H.eq({ f.PersonalDataConsents, f.MspaCoveredTransaction,
           f.MspaOptOutOptionMode, f.MspaServiceProviderMode },
         { 1, 1, 1, 2 }, "PersonalData, MSPA fields")
    H.eq(d.gpc, true, "GPC sub-section: true")
end)

H.test("usnat version 1 layout (60 bits)", function()
    -- BAAAVVVVUQA: B Version 1; AAA: nine Int(2) = 0; VVVV = 24 bits of
    -- 01: SDP 1..12 = 1; U = 0101|00: KnownChild 1, 1 and
    -- PersonalDataConsents 0; Q = 01|00|00: Covered 1, modes 0; A pad
    local f = gpp.decode_section(7, "BAAAVVVVUQA.QA").fields
    H.eq(f.Version, 1, "Version 1")
    H.eq(f.SensitiveDataProcessing, { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
         "12 sensitive data entries")
    H.eq(f.KnownChildSensitiveDataConsents, { 1, 1 }, "2 child entries")
    H.eq({ f.PersonalDataConsents, f.MspaCoveredTransaction },
         { 0, 1 }, "then PersonalData 0, Covered 1")
    -- CVQqAAAACg: 10 characters, version field 2, read with the version
    -- 1 layout as the reference library does. V = 01 01 01, Q = 01 00 00,
    -- q = 42 = 10 10 10: SaleOptOut, SharingOptOut, TA opt-out = 2;
    -- AAAA: SDP 0; C = 0000|10: child 0, 0, PersonalData 2; g = 32 =
    -- 10|00|00: Covered 2, modes 0
    f = gpp.decode_section(7, "CVQqAAAACg").fields
    H.eq({ f.SharingNotice, f.SaleOptOutNotice, f.SharingOptOutNotice,
           f.TargetedAdvertisingOptOutNotice,
           f.SensitiveDataProcessingOptOutNotice },
         { 1, 1, 1, 1, 0 }, "notices")
    H.eq({ f.SaleOptOut, f.SharingOptOut, f.TargetedAdvertisingOptOut },
         { 2, 2, 2 }, "did not opt out")
    H.eq(#f.SensitiveDataProcessing, 12, "12 entries")
    H.eq({ f.PersonalDataConsents, f.MspaCoveredTransaction },
         { 2, 2 }, "PersonalData 2, Covered 2")
    -- CAAAVVVVVVRA: version 2 layout, SDP 16 x 1 (VVVVV + 01 of R),
    -- R = 17 = 01|0101: child 1, 1; A... child 3 from R's last bits
    f = gpp.decode_section(7, "CAAAVVVVVVRA.QA").fields
    H.eq(f.SensitiveDataProcessing,
         { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, "v2: 16 x 1")
    H.eq(f.KnownChildSensitiveDataConsents, { 1, 1, 1 }, "v2: 3 x 1")
end)

-- every section the reference library encodes, with defaults
local ALL = "DBACOcGA~CPSG_8APSG_8ANwAAAENAAFgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA" ..
    "~BPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1---" ..
    "~BAAAAAAAAABA.QA~BAAAAABA.QA~BAAAABA~BAAAAEA.QA~BAAAAAQA~BAAAAAEA.QA" ..
    "~BAAAAABA~BAAAAABA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAABAA.QA" ..
    "~BAAAAAQA.QA~BAAAAAQA.QA~BAAAAABA.QA~BAAAAAAAQA.QA~BAAAAAQA.QA" ..
    "~BAAAAAQA.QA~BQAA.QA~BQAA.AAA~BQAA.AAA~BQAA.AAA"

H.test("all sections 7-27 (reference library defaults)", function()
    -- header DBACOcGA: D B type 3, version 1; A C: 2 items; O = 0|011|10:
    -- single id 2, then a group: offset 0 + c's 011 = 0011 = 3 -> 5,
    -- length c's 100 + G's 00011 = 1000 0011 = F2 + F8 = 1 + 21 = 22:
    -- 5..27
    local d = assert(gpp.decode(ALL))
    local want = { 2 }
    for id = 5, 27 do want[#want + 1] = id end
    H.eq(d.ids, want, "ids 2, 5..27")
    H.eq(d.sections[6].raw, "1---", "US Privacy kept as text")
    -- The library writes MspaCoveredTransaction = 1 and every other
    -- field 0; Covered lands at the bit its layout gives, e.g. usca
    -- BAAAAABA: 6 + 5x2 + 9x2 + 2x2 + 2 = 40 bits, B at bits 36-41 =
    -- 0000|01: Covered = 1; usva BAAAABA: 6 + 5x2 + 8x2 + 2 = 34, B at
    -- bits 30-35 = 0000|01. A wrong layout length moves it off.
    local bad = {}
    for id = 7, 27 do
        local s = d.sections[id]
        local f = s.fields
        local ok = s.name == gpp.SECTIONS[id].name
            and (f.Version or f.MspaVersion) == 1
            and (id == 7 or f.MspaCoveredTransaction == 1)
        for k, v in pairs(f) do
            if k ~= "Version" and k ~= "MspaVersion"
               and k ~= "MspaCoveredTransaction" then
                if type(v) == "table" then
                    for _, x in ipairs(v) do ok = ok and x == 0 end
                else
                    ok = ok and v == 0
                end
            end
        end
        if gpp.SECTIONS[id].sub == "gpc" then ok = ok and s.gpc == false end
        if not ok then bad[#bad + 1] = id end
    end
    H.eq(bad, {}, "every section: version 1, Covered 1, the rest 0")
    -- usnat BAAAAAAAAABA: 12 characters, version 1 written in the version
    -- 2 layout (B at bits 60-65 = 0000|01: Covered 1 at bits 64-65)
    H.eq(d.sections[7].fields.MspaCoveredTransaction, 1,
         "usnat: Covered 1 (version 2 layout)")
    H.eq(#d.sections[7].fields.SensitiveDataProcessing, 16, "16 entries")
    H.eq(#d.sections[25].fields.SensitiveDataProcessing, 8,
         "usin: sensitive data sub-section read")
    H.eq(d.sections[24].gpc, false, "usmd: GPC sub-section")
    H.eq({ gpp.SECTIONS[8].name, gpp.SECTIONS[12].name, gpp.SECTIONS[22].name,
           gpp.SECTIONS[27].name }, { "usca", "usct", "ustn", "usri" }, "names")
end)

H.test("encoder round trip: usnat, usca, usva", function()
    local f = { SaleOptOutNotice = 1, SaleOptOut = 1, SharingOptOut = 2,
                SensitiveDataProcessing = { 0, 2, 1 },
                KnownChildSensitiveDataConsents = { 0, 0, 2 },
                MspaCoveredTransaction = 1 }
    local fva = { SaleOptOut = 1, KnownChildSensitiveDataConsents = 2 }
    local d = gpp.decode(gpp_string{ { 7, f, true }, { 8, f, false },
                                     { 9, fva } })
    H.eq(d.ids, { 7, 8, 9 }, "ids")
    H.eq(d.sections[7].fields.SensitiveDataProcessing,
         { 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, "usnat SDP")
    H.eq(d.sections[7].gpc, true, "usnat GPC")
    H.eq(d.sections[8].fields.SharingOptOut, 2, "usca SharingOptOut")
    H.eq(d.sections[8].fields.KnownChildSensitiveDataConsents, { 0, 0 },
         "usca child (2 entries)")
    H.eq(d.sections[9].fields.SaleOptOut, 1, "usva SaleOptOut")
    H.eq(d.sections[9].fields.KnownChildSensitiveDataConsents, 2,
         "usva child (one Int(2))")
    H.eq(d.sections[9].gpc, nil, "usva has no GPC sub-section")
end)

-- ---------------------------------------------------------------------------
-- The hook

local MAP = { sale = "C0004", sharing = "C0004", targeted_advertising = "ads",
              sensitive_data = "C0005", gpc = "C0004",
              known_child = "kids", personal_data = "pd" }
local ALL_TRUE = { C0004 = true, ads = true, C0005 = true, kids = true,
                   pd = true }
local function with(over)
    local t = {}
    for k, v in pairs(ALL_TRUE) do t[k] = v end
    for k, v in pairs(over) do t[k] = v end
    return t
end

H.test("opt-outs map to categories", function()
    local hook = gpp.new(MAP)
    local ev = H.make_ev(TRACK)
    local function cookie(s, sid)
        return H.make_req{ cookie = "__gpp=" .. s ..
                           (sid and ("; __gpp_sid=" .. sid) or "") }
    end
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7, {
            SaleOptOut = 2, SharingOptOut = 2, TargetedAdvertisingOptOut = 2,
            SensitiveDataProcessing = { 2, 2, 0 } } } })), ALL_TRUE,
         "no opt-out: all true")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7, { SaleOptOut = 1 } } })),
         with{ C0004 = false }, "sale opt-out")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7, { SharingOptOut = 1 } } })),
         with{ C0004 = false }, "sharing opt-out")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7,
            { TargetedAdvertisingOptOut = 1 } } })), with{ ads = false },
         "targeted advertising opt-out")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7,
            { SensitiveDataProcessing = { 0, 0, 0, 0, 0, 0, 0, 1 } } } })),
         with{ C0005 = false }, "no consent for precise geolocation (8)")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7,
            { KnownChildSensitiveDataConsents = { 0, 1 } } } })),
         with{ kids = false }, "known child: no consent")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7,
            { PersonalDataConsents = 1 } } })), with{ pd = false },
         "personal data: no consent")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7, {}, true } })),
         with{ C0004 = false }, "GPC sub-section true")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 7, {}, false } })), ALL_TRUE,
         "GPC sub-section false")
    H.eq(H.call(hook, ev, cookie(gpp_string{ { 8, { SaleOptOut = 2 } },
            { 9, { TargetedAdvertisingOptOut = 1 } } })),
         with{ ads = false }, "no gpp_sid: every US section counts")
    local two = gpp_string{ { 8, { SaleOptOut = 2 } },
                            { 9, { TargetedAdvertisingOptOut = 1 } } }
    H.eq(H.call(hook, ev, cookie(two, "8")), ALL_TRUE,
         "__gpp_sid=8: only usca in force")
    H.eq(H.call(hook, ev, cookie(two, "%5B9%5D")), with{ ads = false },
         "__gpp_sid=[9] (percent-encoded)")
    H.eq({ H.call(hook, ev, cookie(two, "-1")) }, {},
         "__gpp_sid=-1: no section applies, no signal")
    H.eq({ H.call(hook, ev, cookie("DBABM~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA")) },
         {}, "TCF only: no US signal")
    H.eq(H.call(hook, ev, cookie(two, "7")),
         { C0004 = false, ads = false, C0005 = false, kids = false,
           pd = false }, "gpp_sid names a section the string lacks: invalid")
    -- the reference library's usnat CVVVkkkkkpFY.YA: opted out of
    -- everything, sensitive data partly without consent, GPC
    H.eq(H.call(hook, ev, cookie("DBABLA~CVVVkkkkkpFY.YA")),
         { C0004 = false, ads = false, C0005 = false, kids = false,
           pd = false }, "CVVVkkkkkpFY.YA")
    H.eq(H.call(gpp.new{ sale = "S", sensitive_data = "D", gpc = "G" }, ev,
                cookie("DBABLA~CVQqAAAACg")), { S = true, D = true, G = true },
         "CVQqAAAACg: did not opt out, no GPC sub-section")
end)

H.test("sources: event, object, sid path, header, prefer", function()
    local opted = gpp_string{ { 7, { SaleOptOut = 1 } } }
    local clear = gpp_string{ { 7, { SaleOptOut = 2 } } }
    local hook = gpp.new{ sale = "C0004" }
    local function ev(ctx)
        return H.make_ev([[{"type":"track","event":"E","userId":"u",
            "context":]] .. ctx .. "}")
    end
    H.eq(H.call(hook, ev([[{"consent":{"gpp":"]] .. opted .. [["}}]]),
                H.make_req{ cookie = "__gpp=" .. clear }), { C0004 = false },
         "event string wins by default")
    H.eq(H.call(gpp.new{ sale = "C0004", prefer = "cookie" },
                ev([[{"consent":{"gpp":"]] .. opted .. [["}}]]),
                H.make_req{ cookie = "__gpp=" .. clear }), { C0004 = true },
         "prefer cookie")
    local two = gpp_string{ { 7, { SaleOptOut = 1 } }, { 8, { SaleOptOut = 2 } } }
    H.eq(H.call(hook, ev([[{"consent":{"gpp":{"gppString":"]] .. two ..
                [[","applicableSections":[8]}}}]]), H.make_req()),
         { C0004 = true }, "PingReturn object: applicableSections [8]")
    H.eq(H.call(hook, ev([[{"gpp_sid":[7],"consent":{"gpp":"]] .. two ..
                [["}}]]), H.make_req()), { C0004 = false }, "context.gpp_sid")
    H.eq(H.call(hook, ev([[{"gpp_sid":"8","consent":{"gpp":"]] .. two ..
                [["}}]]), H.make_req()), { C0004 = true }, "gpp_sid as text")
    H.eq(H.call(gpp.new{ sale = "C0004", event_path = "context.gpp",
                         sid_path = "properties.sid" },
                H.make_ev([[{"type":"track","event":"E","userId":"u",
                  "properties":{"sid":8},"context":{"gpp":"]] .. two .. [["}}]]),
                H.make_req()), { C0004 = true }, "other paths")
    H.eq(H.call(gpp.new{ sale = "C0004", header = "X-GPP",
                         sid_header = "X-GPP-SID" }, H.make_ev(TRACK),
                H.make_req{ headers = { { "X-GPP", two }, { "X-GPP-SID", "8" } } }),
         { C0004 = true }, "headers")
    H.eq({ H.call(hook, H.make_ev(TRACK), H.make_req()) }, {},
         "no signal: unchanged")
    H.eq(H.call(gpp.new{ sale = "C0004", missing = "deny" }, H.make_ev(TRACK),
                H.make_req()), { C0004 = false }, "missing = deny")
    H.eq(H.call(gpp.new{ sale = "C0004", sections = { "usca" } }, H.make_ev(TRACK),
                H.make_req{ cookie = "__gpp=" .. two }), { C0004 = true },
         "sections = {usca}: usnat ignored")
    H.eq(H.call(gpp.new{ sale = "C0004", merge = true },
                H.make_ev([[{"type":"track","event":"E","userId":"u","context":{
                  "consent":{"categoryPreferences":{"C0002":true,"C0004":true}}}}]]),
                H.make_req{ cookie = "__gpp=" .. opted }),
         { C0002 = true, C0004 = false }, "merge")
    local a = H.call(hook, H.make_ev(TRACK), H.make_req{ cookie = "__gpp=" .. clear })
    a.C0004 = false
    H.eq(H.call(hook, H.make_ev(TRACK), H.make_req{ cookie = "__gpp=" .. clear }),
         { C0004 = true }, "cached decode, fresh result")
end)

H.test("malformed strings fail closed", function()
    local hook = gpp.new{ sale = "C0004", gpc = "C0005" }
    local deny = { C0004 = false, C0005 = false }
    local ev = H.make_ev(TRACK)
    local function try(s) return H.call(hook, ev, H.make_req{ cookie = "__gpp=" .. s }) end
    local good = gpp_string{ { 7, {}, true } }
    H.eq(try(good), { C0004 = true, C0005 = false }, "the good one")
    H.eq(try("CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"), deny,
         "a TC string (type 2)")
    H.eq(try("DCABM~x"), deny, "GPP version 2")
    H.eq(try("DBACNY~" .. section(7, {})), deny, "header lists 2, string has 1")
    H.eq(try(header{ 7 } .. "~" .. section(7, {}) .. "~" .. section(8, {})),
         deny, "header lists 1, string has 2")
    H.eq(try(header{ 7 } .. "~" .. section(7, { SaleOptOut = 3 })), deny,
         "an Int(2) holding 3")
    H.eq(try(header{ 7 } .. "~" .. section(7, {}):sub(1, 8)), deny, "truncated")
    H.eq(try(header{ 7 } .. "~" .. section(7, { Version = 3 })), deny,
         "usnat version 3")
    H.eq(try(header{ 8 } .. "~" .. section(8, { Version = 2 })), deny,
         "usca version 2")
    H.eq(try(header{ 9 } .. "~" .. section(9, {}) .. ".QA"), deny,
         "a sub-section usva does not define")
    H.eq(try(header{ 7 } .. "~" .. section(7, {}) .. "." .. b64("101")),
         deny, "sub-section type 2")
    H.eq(try(header{ 7 } .. "~" .. section(7, {}) .. ".QA.QA"), deny,
         "two GPC sub-sections")
    H.eq(try(header{ 7 } .. "~" .. section(7, {}) .. "."), deny,
         "empty sub-section")
    H.eq(try(header{ 7 } .. "~"), deny, "empty section")
    H.eq(try("DB!BM~x"), deny, "bad character in the header")
    H.eq(try("DBABLA~CVV*kkkkkpFY"), deny, "bad character in a section")
    H.eq(try("DBA"), deny, "header truncated")
    H.eq(try("D" .. b64(int(1, 6) .. int(1, 12) .. "1" .. fib(7) ..
             fib(5000))), deny, "a range past section 1000")
    local r, why = H.call(gpp.new{ sale = "C0004", invalid = "reject" }, ev,
                          H.make_req{ cookie = "__gpp=DCABM~x" })
    H.eq({ r, why }, { nil, "gpp: GPP version 2, not 1" }, "invalid = reject")
    H.eq(H.call(hook, H.make_ev([[{"type":"track","event":"E","userId":"u",
             "context":{"consent":{"gpp":42}}}]]), H.make_req()), deny,
         "a number in the event")
    H.eq(H.call(hook, H.make_ev([[{"type":"track","event":"E","userId":"u",
             "context":{"gpp_sid":{"a":1},"consent":{"gpp":"]] .. good .. [["}}}]]),
             H.make_req()), deny, "gpp_sid an object")
    H.eq(H.call(gpp.new{ sale = "C0004", max_length = 10 }, ev,
                H.make_req{ cookie = "__gpp=" .. good }), { C0004 = false },
         "longer than max_length")
end)

H.test("fuzz: random and mutated strings never raise", function()
    math.randomseed(16)
    local hook = gpp.new{ sale = "A", sharing = "A", sensitive_data = "B",
                          gpc = "C", known_child = "D", personal_data = "E",
                          targeted_advertising = "F" }
    local seeds = { ALL, "DBABLA~CVVVkkkkkpFY.YA", "DBACNY~x~1YNN",
                    gpp_string{ { 7, { SaleOptOut = 1 }, true },
                                { 8, {}, false }, { 9, {} } } }
    local chars = URL .. "~.%=+/!"
    local bad, n = 0, 0
    local function check(s, sid)
        n = n + 1
        local req = H.make_req{ cookie = "__gpp=" .. s ..
                                (sid and ("; __gpp_sid=" .. sid) or "") }
        local wrong = H.call_checked(hook, H.make_ev(TRACK), req)
        if wrong then
            bad = bad + 1
            if bad == 1 then H.ok(false, s .. ": " .. wrong) end
        end
    end
    for _ = 1, 1500 do
        local len = math.random(0, 60)
        local t = {}
        for i = 1, len do
            local c = math.random(1, #chars)
            t[i] = chars:sub(c, c)
        end
        check((math.random() < 0.5 and "D" or "") .. table.concat(t))
    end
    for _ = 1, 1500 do
        local s = seeds[math.random(1, #seeds)]
        local p = math.random(1, #s)
        local c = math.random(1, #chars)
        local how = math.random(1, 3)
        if how == 1 then s = s:sub(1, p - 1) .. chars:sub(c, c) .. s:sub(p + 1)
        elseif how == 2 then s = s:sub(1, p)
        else s = s:sub(1, p) .. chars:sub(c, c) .. s:sub(p + 1) end
        check(s, math.random() < 0.3 and tostring(math.random(-1, 30)) or nil)
    end
    H.eq(bad, 0, n .. " strings: no error, only booleans")
end)

H.test("options are checked at load", function()
    H.raises(function() gpp.new{} end, "at least one of the signals", "no signal")
    H.raises(function() gpp.new{ sale = "A", sales = "B" } end,
             "unknown option 'sales'", "typo")
    H.raises(function() gpp.new{ sale = {} } end, "names no category",
             "empty list")
    H.raises(function() gpp.new{ sale = "A", sections = { "tcfeuv2" } } end,
             "not a US section", "sections")
    H.raises(function() gpp.new{ sale = "A", prefer = "x" } end, "prefer",
             "shared options")
end)

H.test("cost", function()
    local hook = gpp.new(MAP)
    local req = H.make_req{ cookie = "__gpp=" .. ALL }
    H.call(hook, H.make_ev(TRACK), req)
    local before = H.max_kinstr
    H.ok(before < 200, "first call under 200k instructions: " .. before .. "k")
end)
