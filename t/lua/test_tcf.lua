-- consent.tcf
local H = ...
local tcf = require "consent.tcf"

local function set(list)
    local s = {}
    for _, x in ipairs(list) do s[x] = true end
    return s
end

-- ---------------------------------------------------------------------------
-- Published example strings (from the GDPR::IAB::TCFv2 Perl distribution's
-- test suite, t/01-parse.t), with the expectations re-derived by hand.
--
-- PUB1 = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oC..."
-- Each base64url character holds 6 bits; bit b lives in character b // 6
-- (0-based) at offset b % 6 from its most significant bit.
--   Version, bits 0-5: char 0 'C' = 2 = 000010             -> version 2
--   CmpId, bits 78-89: char 13 'A' = 000000, char 14 'V' = 21 = 010101
--                                                           -> CmpId 21
--   VendorListVersion, bits 120-131: char 20 'A' = 000000,
--                     char 21 'X' = 23 = 010111            -> 23
--   PurposesConsent starts at bit 152 = char 25, offset 2:
--     char 25 'K' = 10 = 00|1010  -> bits 152-155 = purposes 1-4: 1,0,1,0
--     char 26 'D' =  3 = 000011   -> purposes 5-10:  0,0,0,0,1,1
--     char 27 'A', char 28 'A'    -> purposes 11-22: all 0
--     char 29 'D' =  3 = 00|0011  -> purposes 23,24: 0,0
--   so PurposesConsent = {1, 3, 9, 10}.
--   PurposesLITransparency starts at bit 176 = char 29, offset 2:
--     char 29 'D' = 00|0011       -> LI purposes 1-4: 0,0,1,1
--     char 30 'n' = 39 = 100111   -> LI purposes 5-10: 1,0,0,1,1,1
--   so PurposesLITransparency = {3, 4, 5, 8, 9, 10}.
-- These agree with the published decode (purposes 1,3,9,10; LI 3,4,5,8,9,10;
-- CMP 21; vendor list 23; vendor consents as listed below, MaxVendorId 115,
-- bitfield encoding).
local PUB1 = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA"
local PUB1_VENDORS = { 2, 3, 6, 7, 8, 10, 12, 13, 14, 15, 16, 21, 25, 27, 30,
    31, 34, 35, 37, 38, 39, 42, 43, 49, 52, 54, 55, 56, 57, 59, 60, 63, 64,
    65, 66, 67, 68, 69, 73, 74, 76, 78, 83, 86, 87, 89, 90, 92, 96, 99, 100,
    106, 109, 110, 114, 115 }
-- PUB2: range-encoded vendor consents; every purpose bit is 0 (chars 25-33
-- are all 'A' = 000000), CMP 3, vendor list 48, MaxVendorId 626, vendors
-- 23, 42, 126-128, 587, 613, 626.
local PUB2 = "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA"
local PUB2_VENDORS = { 23, 42, 126, 127, 128, 587, 613, 626 }

H.test("published string 1: header, purposes, LI (hand-derived)", function()
    local d = tcf.decode(PUB1, true)
    H.eq(d.version, 2, "version")
    H.eq(d.cmp_id, 21, "CmpId")
    H.eq(d.vendor_list_version, 23, "VendorListVersion")
    H.eq(d.policy_version, 2, "TcfPolicyVersion")
    H.eq(d.purposes, set{ 1, 3, 9, 10 }, "PurposesConsent")
    H.eq(d.li, set{ 3, 4, 5, 8, 9, 10 }, "PurposesLITransparency")
    H.eq(d.max_vendor_id, 115, "MaxVendorId")
    local want, got = set(PUB1_VENDORS), {}
    for v = 1, 130 do if tcf.vendor_consent(d, v) then got[v] = true end end
    H.eq(got, want, "vendor consents (bitfield)")
end)

