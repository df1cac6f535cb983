-- consent.onetrust
local H = ...
local onetrust = require "consent.onetrust"

-- A realistic OptanonConsent cookie value as the browser sends it
-- (OneTrust writes it URL-encoded, '+' for spaces in datestamp).
local OPTANON = "isGpcEnabled=0&datestamp=Mon+Nov+20+2023+10%3A12%3A45+GMT%2B0100+" ..
    "(Central+European+Standard+Time)&version=202310.1.0&browserGpcFlag=0" ..
    "&isIABGlobal=false&hosts=&consentId=4f3c2a1e-8b9d-4e5f-a6b7-c8d9e0f1a2b3" ..
    "&interactionCount=1&landingPath=NotLandingPage" ..
    "&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A0" ..
    "&geolocation=DE%3BBY&AwaitingReconsent=false"

local function cookie_req(value, extra)
    return H.make_req{ cookie = "_ga=GA1.2.123.456; OptanonAlertBoxClosed=" ..
        "2023-11-20T09:12:45.123Z; OptanonConsent=" .. value ..
        (extra or "") .. "; ajs_anonymous_id=a1" }
end

local TRACK = [[{"type":"track","event":"Order Completed","userId":"u1",
  "properties":{"revenue":42}}]]

local function track_with_active(active)
    return H.make_ev([[{"type":"track","event":"Order Completed","userId":"u1",
      "context":{"consent":{"onetrust":{"activeGroups":]] .. active .. [[}}}}]])
end

local ALL = { "C0001", "C0002", "C0003", "C0004", "C0005" }

H.test("cookie: groups become categories", function()
    local hook = onetrust.new()
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req(OPTANON)),
         { C0001 = true, C0002 = false, C0003 = true, C0004 = false },
         "groups 1 -> true, 0 -> false")
end)

H.test("cookie: all_groups fills the groups the cookie does not list", function()
    local hook = onetrust.new{ all_groups = ALL }
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req(OPTANON)),
         { C0001 = true, C0002 = false, C0003 = true, C0004 = false,
           C0005 = false }, "C0005 absent from the cookie -> false")
end)

H.test("cookie: unusual groups values", function()
    local hook = onetrust.new()
    local req = cookie_req("groups=C0001%3A1%2CC0002%2CC0003%3Ax%2C%2CC0004%3A1%2CC0004%3A0")
    H.eq(H.call(hook, H.make_ev(TRACK), req),
         { C0001 = true, C0002 = false, C0003 = false, C0004 = false },
         "no value, bad value -> false; a repeated group is true only if always 1")
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req("groups=")), {},
         "empty groups: nothing consented")
    H.eq(H.call(onetrust.new{ all_groups = ALL }, H.make_ev(TRACK),
                cookie_req("groups=")),
         { C0001 = false, C0002 = false, C0003 = false, C0004 = false,
           C0005 = false }, "empty groups with all_groups")
    -- IAB TCF templates put purposes and stacks in groups too
    H.eq(H.call(hook, H.make_ev(TRACK),
                cookie_req("groups=1%3A1%2C2%3A0%2CSTACK42%3A1%2CC0001%3A1")),
         { ["1"] = true, ["2"] = false, STACK42 = true, C0001 = true },
         "IAB purpose and stack groups pass through")
end)

H.test("cookie: absent, without groups, malformed", function()
    local hook = onetrust.new{ all_groups = ALL }
    H.eq({ H.call(hook, H.make_ev(TRACK), H.make_req()) }, {},
         "no cookie: nil (event left as is)")
    H.eq({ H.call(hook, H.make_ev(TRACK),
                  cookie_req("isGpcEnabled=0&version=6.10.0")) }, {},
         "cookie without groups: no signal")
    local deny = { C0001 = false, C0002 = false, C0003 = false,
                   C0004 = false, C0005 = false }
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req("garbage")), deny,
         "not query-string-like: invalid -> deny")
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req("groups=%3A1")), deny,
         "empty group id: invalid -> deny")
    local r, why = H.call(onetrust.new{ invalid = "reject" },
                          H.make_ev(TRACK), cookie_req("garbage"))
    H.eq({ r, why }, { nil, "onetrust: OptanonConsent cookie is not query-string-like" },
         "invalid = reject")
    H.eq({ H.call(onetrust.new{ invalid = "keep" }, H.make_ev(TRACK),
                  cookie_req("garbage")) }, {}, "invalid = keep")
