-- consent.chain
local H = ...
local chain = require "consent.chain"
local onetrust = require "consent.onetrust"
local gpc = require "consent.gpc"

local EV = [[{"type":"track","event":"Signed Up","userId":"u1"}]]

-- a hook recording what it saw
local function spy(ret, reason, log, name)
    return { event = function(ev, req)
        log[#log + 1] = { name = name, consent = ev.consent and H.show(ev.consent) }
        return ret, reason
    end }
end

H.test("passes the preferences along and returns the last", function()
    local log = {}
    local h = chain(spy({ a = true }, nil, log, "1"),
                    spy(nil, nil, log, "2"),
                    spy({ a = true, b = false }, nil, log, "3"),
                    spy(nil, nil, log, "4"))
    local ev = H.make_ev(EV)
    H.eq(H.call(h, ev, H.make_req()), { a = true, b = false }, "last table wins")
    H.eq(log, {
        { name = "1" },
        { name = "2", consent = "{a=true}" },
        { name = "3", consent = "{a=true}" },
        { name = "4", consent = "{a=true, b=false}" },
    }, "each hook saw the latest preferences")
end)

H.test("nil when no hook returns a table", function()
    local h = chain(spy(nil, nil, {}, "1"), function() return nil end)
    H.eq({ H.call(h, H.make_ev(EV), H.make_req()) }, {}, "nil")
    H.eq({ H.call(chain(), H.make_ev(EV), H.make_req()) }, {}, "empty chain")
    H.eq({ H.call(chain({}), H.make_ev(EV), H.make_req()) }, {},
         "a hook table without event() is skipped")
end)

H.test("the first rejection stops the chain", function()
    local log = {}
    local h = chain.new{ spy({ a = true }, nil, log, "1"),
                         spy(nil, "bot traffic", log, "2"),
                         spy({ z = true }, nil, log, "3") }
    H.eq({ H.call(h, H.make_ev(EV), H.make_req()) }, { nil, "bot traffic" },
         "nil, reason")
    H.eq(#log, 2, "hook 3 not called")
    local f = chain(function() return false, "no" end)
    H.eq({ H.call(f, H.make_ev(EV), H.make_req()) }, { nil, "no" },
         "false, reason also rejects")
end)

H.test("errors", function()
    H.raises(function() chain(42) end, "argument 1", "not a hook")
    H.raises(function() chain({}, nil, {}) end, "argument 2", "a nil argument")
    H.raises(function() chain({ event = "x" }) end, "argument 1", "event not a function")
    H.raises(function() chain.new(5) end, "list", "new needs a list")
    local h = chain(function() return "yes" end)
    H.raises(function() H.call(h, H.make_ev(EV), H.make_req()) end,
             "hook 1 returned a string", "a string result raises")
    local boom = chain(function() error("kaboom") end)
    H.raises(function() H.call(boom, H.make_ev(EV), H.make_req()) end,
             "kaboom", "errors propagate to the gateway (fails closed)")
end)

H.test("onetrust then gpc", function()
    local h = chain(onetrust.new{ all_groups = { "C0001", "C0002", "C0004" } },
                    gpc.new{ categories = { "C0004" } })
    local cookie = "OptanonConsent=isGpcEnabled=1&groups=C0001%3A1%2CC0002%3A1%2CC0004%3A1"
    H.eq(H.call(h, H.make_ev(EV), H.make_req{ cookie = cookie,
                                              headers = { { "Sec-GPC", "1" } } }),
         { C0001 = true, C0002 = true, C0004 = false }, "GPC overrides OneTrust")
    H.eq(H.call(h, H.make_ev(EV), H.make_req{ cookie = cookie }),
         { C0001 = true, C0002 = true, C0004 = true }, "no GPC: OneTrust's")
    H.eq(H.call(h, H.make_ev(EV), H.make_req{ headers = { { "Sec-GPC", "1" } } }),
         { C0004 = false }, "no OneTrust signal: GPC on the event alone")
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u",
      "context":{"consent":{"categoryPreferences":{"C0002":true,"C0004":true}}}}]])
    H.eq(H.call(h, ev, H.make_req{ headers = { { "Sec-GPC", "1" } } }),
         { C0002 = true, C0004 = false },
         "no OneTrust signal: GPC on the event's own preferences")
end)

H.test("docs/lua.md: onetrust + tcf (merge) + gpc", function()
    local h = chain(
        onetrust.new{ all_groups = { "C0002", "C0004" } },
        require("consent.tcf").new{ merge = true,
                                    categories = { tcf_ads = { 1, 2, 3, 4 } } },
        gpc.new{ categories = { "C0004", "tcf_ads" } })
    local cookie = "OptanonConsent=groups=C0002%3A1%2CC0004%3A1; euconsent-v2=" ..
                   H.tc_string{ purposes = { 1, 2, 3, 4 } }
    H.eq(H.call(h, H.make_ev(EV), H.make_req{ cookie = cookie }),
         { C0002 = true, C0004 = true, tcf_ads = true }, "merged")
    H.eq(H.call(h, H.make_ev(EV), H.make_req{ cookie = cookie,
                                              headers = { { "Sec-GPC", "1" } } }),
         { C0002 = true, C0004 = false, tcf_ads = false }, "with GPC")
end)
