-- consent.gcm
local H = ...
local gcm = require "consent.gcm"

local TRACK = [[{"type":"track","event":"Order Completed","userId":"u1"}]]

local function ev_with(gcm_json)
    return H.make_ev([[{"type":"track","event":"E","userId":"u",
        "context":{"consent":{"gcm":]] .. gcm_json .. "}}}")
end

local MAP = { ad_storage = "ads", analytics_storage = "analytics",
              ad_user_data = "ads", ad_personalization = "personalised" }

H.test("gcs: the four documented values, field by field", function()
    -- G1xy: x = ad_storage, y = analytics_storage; 1 granted, 0 denied
    H.eq(gcm.decode("G100"), { ad_storage = false, analytics_storage = false },
         "G100: both denied")
    H.eq(gcm.decode("G110"), { ad_storage = true, analytics_storage = false },
         "G110: ad_storage granted")
    H.eq(gcm.decode("G101"), { ad_storage = false, analytics_storage = true },
         "G101: analytics_storage granted")
    H.eq(gcm.decode("G111"), { ad_storage = true, analytics_storage = true },
         "G111: both granted")
    for _, bad in ipairs{ "G1--", "G1-1", "G102", "G11", "G1111", "G011",
                          "g111", "G" } do
        H.eq(gcm.decode(bad), nil, "undocumented gcs " .. bad)
    end
end)

H.test("gcd: every documented letter", function()
    -- letter -> state after default and update (update wins); nil: not set
    local want = { l = nil, p = false, q = false, t = true, r = true,
                   m = false, n = true, u = false, v = true }
    for _, letter in ipairs{ "l", "p", "q", "t", "r", "m", "n", "u", "v" } do
        -- the letter on ad_storage only, the others "l" (not set)
        local d = gcm.decode("11" .. letter .. "1l1l1l5")
        H.eq(d, { ad_storage = want[letter] }, "ad_storage letter " .. letter)
        -- and on each position
        d = gcm.decode("11l1l1l1" .. letter .. "5")
        H.eq(d.ad_personalization, want[letter],
             "ad_personalization letter " .. letter)
    end
    -- the letters read as a base64url digit (0-9a-zA-Z-_): 16 + 4 x
    -- default + update, 1 not set, 2 denied, 3 granted
    local alpha = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
    local state = { [1] = "-", [2] = "denied", [3] = "granted" }
    local doc = { l = "- -", p = "denied -", q = "denied denied",
                  t = "granted -", r = "denied granted", m = "- denied",
                  n = "- granted", u = "granted denied", v = "granted granted" }
    for letter, text in pairs(doc) do
        local i = alpha:find(letter, 1, true) - 1
        H.eq(state[(i >> 2) & 3] .. " " .. state[i & 3], text,
             "letter " .. letter .. " = digit " .. i)
    end
    H.eq(gcm.decode("11t1t1t1t5"),
         { ad_storage = true, analytics_storage = true, ad_user_data = true,
           ad_personalization = true }, "11t1t1t1t5: all granted by default")
    H.eq(gcm.decode("13r3r3r3r5"),
         { ad_storage = true, analytics_storage = true, ad_user_data = true,
           ad_personalization = true }, "13r3r3r3r5: denied, then granted")
    H.eq(gcm.decode("13q3q3q3q5"),
         { ad_storage = false, analytics_storage = false,
           ad_user_data = false, ad_personalization = false },
         "13q3q3q3q5: denied twice")
    H.eq(gcm.decode("13r3q3u3v5"),
         { ad_storage = true, analytics_storage = false,
           ad_user_data = false, ad_personalization = true }, "mixed")
    for _, bad in ipairs{ "11a1t1t1t5", "11t1t1t1s5", "11t1t1t1tZ_",
                          "11t1t1t1t", "21t1t1t1t5", "1xt1t1t1t5",
                          "11t1t1t1t5 ", "" } do
        H.eq(gcm.decode(bad), nil, "undocumented gcd " .. bad)
    end
    -- every letter Google's readers have not documented fails closed
    local undocumented = 0
    for i = 1, #alpha do
        local c = alpha:sub(i, i)
        if c:match("%a") and not doc[c] then
            if gcm.decode("11" .. c .. "1t1t1t5") == nil then
                undocumented = undocumented + 1
            end
        end
    end
    H.eq(undocumented, 52 - 9, "the 43 other letters are malformed")
end)

H.test("state object from the page", function()
    H.eq(gcm.decode{ ad_storage = "granted", analytics_storage = "denied",
                     security_storage = "granted", wait_for_update = 500,
                     region = { "US" } },
         { ad_storage = true, analytics_storage = false,
           security_storage = true }, "other members ignored")
    H.eq(gcm.decode{ ad_storage = true }, nil, "a boolean is not a state")
    H.eq(gcm.decode{ "granted" }, nil, "a list")
    H.eq(gcm.decode{ gcs = "G110", ad_storage = "denied" },
         { ad_storage = true, analytics_storage = false }, "gcs member wins")
    H.eq(gcm.decode{ gcd = "11v1p1l1l5", gcs = "G100" },
         { ad_storage = true, analytics_storage = false }, "gcd member wins")
end)

H.test("the hook", function()
    local hook = gcm.new(MAP)
    H.eq(H.call(hook, ev_with([[{"ad_storage":"granted","analytics_storage":
            "granted","ad_user_data":"granted","ad_personalization":"denied"}]]),
            H.make_req()),
         { ads = true, analytics = true, personalised = false }, "object")
    H.eq(H.call(hook, ev_with([[{"ad_storage":"granted","analytics_storage":
            "granted","ad_user_data":"denied","ad_personalization":"granted"}]]),
            H.make_req()),
         { ads = false, analytics = true, personalised = true },
         "ads needs ad_storage and ad_user_data")
    H.eq(H.call(hook, ev_with([["G111"]]), H.make_req()),
         { ads = false, analytics = true, personalised = false },
         "gcs G111: ad_user_data, ad_personalization not set: denied")
    H.eq(H.call(gcm.new{ ad_storage = "ads", analytics_storage = "analytics",
                         ad_user_data = "ads", unset = "granted" },
                ev_with([["G110"]]), H.make_req()),
         { ads = true, analytics = false }, "unset = granted")
    H.eq(H.call(hook, ev_with([["13r3r3q3r5"]]), H.make_req()),
         { ads = false, analytics = true, personalised = true }, "gcd")
    H.eq(H.call(hook, ev_with([[{"gcs":"G101"}]]), H.make_req()),
         { ads = false, analytics = true, personalised = false },
         "object with a gcs member")
    H.eq({ H.call(hook, H.make_ev(TRACK), H.make_req()) }, {}, "no signal")
    H.eq({ H.call(hook, ev_with([[""]]), H.make_req()) }, {}, "empty string")
    local deny = { ads = false, analytics = false, personalised = false }
    H.eq(H.call(hook, ev_with([["11x1t1t1t5"]]), H.make_req()), deny,
         "undocumented letter: fail closed")
    H.eq(H.call(hook, ev_with("42"), H.make_req()), deny, "a number")
    local r, why = H.call(gcm.new{ ad_storage = "ads", invalid = "reject" },
                          ev_with([["G1--"]]), H.make_req())
    H.eq({ r, why }, { nil, "gcm: gcs character '-' is not documented" },
         "invalid = reject")
    H.eq(H.call(gcm.new{ analytics_storage = "C0002", merge = true },
                H.make_ev([[{"type":"track","event":"E","userId":"u","context":{
                  "consent":{"gcm":"G100","categoryPreferences":{"C0001":true}}}}]]),
                H.make_req()), { C0001 = true, C0002 = false }, "merge")
end)

H.test("cookie source", function()
    local hook = gcm.new{ ad_storage = "ads", analytics_storage = "analytics",
                          cookie = "consent_mode" }
    local function req(v) return H.make_req{ cookie = "consent_mode=" .. v } end
    H.eq(H.call(hook, H.make_ev(TRACK), req("G101")),
         { ads = false, analytics = true }, "gcs in a cookie")
    H.eq(H.call(hook, H.make_ev(TRACK),
                req("%7B%22ad_storage%22%3A%22granted%22%2C%22analytics_storage%22%3A%22denied%22%7D")),
         { ads = true, analytics = false }, "percent-encoded JSON object")
    H.eq(H.call(hook, H.make_ev(TRACK), req("%7Bnot-json")),
         { ads = false, analytics = false }, "bad JSON: fail closed")
    local a = H.call(hook, H.make_ev(TRACK), req("G111"))
    a.ads = false
    H.eq(H.call(hook, H.make_ev(TRACK), req("G111")),
         { ads = true, analytics = true }, "cached, fresh result")
    H.eq(H.call(hook, ev_with([["G100"]]), req("G111")),
         { ads = false, analytics = false }, "event preferred")
    H.eq({ H.call(gcm.new{ ad_storage = "ads" }, H.make_ev(TRACK), req("G111")) },
         {}, "no cookie by default")
end)

H.test("fuzz: random strings and objects never raise", function()
    math.randomseed(2024)
    local hook = gcm.new(MAP)
    local chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_G%~"
    local bad, n = 0, 0
    local function check(json)
        n = n + 1
        local wrong = H.call_checked(hook, ev_with(json), H.make_req())
        if wrong then
            bad = bad + 1
            if bad == 1 then H.ok(false, json .. ": " .. wrong) end
        end
    end
    local seeds = { "11t1t1t1t5", "13r3r3q3r5", "G101", "G111" }
    for i = 1, 2000 do
        local s
        if i % 2 == 0 then
            local t = {}
            for j = 1, math.random(0, 14) do
                local c = math.random(1, #chars)
                t[j] = chars:sub(c, c)
            end
            s = table.concat(t)
        else
            s = seeds[math.random(1, #seeds)]
            local p, c = math.random(1, #s), math.random(1, #chars)
            s = s:sub(1, p - 1) .. chars:sub(c, c) .. s:sub(p + 1)
        end
        check('"' .. s .. '"')
    end
    local values = { '"granted"', '"denied"', "true", "null", "1", "[]", "{}",
                     '"G111"' }
    local keys = { "ad_storage", "analytics_storage", "ad_user_data",
                   "ad_personalization", "gcs", "gcd", "x" }
    for _ = 1, 500 do
        local parts = {}
        for j = 1, math.random(0, 4) do
            parts[j] = '"' .. keys[math.random(1, #keys)] .. '":' ..
                       values[math.random(1, #values)]
        end
        check("{" .. table.concat(parts, ",") .. "}")
    end
    H.eq(bad, 0, n .. " values: no error, only booleans")
end)

H.test("options are checked at load", function()
    H.raises(function() gcm.new{} end, "at least one of the consent types", "empty")
    H.raises(function() gcm.new{ ad_storge = "A" } end,
             "unknown option 'ad_storge'", "typo")
    H.raises(function() gcm.new{ ad_storage = "A", unset = "maybe" } end,
             "unset", "unset")
    H.raises(function() gcm.new{ ad_storage = { 1 } } end, "strings",
             "category ids are strings")
end)
