-- consent.gpc
local H = ...
local gpc = require "consent.gpc"

local WITH = [[{"type":"track","event":"Checkout Started","userId":"u1",
  "context":{"consent":{"categoryPreferences":
    {"C0001":true,"C0002":true,"C0004":true,"C0005":false}}}}]]
local WITHOUT = [[{"type":"track","event":"Checkout Started","userId":"u1"}]]

-- a browser with Global Privacy Control on (Firefox, Brave, DuckDuckGo)
local function browser(extra)
    local headers = {
        { "Host", "collect.example.com" },
        { "User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0" },
        { "Accept", "*/*" },
        { "Content-Type", "text/plain" },
        { "Origin", "https://www.example.com" },
    }
    for _, h in ipairs(extra or {}) do headers[#headers + 1] = h end
    return H.make_req{ headers = headers }
end

H.test("Sec-GPC: 1 forces the configured categories false", function()
    local hook = gpc.new{ categories = { "C0004", "C0005" } }
    H.eq(H.call(hook, H.make_ev(WITH), browser{ { "Sec-GPC", "1" } }),
         { C0001 = true, C0002 = true, C0004 = false, C0005 = false },
         "C0004 forced false, the rest kept")
    H.eq(H.call(hook, H.make_ev(WITH), browser{ { "sec-gpc", "1" } }),
         { C0001 = true, C0002 = true, C0004 = false, C0005 = false },
         "header name case does not matter")
end)

H.test("only the exact value 1 counts", function()
    local hook = gpc.new{ categories = "C0004" }
    for _, v in ipairs{ " 1", "1 ", "true", "0", "", "01", "1,1", "yes" } do
        H.eq({ H.call(hook, H.make_ev(WITH), browser{ { "Sec-GPC", v } }) }, {},
             "Sec-GPC: '" .. v .. "' is no signal")
    end
    H.eq({ H.call(hook, H.make_ev(WITH), browser()) }, {}, "no header")
end)

H.test("any one of several Sec-GPC headers", function()
    local hook = gpc.new{ categories = { "C0004" } }
    H.eq(H.call(hook, H.make_ev(WITH),
                browser{ { "Sec-GPC", "0" }, { "Sec-GPC", "1" } }),
         { C0001 = true, C0002 = true, C0004 = false, C0005 = false },
         "second header is 1")
    H.eq({ H.call(hook, H.make_ev(WITH),
                  browser{ { "Sec-GPC", "0" }, { "Sec-GPC", "true" } }) }, {},
         "none is exactly 1")
    -- without headers_all (older API shape) the first value is used
    local req = browser{ { "Sec-GPC", "1" } }
    req.headers_all = nil
    H.eq(H.call(hook, H.make_ev(WITH), req)["C0004"], false, "headers only")
end)

H.test("event without consent", function()
    local hook = gpc.new{ categories = { "C0004" } }
    H.eq(H.call(hook, H.make_ev(WITHOUT), browser{ { "Sec-GPC", "1" } }),
         { C0004 = false }, "only the forced categories")
    local granted = gpc.new{ categories = { "C0004" },
                             assume_granted = { "C0001", "C0002" } }
    H.eq(H.call(granted, H.make_ev(WITHOUT), browser{ { "Sec-GPC", "1" } }),
         { C0001 = true, C0002 = true, C0004 = false }, "assume_granted")
    H.eq(H.call(granted, H.make_ev(WITH), browser{ { "Sec-GPC", "1" } }),
         { C0001 = true, C0002 = true, C0004 = false, C0005 = false },
         "assume_granted not used when the event carries consent")
    local clash = gpc.new{ categories = { "C0004" }, assume_granted = { "C0004" } }
    H.eq(H.call(clash, H.make_ev(WITHOUT), browser{ { "Sec-GPC", "1" } }),
         { C0004 = false }, "forced false wins over assume_granted")
end)

H.test("malformed and batch-level preferences", function()
    local hook = gpc.new{ categories = { "C0004" } }
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u",
      "context":{"consent":{"categoryPreferences":"all"}}}]])
    H.eq(H.call(hook, ev, browser{ { "Sec-GPC", "1" } }), { C0004 = false },
         "a non-object stays failing closed")
    local g = gpc.new{ categories = { "C0004" }, assume_granted = { "C0002" } }
    ev = H.make_ev([[{"type":"track","event":"E","userId":"u",
      "context":{"consent":{"categoryPreferences":null}}}]])
    H.eq(H.call(g, ev, browser{ { "Sec-GPC", "1" } }), { C0004 = false },
         "null preferences are malformed, not absent: no assume_granted")
    ev = H.make_ev([[{"type":"track","event":"E","userId":"u",
      "context":{"consent":{"categoryPreferences":{"C0002":"yes","C0003":true}}}}]])
    H.eq(H.call(hook, ev, browser{ { "Sec-GPC", "1" } }),
         { C0002 = false, C0003 = true, C0004 = false },
         "non-boolean values become false")
    ev = H.make_ev(WITHOUT, { consent = { categoryPreferences = { C0002 = true,
                                                                 C0004 = true } } })
    H.eq(H.call(hook, ev, browser{ { "Sec-GPC", "1" } }),
         { C0002 = true, C0004 = false }, "batch-level preferences")
end)

H.test("result is a copy", function()
    local hook = gpc.new{ categories = { "C0004" } }
    local ev = H.make_ev(WITH)
    local r = H.call(hook, ev, browser{ { "Sec-GPC", "1" } })
    H.ok(r ~= ev.consent, "new table")
    H.eq(ev.consent.C0004, true, "ev.consent untouched")
end)

H.test("options", function()
    H.raises(function() gpc.new{} end, "categories", "categories required")
    H.raises(function() gpc.new{ categories = { 4 } } end, "strings", "strings")
    local custom = gpc.new{ categories = { "ads" }, header = "X-GPC" }
    H.eq(H.call(custom, H.make_ev(WITHOUT), browser{ { "X-GPC", "1" } }),
         { ads = false }, "header option")
end)
