-- consent.ketch
local H = ...
local ketch = require "consent.ketch"

-- Cookie values produced with coreutils, independently of our decoder:
--   printf '%s' "$JSON" | base64 -w0
-- C1: {"analytics":{"status":"granted","canonicalPurposes":["analytics"]},
--      "behavioral_advertising":{"status":"denied","canonicalPurposes":
--      ["behavioral_advertising"]},"essential_services":{"status":"granted",
--      "canonicalPurposes":["essential_services"]}}          (one '=' pad)
local C1 = "eyJhbmFseXRpY3MiOnsic3RhdHVzIjoiZ3JhbnRlZCIsImNhbm9uaWNhbFB1cnBvc2VzIjpbImFuYWx5dGljcyJdfSwiYmVoYXZpb3JhbF9hZHZlcnRpc2luZyI6eyJzdGF0dXMiOiJkZW5pZWQiLCJjYW5vbmljYWxQdXJwb3NlcyI6WyJiZWhhdmlvcmFsX2FkdmVydGlzaW5nIl19LCJlc3NlbnRpYWxfc2VydmljZXMiOnsic3RhdHVzIjoiZ3JhbnRlZCIsImNhbm9uaWNhbFB1cnBvc2VzIjpbImVzc2VudGlhbF9zZXJ2aWNlcyJdfX0="
-- C2: {"analytics":{"status":"denied"},"data_sales":{"status":"granted"},
--      "targeted_advertising":{"status":"granted"}}           (no padding)
local C2 = "eyJhbmFseXRpY3MiOnsic3RhdHVzIjoiZGVuaWVkIn0sImRhdGFfc2FsZXMiOnsic3RhdHVzIjoiZ3JhbnRlZCJ9LCJ0YXJnZXRlZF9hZHZlcnRpc2luZyI6eyJzdGF0dXMiOiJncmFudGVkIn19"
-- C3: {"analytics":{"status":"granted"},"personalization":{"status":
--      "denied"},"k":"??>>~~"}           ('+', '/' in the text, '==' pad)
local C3 = "eyJhbmFseXRpY3MiOnsic3RhdHVzIjoiZ3JhbnRlZCJ9LCJwZXJzb25hbGl6YXRpb24iOnsic3RhdHVzIjoiZGVuaWVkIn0sImsiOiI/Pz4+fn4ifQ=="

local EV = [[{"type":"track","event":"Product Viewed","anonymousId":"b3c1",
  "properties":{"sku":"X-1"}}]]

local function req(v)
    return H.make_req{ cookie = "_swb=b9858e33-a5c1-4103-999e-04c1490dbed7; " ..
                       "_ketch_consent_v1_=" .. v .. "; _ga=GA1.1.2.3" }
end

local function ev_purposes(json)
    return H.make_ev([[{"type":"track","event":"Product Viewed","userId":"u1",
      "context":{"consent":{"ketch":{"purposes":]] .. json .. [[}}}}]])
end

H.test("cookie: purposes status", function()
    local hook = ketch.new()
    H.eq(H.call(hook, H.make_ev(EV), req(C1)),
         { analytics = true, behavioral_advertising = false,
           essential_services = true }, "unmapped purposes pass through")
    H.eq(H.call(hook, H.make_ev(EV), req(C1:gsub("=", "%%3D"))),
         { analytics = true, behavioral_advertising = false,
           essential_services = true }, "URL-encoded padding (%3D)")
    H.eq(H.call(hook, H.make_ev(EV), req(C1:gsub("=", ""))),
         { analytics = true, behavioral_advertising = false,
           essential_services = true }, "padding dropped")
    H.eq(H.call(hook, H.make_ev(EV), req(C2)),
         { analytics = false, data_sales = true, targeted_advertising = true },
         "unpadded value")
    H.eq(H.call(hook, H.make_ev(EV), req(C3)),
         { analytics = true, personalization = false, k = false },
         "standard alphabet with '+' and '/'; non-object value -> false")
    local urlsafe = C3:gsub("%+", "-"):gsub("/", "_")
    H.eq(H.call(hook, H.make_ev(EV), req(urlsafe)),
         { analytics = true, personalization = false, k = false },
         "URL-safe alphabet")
end)