end)

H.test("missing policy", function()
    local ev = H.make_ev(TRACK)
    H.eq({ H.call(onetrust.new{ missing = "keep" }, ev, H.make_req()) }, {},
         "keep")
    H.eq(H.call(onetrust.new{ missing = "deny", all_groups = { "C0002" } },
                ev, H.make_req()), { C0002 = false }, "deny")
    H.eq(H.call(onetrust.new{ missing = "deny" }, ev, H.make_req()), {},
         "deny without all_groups: empty preferences")
    H.eq({ H.call(onetrust.new{ missing = "reject" }, ev, H.make_req()) },
         { nil, "onetrust: no consent signal" }, "reject")
end)

H.test("event: active groups string", function()
    local hook = onetrust.new{ all_groups = ALL }
    H.eq(H.call(hook, track_with_active([[",C0001,C0003,"]]), H.make_req()),
         { C0001 = true, C0002 = false, C0003 = true, C0004 = false,
           C0005 = false }, "listed -> true, other known groups -> false")
    H.eq(H.call(onetrust.new(), track_with_active([[",C0001,C0003,"]]),
                H.make_req()),
         { C0001 = true, C0003 = true }, "without all_groups: only the listed")
    H.eq(H.call(hook, track_with_active([[""]]), H.make_req()),
         { C0001 = false, C0002 = false, C0003 = false, C0004 = false,
           C0005 = false }, "empty string: nothing active")
    H.eq(H.call(hook, track_with_active([=[["C0001","C0004"]]=]),
                H.make_req()),
         { C0001 = true, C0002 = false, C0003 = false, C0004 = true,
           C0005 = false }, "a JSON array of ids")
    H.eq(H.call(hook, track_with_active("17"), H.make_req()),
         { C0001 = false, C0002 = false, C0003 = false, C0004 = false,
           C0005 = false }, "a number: invalid -> deny")
    H.eq({ H.call(onetrust.new{ invalid = "reject" },
                  track_with_active([[{"C0001":true}]]), H.make_req()) },
         { nil, "onetrust: activeGroups is an object, not a list" },
         "an object: invalid -> reject")
    H.eq({ H.call(hook, track_with_active("null"), H.make_req()) }, {},
         "null: absent")
end)

H.test("event: configurable path", function()
    local hook = onetrust.new{ event_path = "properties.otGroups" }
    local ev = H.make_ev([[{"type":"page","anonymousId":"a1",
        "properties":{"otGroups":",C0002,"}}]])
    H.eq(H.call(hook, ev, H.make_req()), { C0002 = true }, "properties path")
    H.eq({ H.call(onetrust.new{ event_path = false },
                  track_with_active([[",C0002,"]]), H.make_req()) }, {},
         "event source disabled")
    H.eq({ H.call(onetrust.new{ cookie = false }, H.make_ev(TRACK),
                  cookie_req(OPTANON)) }, {}, "cookie source disabled")
    H.eq(H.call(onetrust.new{ cookie = "OptanonConsentEU" }, H.make_ev(TRACK),
                H.make_req{ cookie = "OptanonConsent=groups=C0002%3A0; " ..
                            "OptanonConsentEU=groups=C0002%3A1" }),
         { C0002 = true }, "cookie name option")
end)

H.test("which source wins", function()
    local ev = track_with_active([[",C0001,C0002,"]])
    local req = cookie_req(OPTANON)       -- C0002:0, C0003:1
    H.eq(H.call(onetrust.new(), ev, req), { C0001 = true, C0002 = true },
         "prefer = event (default)")
    H.eq(H.call(onetrust.new{ prefer = "cookie" }, ev, req),
         { C0001 = true, C0002 = false, C0003 = true, C0004 = false },
         "prefer = cookie")
    H.eq(H.call(onetrust.new{ prefer = "both" }, ev, req),
         { C0001 = true, C0002 = false, C0003 = false, C0004 = false },
         "prefer = both: true only where both say true")
    H.eq(H.call(onetrust.new{ prefer = "both" }, H.make_ev(TRACK), req),
         { C0001 = true, C0002 = false, C0003 = true, C0004 = false },
         "prefer = both with one source: that source")
    H.eq(H.call(onetrust.new{ prefer = "cookie" }, ev, H.make_req()),
         { C0001 = true, C0002 = true }, "fallback to the other source")
    -- the preferred source being malformed fails closed, no fallback
    H.eq(H.call(onetrust.new{ all_groups = { "C0001" } },
                track_with_active("true"), req),
         { C0001 = false }, "preferred source malformed: deny")
end)

