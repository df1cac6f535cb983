-- lua/examples/*.lua: each file loads as a hook and behaves as documented.
local H = ...

local function load_example(name)
    local chunk = assert(loadfile("lua/examples/" .. name .. ".lua"))
    local hook = chunk()
    H.ok(type(hook) == "table" and type(hook.event) == "function",
         name .. " returns a hook table")
    return hook
end

local TRACK = [[{"type":"track","event":"Order Completed","userId":"u1"}]]

H.test("onetrust_gpc", function()
    local h = load_example("onetrust_gpc")
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{
            cookie = "OptanonConsent=groups=C0001%3A1%2CC0002%3A1%2CC0004%3A1",
            headers = { { "Sec-GPC", "1" } } }),
         { C0001 = true, C0002 = true, C0003 = false, C0004 = false,
           C0005 = false }, "cookie + GPC")
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ headers = { { "Sec-GPC", "1" } } }),
         { C0002 = true, C0004 = false }, "GPC alone, as the comment says")
    H.eq({ H.call(h, H.make_ev(TRACK), H.make_req()) }, {}, "nothing: unchanged")
end)

H.test("tcf", function()
    local h = load_example("tcf")
    local s = H.tc_string{ purposes = { 1, 2, 3, 4, 7, 8, 9, 10 }, vendors = { 755 } }
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ cookie = "euconsent-v2=" .. s }),
         { C0002 = true, C0004 = true }, "all granted")
    s = H.tc_string{ purposes = { 1, 2, 3, 4, 7, 8, 9, 10 }, vendors = { 754 } }
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ cookie = "euconsent-v2=" .. s }),
         { C0002 = true, C0004 = false }, "vendor 755 missing")
end)

H.test("ketch", function()
    local h = load_example("ketch")
    -- {"analytics":{"status":"granted"},"behavioral_advertising":
    --  {"status":"granted"}}   (coreutils base64)
    local c = "eyJhbmFseXRpY3MiOnsic3RhdHVzIjoiZ3JhbnRlZCJ9LCJiZWhhdmlvcmFsX2FkdmVydGlzaW5nIjp7InN0YXR1cyI6ImdyYW50ZWQifX0="
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ cookie = "_ketch_consent_v1_=" .. c }),
         { C0001 = false, C0002 = true, C0004 = false },
         "C0004 also needs targeted_advertising and data_sales")
end)

H.test("trustarc", function()
    local h = load_example("trustarc")
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ cookie = "notice_gdpr_prefs=0,1:" }),
         { required = true, functional = true, advertising = false }, "names")
end)

H.test("rudderstack", function()
    local h = load_example("rudderstack")
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u","context":
      {"consentManagement":{"provider":"oneTrust","resolutionStrategy":"or",
       "allowedConsentIds":["C0003"],"deniedConsentIds":["C0004"]}}}]])
    H.eq(H.call(h, ev, H.make_req()),
         { C0003 = true, C0004 = false, ["marketing-any"] = true }, "or group")
end)

H.test("custom", function()
    local h = load_example("custom")
    H.eq({ H.call(h, H.make_ev(TRACK), H.make_req{
            headers = { { "User-Agent", "internal-healthcheck/1.0" } } }) },
         { nil, "health check traffic is not forwarded" }, "rejects")
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ cookie = "consent=analytics=1|ads=0" }),
         { analytics = true, ads = false }, "first-party cookie")
    H.eq({ H.call(h, H.make_ev([[{"type":"track","event":"E","userId":"u",
           "context":{"consent":{"categoryPreferences":{"x":true}}}}]]),
           H.make_req{ cookie = "consent=analytics=1" }) }, {},
         "own preferences kept")
end)

H.test("gpp", function()
    local h = load_example("gpp")
    -- usnat (DBABLA): CVQqAAAACg did not opt out; CVVVkkkkkpFY.YA opted
    -- out of everything, no consent for some sensitive data, GPC
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{
            cookie = "__gpp=DBABLA~CVQqAAAACg; __gpp_sid=7" }),
         { C0004 = true, C0005 = true }, "no opt-out")
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{
            cookie = "__gpp=DBABLA~CVVVkkkkkpFY.YA" }),
         { C0004 = false, C0005 = false }, "opted out")
    H.eq(H.call(h, H.make_ev(TRACK), H.make_req{ cookie = "__gpp=DBAB" }),
         { C0004 = false, C0005 = false }, "malformed: deny")
    H.eq({ H.call(h, H.make_ev(TRACK), H.make_req()) }, {}, "nothing: unchanged")
end)

H.test("gcm", function()
    local h = load_example("gcm")
    local function ev(v)
        return H.make_ev([[{"type":"track","event":"E","userId":"u",
            "context":{"consent":{"gcm":]] .. v .. "}}}")
    end
    H.eq(H.call(h, ev([[{"ad_storage":"granted","analytics_storage":"granted",
            "ad_user_data":"denied","ad_personalization":"denied"}]]), H.make_req()),
         { C0002 = true, C0004 = false }, "object, as in the comment")
    H.eq(H.call(h, ev([["G101"]]), H.make_req()),
         { C0002 = true, C0004 = false }, "gcs")
    H.eq(H.call(h, ev([["13r3r3r3r5"]]), H.make_req()),
         { C0002 = true, C0004 = true }, "gcd: all granted on update")
    H.eq(H.call(h, ev([["13r3r3q3q5"]]), H.make_req()),
         { C0002 = true, C0004 = false }, "gcd, as in the comment")
end)