H.test("cookie: purposes map to categories", function()
    local hook = ketch.new{
        purposes = {
            analytics = "C0002",
            behavioral_advertising = { "C0004", "C0005" },
            targeted_advertising = "C0004",
            essential_services = "C0001",
        },
        keep_unmapped = false,
    }
    H.eq(H.call(hook, H.make_ev(EV), req(C1)),
         { C0001 = true, C0002 = true, C0004 = false, C0005 = false },
         "C0004 needs behavioral and targeted advertising")
    H.eq(H.call(hook, H.make_ev(EV), req(C2)),
         { C0001 = false, C0002 = false, C0004 = false, C0005 = false },
         "unmentioned mapped purposes are not granted; data_sales dropped")
    local keep = ketch.new{ purposes = { analytics = "C0002" } }
    H.eq(H.call(keep, H.make_ev(EV), req(C2)),
         { C0002 = false, data_sales = true, targeted_advertising = true },
         "keep_unmapped (default)")
end)

H.test("cookie: malformed", function()
    local hook = ketch.new{ purposes = { analytics = "C0002" } }
    local deny = { C0002 = false }
    H.eq(H.call(hook, H.make_ev(EV), req("not*base64")), deny, "bad base64")
    H.eq(H.call(hook, H.make_ev(EV), req("eyJhIjo=")), deny, "truncated JSON")
    H.eq(H.call(hook, H.make_ev(EV), req("WzEsMl0=")), deny, "a JSON list")
    H.eq(H.call(hook, H.make_ev(EV), req("bnVsbA==")), deny, "JSON null")
    H.eq({ H.call(ketch.new{ invalid = "reject" }, H.make_ev(EV),
                  req("WzEsMl0=")) },
         { nil, "ketch: purposes is a list, not an object" }, "reject")
    H.eq(H.call(hook, H.make_ev(EV), req("e30=")), deny,
         "{}: nothing granted")
end)

H.test("event: purposes", function()
    local hook = ketch.new{ purposes = { analytics = "C0002",
                                         advertising = "C0004" } }
    H.eq(H.call(hook, ev_purposes([[{"analytics":true,"advertising":false}]]),
                H.make_req()),
         { C0002 = true, C0004 = false }, "booleans")
    H.eq(H.call(hook, ev_purposes([[{"analytics":{"allowed":"true",
                  "legalBasisCode":"consent_optin"},"advertising":
                  {"allowed":"false"}}]]), H.make_req()),
         { C0002 = true, C0004 = false }, "{allowed = \"true\"}")
    H.eq(H.call(hook, ev_purposes([[{"analytics":{"status":"granted"},
                  "advertising":{"status":"denied"}}]]), H.make_req()),
         { C0002 = true, C0004 = false }, "{status = ...}")
    H.eq(H.call(hook, ev_purposes([[{"analytics":"granted",
                  "advertising":"yes"}]]), H.make_req()),
         { C0002 = true, C0004 = false }, "strings: only granted/true count")
    H.eq(H.call(hook, ev_purposes([[{"analytics":{"allowed":true},
                  "advertising":{"allowed":1}}]]), H.make_req()),
         { C0002 = true, C0004 = false }, "allowed must be true or \"true\"")
    H.eq(H.call(hook, ev_purposes([[{"analytics":true}]]), H.make_req()),
         { C0002 = true, C0004 = false }, "advertising not mentioned")
    H.eq(H.call(hook, ev_purposes([["analytics"]]), H.make_req()),
         { C0002 = false, C0004 = false }, "a string: invalid -> deny")
end)

H.test("sources: prefer", function()
    local ev = ev_purposes([[{"analytics":false}]])
    H.eq(H.call(ketch.new(), ev, req(C3)), { analytics = false },
         "event wins by default")
    H.eq(H.call(ketch.new{ prefer = "cookie" }, ev, req(C3)),
         { analytics = true, personalization = false, k = false },
         "prefer cookie")
    H.eq(H.call(ketch.new{ prefer = "both" }, ev_purposes([[{"analytics":true,
                  "personalization":true}]]), req(C3)),
         { analytics = true, personalization = false, k = false },
         "both")
    H.eq({ H.call(ketch.new(), H.make_ev(EV), H.make_req()) }, {},
         "no signal: nil")
    H.eq(H.call(ketch.new{ event_path = "properties.ketch" },
                H.make_ev([[{"type":"track","event":"E","userId":"u",
                  "properties":{"ketch":{"analytics":true}}}]]), H.make_req()),
         { analytics = true }, "event_path option")
    H.eq(H.call(ketch.new{ cookie = "_ketch_consent_eu_" }, H.make_ev(EV),
                H.make_req{ cookie = "_ketch_consent_eu_=" .. C2 }),
         { analytics = false, data_sales = true, targeted_advertising = true },
         "cookie option")
end)