H.test("published string 2: range encoding", function()
    local d = tcf.decode(PUB2, true)
    H.eq({ d.version, d.cmp_id, d.vendor_list_version },
         { 2, 3, 48 }, "version, CmpId, VendorListVersion")
    H.eq(d.purposes, {}, "no purpose consent")
    H.eq(d.li, {}, "no LI")
    H.eq(d.max_vendor_id, 626, "MaxVendorId")
    local got = {}
    for v = 1, 700 do if tcf.vendor_consent(d, v) then got[v] = true end end
    H.eq(got, set(PUB2_VENDORS), "vendor consents (ranges)")
    -- with a publisher TC segment appended: only the core is read
    H.eq(tcf.decode(PUB1 .. ".argAC0gAAAAAAAAAAAA").purposes,
         set{ 1, 3, 9, 10 }, "segments after '.' ignored")
end)

H.test("published strings through the hook", function()
    local hook = tcf.new{ categories = {
        C0002 = { 1, 9, 10 },              -- measurement-like
        C0003 = { 1, 3 },
        C0004 = { 1, 3, 4 },               -- purpose 4 missing
        C0005 = { purposes = { 1 }, vendors = { 2, 115 } },
        C0006 = { purposes = { 1 }, vendors = { 2, 4 } },    -- 4 not consented
    } }
    local ev = H.make_ev([[{"type":"track","event":"Ad Clicked","userId":"u9"}]])
    local req = H.make_req{ cookie = "euconsent-v2=" .. PUB1 ..
                            "; addtl_consent=1~39.4.11" }
    H.eq(H.call(hook, ev, req),
         { C0002 = true, C0003 = true, C0004 = false, C0005 = true,
           C0006 = false }, "categories from PUB1")
    req = H.make_req{ cookie = "euconsent-v2=" .. PUB2 }
    H.eq(H.call(hook, ev, req),
         { C0002 = false, C0003 = false, C0004 = false, C0005 = false,
           C0006 = false }, "categories from PUB2 (no purposes)")
    local vonly = tcf.new{ categories = { V = { purposes = {}, vendors = { 126, 128 } },
                                          W = { purposes = {}, vendors = { 125 } } } }
    H.eq(H.call(vonly, ev, req), { V = true, W = false }, "vendor-only categories")
end)

H.test("legitimate interest (TCF 2.2 rules)", function()
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u"}]])
    local req = H.make_req{ cookie = "euconsent-v2=" .. PUB1 }
    -- PUB1: consent {1,3,9,10}, LI {3,4,5,8,9,10}
    local cats = { A = { 1, 8 }, B = { 1, 4 }, C = { 9, 10 } }
    H.eq(H.call(tcf.new{ categories = cats }, ev, req),
         { A = false, B = false, C = true }, "consent only (default)")
    H.eq(H.call(tcf.new{ categories = cats, legitimate_interest = true }, ev, req),
         { A = true, B = false, C = true },
         "LI counts for purpose 8, never for purpose 4 (3-6 consent only)")
end)

