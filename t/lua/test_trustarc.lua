-- consent.trustarc
local H = ...
local trustarc = require "consent.trustarc"

local EV = [[{"type":"page","anonymousId":"6f1b7c2e","name":"Pricing"}]]

-- what a TrustArc site sends along with every request
local function req(cookies)
    return H.make_req{
        cookie = "TAsessionID=8f3d7a2d-7de6-4c96-bf82-5471b368e626|NEW; " ..
                 cookies .. "; cmapi_gtm_bl=ga-ms-ua-ta-asp-bzi-sp-awct",
    }
end

H.test("notice_gdpr_prefs: levels 0-based -> ta-1..n", function()
    local hook = trustarc.new()
    H.eq(H.call(hook, H.make_ev(EV),
                req("notice_behavior=expressed,eu; notice_gdpr_prefs=0,1,2:; " ..
                    "notice_preferences=2:; cmapi_cookie_privacy=permit 1,2,3")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true }, "all three")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0:")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = false },
         "required only")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0,2:")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = true },
         "required and advertising")
    H.eq(H.call(hook, H.make_ev(EV),
                req("notice_gdpr_prefs=0,1:1a8b5228dd7ff0717196863a5d28ce6c")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = false },
         "text after ':' ignored")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0::implied,eu")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = false },
         "'0::implied,eu'")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0|1|2:")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true }, "'|' separated")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0,1")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = false }, "no ':' at all")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0%2C1%2C2%3A")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true }, "URL-encoded")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=:")),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "':' alone: nothing consented")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0,1,2,4:")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true, ["ta-5"] = true,
           ["ta-4"] = nil }, "a level beyond buckets is kept")
end)

H.test("names, prefix, buckets", function()
    local hook = trustarc.new{ names = { "required", "functional", "advertising" } }
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0,1:")),
         { required = true, functional = true, advertising = false }, "names")
    H.eq(H.call(trustarc.new{ prefix = "trustarc_", buckets = 4 },
                H.make_ev(EV), req("notice_gdpr_prefs=0,3:")),
         { trustarc_1 = true, trustarc_2 = false, trustarc_3 = false,
           trustarc_4 = true }, "prefix and 4 buckets")
    H.raises(function() trustarc.new{ buckets = 0 } end, "buckets", "buckets 0")
    H.eq(H.call(trustarc.new{ names = { "req", "optional", "optional" } },
                H.make_ev(EV), req("notice_gdpr_prefs=0,1:")),
         { req = true, optional = false }, "buckets sharing a name need all")
end)

H.test("cmapi_cookie_privacy fallback (1-based)", function()
    local hook = trustarc.new()
    H.eq(H.call(hook, H.make_ev(EV), req("cmapi_cookie_privacy=permit 1,2,3")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true }, "permit 1,2,3")
    H.eq(H.call(hook, H.make_ev(EV), req("cmapi_cookie_privacy=permit 1 required")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = false },
         "permit 1 required")
    H.eq(H.call(hook, H.make_ev(EV), req("cmapi_cookie_privacy=permit_1|2|3")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true }, "permit_1|2|3")
    H.eq(H.call(hook, H.make_ev(EV), req("cmapi_cookie_privacy=permit%201%2C3")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = true }, "URL-encoded")
    H.eq(H.call(hook, H.make_ev(EV),
                req("notice_gdpr_prefs=0:; cmapi_cookie_privacy=permit 1,2,3")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = false },
         "notice_gdpr_prefs wins over cmapi_cookie_privacy")
    H.eq({ H.call(trustarc.new{ cmapi_cookie = false }, H.make_ev(EV),
                  req("cmapi_cookie_privacy=permit 1,2,3")) }, {},
         "cmapi disabled")
    H.eq(H.call(hook, H.make_ev(EV), req("cmapi_cookie_privacy=deny")),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "not 'permit ...': invalid -> deny")
    H.eq(H.call(hook, H.make_ev(EV), req("cmapi_cookie_privacy=permit 0,1")),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "bucket 0 does not exist: invalid -> deny")
end)

H.test("malformed notice_gdpr_prefs", function()
    local deny = { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false }
    local hook = trustarc.new()
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=0,x:")), deny, "letter")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=-1:")), deny, "negative")
    H.eq(H.call(hook, H.make_ev(EV), req("notice_gdpr_prefs=99:")), deny, "too big")
    H.eq({ H.call(trustarc.new{ invalid = "reject" }, H.make_ev(EV),
                  req("notice_gdpr_prefs=all:")) },
         { nil, "trustarc: bad level 'all'" }, "reject")
end)

H.test("notice_behavior: implied consent only when asked", function()
    local r = req("notice_behavior=implied,us")
    H.eq({ H.call(trustarc.new(), H.make_ev(EV), r) }, {},
         "default: no preference cookie = no signal")
    H.eq(H.call(trustarc.new{ implied = true }, H.make_ev(EV), r),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true },
         "implied = true: all buckets")
    H.eq({ H.call(trustarc.new{ implied = true }, H.make_ev(EV),
                  req("notice_behavior=expressed,eu")) }, {},
         "expressed: no signal")
    H.eq(H.call(trustarc.new{ implied = true }, H.make_ev(EV),
                req("notice_behavior=implied,eu; notice_gdpr_prefs=0:")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = false },
         "a preference cookie wins over implied")
    H.eq(H.call(trustarc.new{ missing = "deny" }, H.make_ev(EV), r),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "missing = deny")
end)

H.test("event: consentDecision", function()
    local function ev(v)
        return H.make_ev([[{"type":"track","event":"Viewed","userId":"u",
          "context":{"consent":{"trustarc":{"consentDecision":]] .. v .. [[}}}}]])
    end
    local hook = trustarc.new()
    H.eq(H.call(hook, ev("[0,1]"), H.make_req()),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = false }, "a list")
    H.eq(H.call(hook, ev([["0,2:"]]), H.make_req()),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = true }, "cookie text")
    H.eq(H.call(hook, ev("[0]"), req("notice_gdpr_prefs=0,1,2:")),
         { ["ta-1"] = true, ["ta-2"] = false, ["ta-3"] = false },
         "event wins by default")
    H.eq(H.call(trustarc.new{ prefer = "cookie" }, ev("[0]"),
                req("notice_gdpr_prefs=0,1,2:")),
         { ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = true }, "prefer cookie")
    H.eq(H.call(hook, ev([=[[0,"1"]]=]), H.make_req()),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "a string element: invalid")
    H.eq(H.call(hook, ev("[0.5]"), H.make_req()),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "a fraction: invalid")
    H.eq(H.call(hook, ev("true"), H.make_req()),
         { ["ta-1"] = false, ["ta-2"] = false, ["ta-3"] = false },
         "a boolean: invalid")
end)