H.test("rename and keep_unknown", function()
    local hook = onetrust.new{
        rename = { C0002 = "analytics", C0003 = "ads", C0004 = "ads",
                   C0001 = false },
        all_groups = { "C0001", "C0002", "C0003", "C0004", "C0005" },
    }
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req(OPTANON)),
         { analytics = false, ads = false, C0005 = false },
         "renamed; two groups on one category need both; C0001 dropped")
    H.eq(H.call(hook, H.make_ev(TRACK),
                cookie_req("groups=C0002%3A1%2CC0003%3A1%2CC0004%3A1")),
         { analytics = true, ads = true, C0005 = false }, "all granted")
    local strict = onetrust.new{ keep_unknown = false,
                                 all_groups = { "C0002", "C0004" } }
    H.eq(H.call(strict, H.make_ev(TRACK),
                cookie_req("groups=C0001%3A1%2CC0002%3A1%2CSTACK42%3A1")),
         { C0002 = true, C0004 = false }, "only known groups kept")
end)

H.test("merge with the event's preferences", function()
    local ev = H.make_ev([[{"type":"track","event":"X","userId":"u",
      "context":{"consent":{"categoryPreferences":
        {"C0002":true,"Custom":true,"C0004":"yes"}}}}]])
    H.eq(H.call(onetrust.new{ merge = true }, ev,
                cookie_req("groups=C0002%3A0%2CC0003%3A1")),
         { C0002 = false, C0003 = true, Custom = true, C0004 = false },
         "cookie overrides; others kept, non-boolean -> false")
    H.eq(H.call(onetrust.new(), ev, cookie_req("groups=C0003%3A1")),
         { C0003 = true }, "without merge the result replaces")
    -- batch-level preferences are the event's when it has none
    local ev2 = H.make_ev([[{"type":"track","event":"X","userId":"u"}]],
                          { consent = { categoryPreferences = { B = true } } })
    H.eq(H.call(onetrust.new{ merge = true }, ev2, cookie_req("groups=C0003%3A1")),
         { B = true, C0003 = true }, "merge with batch-level consent")
end)

H.test("options are checked at load", function()
    H.raises(function() onetrust.new{ prefer = "newest" } end, "prefer", "prefer")
    H.raises(function() onetrust.new{ missing = "allow" } end, "missing", "missing")
    H.raises(function() onetrust.new{ all_groups = 5 } end, "all_groups", "all_groups")
    H.raises(function() onetrust.new{ all_groups = { C0001 = true } } end,
             "not a map", "all_groups as a set")
    H.raises(function() onetrust.new{ rename = "x" } end, "rename", "rename")
end)

H.test("cached parse: every call gets its own table", function()
    local hook = onetrust.new{ all_groups = { "C0005" } }
    local req = cookie_req(OPTANON)
    local a = H.call(hook, H.make_ev(TRACK), req)
    a.C0001 = false                 -- a later hook mutating the result
    a.extra = true
    local b = H.call(hook, H.make_ev(TRACK), req)
    H.eq(b, { C0001 = true, C0002 = false, C0003 = true, C0004 = false,
              C0005 = false }, "second call unaffected")
    H.ok(a ~= b, "distinct tables")
    H.eq(H.call(hook, H.make_ev(TRACK), cookie_req("groups=C0001%3A0")),
         { C0001 = false, C0005 = false }, "another cookie is parsed anew")
    H.eq(H.call(hook, H.make_ev(TRACK), req).C0001, true, "and back")
end)

H.test("the hook does not touch the event", function()
    local ev = H.make_ev([[{"type":"identify","userId":"u",
        "context":{"consent":{"categoryPreferences":{"C0002":true}}}}]])
    local before = H.show(ev.consent)
    H.call(onetrust.new{ merge = true }, ev, cookie_req(OPTANON))
    H.eq(H.show(ev.consent), before, "ev.consent unchanged")
end)