H.test("generated strings: decode equals what was encoded", function()
    math.randomseed(20231120)
    local bad = 0
    for n = 1, 300 do
        local purposes, li, vendors = {}, {}, {}
        for p = 1, 24 do
            if math.random() < 0.4 then purposes[#purposes + 1] = p end
            if math.random() < 0.3 then li[#li + 1] = p end
        end
        local nv = math.random(0, 40)
        local seen = {}
        for _ = 1, nv do
            local v = math.random(1, n % 3 == 0 and 1200 or 150)
            if not seen[v] then seen[v] = true; vendors[#vendors + 1] = v end
        end
        local s = H.tc_string{ purposes = purposes, li = li, vendors = vendors,
                               range = (n % 2 == 0), cmp_id = n, vlv = 100 + n,
                               special = { 1 } }
        local d = tcf.decode(s, true)
        if not d or d.cmp_id ~= n or d.vendor_list_version ~= 100 + n
           or not H.deep_eq(d.purposes, set(purposes))
           or not H.deep_eq(d.li, set(li)) then
            bad = bad + 1
        else
            for v = 1, 1300 do
                if (tcf.vendor_consent(d, v) and true or nil) ~= seen[v] then
                    bad = bad + 1
                    break
                end
            end
        end
    end
    H.eq(bad, 0, "300 random strings (bitfield and range) decode exactly")
end)

H.test("generated strings: a category needs all its purposes", function()
    math.randomseed(7)
    local cats = {
        analytics = { 1, 7, 8, 9, 10 },
        ads = { 1, 2, 3, 4, 7 },
        personal = { 5, 6 },
        storage = { 1 },
    }
    local hook = tcf.new{ categories = cats }
    local ev = H.make_ev([[{"type":"screen","anonymousId":"x","name":"Home"}]])
    local bad = 0
    for _ = 1, 200 do
        local purposes, granted = {}, {}
        for p = 1, 11 do
            if math.random() < 0.7 then
                purposes[#purposes + 1] = p
                granted[p] = true
            end
        end
        local want = {}
        for id, ps in pairs(cats) do
            local ok = true
            for _, p in ipairs(ps) do ok = ok and granted[p] == true end
            want[id] = ok
        end
        local s = H.tc_string{ purposes = purposes }
        local got = H.call(hook, ev, H.make_req{ cookie = "euconsent-v2=" .. s })
        if not H.deep_eq(got, want) then bad = bad + 1 end
    end
    H.eq(bad, 0, "200 random purpose sets against the model")
    -- one readable example
    H.eq(H.call(hook, ev, H.make_req{ cookie = "euconsent-v2=" ..
             H.tc_string{ purposes = { 1, 7, 8, 9, 10 } } }),
         { analytics = true, ads = false, personal = false, storage = true },
         "purposes 1,7,8,9,10")
end)

H.test("event source and prefer", function()
    local cats = { categories = { S = { 1 }, M = { 1, 7 } } }
    local only1 = H.tc_string{ purposes = { 1 } }
    local both = H.tc_string{ purposes = { 1, 7 } }
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u",
      "context":{"consent":{"tcf":{"tcString":"]] .. only1 .. [["}}}}]])
    local req = H.make_req{ cookie = "euconsent-v2=" .. both }
    H.eq(H.call(tcf.new(cats), ev, req), { S = true, M = false }, "event wins")
    H.eq(H.call(tcf.new{ categories = cats.categories, prefer = "cookie" },
                ev, req), { S = true, M = true }, "prefer cookie")
    H.eq(H.call(tcf.new{ categories = cats.categories, prefer = "both" },
                ev, req), { S = true, M = false }, "both")
    H.eq(H.call(tcf.new{ categories = cats.categories, cookie = "eupubconsent-v2",
                         event_path = false },
                ev, H.make_req{ cookie = "eupubconsent-v2=" .. both }),
         { S = true, M = true }, "cookie name option, event disabled")
    H.eq(H.call(tcf.new{ categories = cats.categories,
                         event_path = "properties.gdpr_consent" },
                H.make_ev([[{"type":"track","event":"E","userId":"u",
                  "properties":{"gdpr_consent":"]] .. both .. [["}}]]),
                H.make_req()), { S = true, M = true }, "event_path option")
    H.eq({ H.call(tcf.new(cats), H.make_ev([[{"type":"track","event":"E",
                  "userId":"u"}]]), H.make_req()) }, {}, "no string: nil")
    H.eq({ H.call(tcf.new(cats), H.make_ev([[{"type":"track","event":"E",
                  "userId":"u","context":{"consent":{"tcf":{"tcString":""}}}}]]),
                  H.make_req()) }, {}, "empty string: no signal")
end)

H.test("malformed strings fail closed", function()
    local hook = tcf.new{ categories = { S = { 1 }, V = { purposes = { 1 },
                                                      vendors = { 10 } } } }
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u"}]])
    local deny = { S = false, V = false }
    local function with(s) return H.call(hook, ev, H.make_req{ cookie = "euconsent-v2=" .. s }) end
    -- the TCF v1.1 specification's example consent string (version 1)
    H.eq(with("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"), deny, "TCF v1 string")
    H.eq(with(H.tc_string{ version = 3, purposes = { 1 } }), deny, "version 3")
    H.eq(with("CPx"), deny, "too short")
    H.eq(with("CPxx!yz" .. string.rep("A", 40)), deny, "bad character")
    local full = H.tc_string{ purposes = { 1 }, vendors = { 10, 300 } }
    H.eq(with(full:sub(1, 40)), deny, "truncated in the vendor bitfield")
    H.eq(with(H.tc_string{ purposes = { 1 }, vendors = { 10 } }),
         { S = true, V = true }, "the untruncated one is fine")
    H.eq(#full:sub(1, 40) * 6 >= 213, true, "40 chars hold the purposes")
    H.eq((tcf.decode(full:sub(1, 40), false) or {}).purposes, set{ 1 },
         "purpose-only decode of the truncated string works")
    local r, why = H.call(tcf.new{ categories = { S = { 1 } }, invalid = "reject" },
                          ev, H.make_req{ cookie = "euconsent-v2=BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA" })
    H.eq({ r, why }, { nil, "tcf: TC string version 1, not 2" }, "invalid = reject")
    H.eq(H.call(hook, H.make_ev([[{"type":"track","event":"E","userId":"u",
             "context":{"consent":{"tcf":{"tcString":42}}}}]]), H.make_req()),
         deny, "a number in the event")
    H.eq(H.call(tcf.new{ categories = { S = { 1 } }, max_length = 50 }, ev,
                H.make_req{ cookie = "euconsent-v2=" .. PUB1 }),
         { S = false }, "longer than max_length")
end)

H.test("cached decode: results are fresh, sources separate", function()
    local hook = tcf.new{ categories = { S = { 1 }, M = { 1, 7 } } }
    local s1, s2 = H.tc_string{ purposes = { 1 } }, H.tc_string{ purposes = { 1, 7 } }
    local req = H.make_req{ cookie = "euconsent-v2=" .. s2 }
    local ev0 = H.make_ev([[{"type":"track","event":"E","userId":"u"}]])
    local a = H.call(hook, ev0, req)
    a.S = false
    H.eq(H.call(hook, ev0, req), { S = true, M = true }, "mutation not cached")
    local ev1 = H.make_ev([[{"type":"track","event":"E","userId":"u",
      "context":{"consent":{"tcf":{"tcString":"]] .. s1 .. [["}}}}]])
    H.eq(H.call(hook, ev1, req), { S = true, M = false }, "event string")
    H.eq(H.call(hook, ev0, req), { S = true, M = true }, "cookie string again")
end)

H.test("options are checked at load", function()
    H.raises(function() tcf.new{} end, "categories", "categories required")
    H.raises(function() tcf.new{ categories = { A = { 25 } } } end, "1..24", "purpose 25")
    H.raises(function() tcf.new{ categories = { A = { "1" } } } end, "integers", "string purpose")
    H.raises(function() tcf.new{ categories = { A = {} } } end, "empty", "empty category")
    H.raises(function() tcf.new{ categories = { A = { vendors = { 0 } } } } end,
             "vendors", "vendor 0")
end)

H.test("large range-encoded string stays cheap", function()
    -- 1000 single-vendor ranges: the decoder walks them all
    local vendors = {}
    for i = 1, 1000 do vendors[i] = i * 2 end
    local s = H.tc_string{ purposes = { 1 }, vendors = vendors, range = true }
    local hook = tcf.new{ categories = { V = { purposes = { 1 }, vendors = { 2000, 1999 } } } }
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u"}]])
    H.eq(H.call(hook, ev, H.make_req{ cookie = "euconsent-v2=" .. s }),
         { V = false }, "1999 is odd: no consent")
    H.ok(#s > 2800, "string of " .. #s .. " characters")
end)
