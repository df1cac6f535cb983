-- consent.rudderstack
local H = ...
local rudderstack = require "consent.rudderstack"

local function ev(cm)
    return H.make_ev([[{"type":"track","event":"Product Purchased",
      "userId":"u1","properties":{"name":"Sweatshirt","price":14.99},
      "context":{"library":{"name":"http"},"traits":{"plan":"Free Tier"},
        "consentManagement":]] .. cm .. [[}}]])
end

local ONETRUST_AND = [[{"provider":"oneTrust","resolutionStrategy":"and",
  "allowedConsentIds":["C0001","C0002"],"deniedConsentIds":["C0003","C0004"]}]]

H.test("strict: allowed true, denied false", function()
    local hook = rudderstack.new()
    H.eq(H.call(hook, ev(ONETRUST_AND), H.make_req()),
         { C0001 = true, C0002 = true, C0003 = false, C0004 = false }, "lists")
    H.eq(H.call(hook, ev([[{"provider":"custom","allowedConsentIds":["a","b"],
                  "deniedConsentIds":["b"]}]]), H.make_req()),
         { a = true, b = false }, "in both lists: denied wins")
    H.eq(H.call(hook, ev([[{"provider":"ketch","resolutionStrategy":"or",
                  "allowedConsentIds":["analytics"]}]]), H.make_req()),
         { analytics = true }, "deniedConsentIds missing")
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","allowedConsentIds":[],
                  "deniedConsentIds":[]}]]), H.make_req()),
         {}, "both empty: carries consent, nothing consented")
    H.eq({ H.call(hook, H.make_ev([[{"type":"track","event":"E","userId":"u"}]]),
                  H.make_req()) }, {}, "no consentManagement: nil")
end)

H.test("strict: malformed fails closed", function()
    local hook = rudderstack.new{ categories = { "C0002", "C0004" },
                                  groups = { any = { "C0002", "C0004" } } }
    local deny = { C0002 = false, C0004 = false, any = false }
    H.eq(H.call(hook, ev([["C0001"]]), H.make_req()), deny, "not an object")
    H.eq(H.call(hook, ev([[{"allowedConsentIds":"C0002"}]]), H.make_req()),
         deny, "allowed not a list")
    H.eq(H.call(hook, ev([[{"allowedConsentIds":["C0002",4]}]]), H.make_req()),
         deny, "a number in a list")
    H.eq(H.call(hook, ev([[{"deniedConsentIds":{"C0004":true}}]]), H.make_req()),
         deny, "denied an object")
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","resolutionStrategy":"xor",
                  "allowedConsentIds":["C0002"]}]]), H.make_req()),
         deny, "unknown strategy")
    H.eq({ H.call(rudderstack.new{ invalid = "reject" },
                  ev([[{"allowedConsentIds":"C0002"}]]), H.make_req()) },
         { nil, "rudderstack: allowedConsentIds is not a list" }, "reject")
end)

H.test("resolutionStrategy and groups", function()
    local hook = rudderstack.new{ groups = { ["ads-any"] = { "C0003", "C0004" },
                                             ["core-all"] = { "C0001", "C0002" } } }
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","resolutionStrategy":"or",
                  "allowedConsentIds":["C0001","C0004"],
                  "deniedConsentIds":["C0002","C0003"]}]]), H.make_req()),
         { C0001 = true, C0002 = false, C0003 = false, C0004 = true,
           ["ads-any"] = true, ["core-all"] = true },
         "or: a group is true when any member is allowed")
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","resolutionStrategy":"and",
                  "allowedConsentIds":["C0001","C0004"],
                  "deniedConsentIds":["C0002","C0003"]}]]), H.make_req()),
         { C0001 = true, C0002 = false, C0003 = false, C0004 = true,
           ["ads-any"] = false, ["core-all"] = false },
         "and: a group needs all members")
    H.eq(H.call(hook, ev([[{"provider":"oneTrust",
                  "allowedConsentIds":["C0003","C0004"]}]]), H.make_req()),
         { C0003 = true, C0004 = true, ["ads-any"] = true, ["core-all"] = false },
         "no strategy: and")
    -- custom provider: RudderStack reads the strategy from the destination
    -- settings, so the event's value is ignored and custom_strategy used
    local custom_or = rudderstack.new{ custom_strategy = "or",
                                       groups = { g = { "x", "y" } } }
    H.eq(H.call(custom_or, ev([[{"provider":"custom","resolutionStrategy":"and",
                  "allowedConsentIds":["x"],"deniedConsentIds":["y"]}]]),
                H.make_req()),
         { x = true, y = false, g = true }, "custom: custom_strategy = or")
    H.eq(H.call(rudderstack.new{ groups = { g = { "x", "y" } } },
                ev([[{"provider":"custom","resolutionStrategy":"or",
                  "allowedConsentIds":["x"],"deniedConsentIds":["y"]}]]),
                H.make_req()),
         { x = true, y = false, g = false }, "custom: default and")
    local forced = rudderstack.new{ strategy = "and", groups = { g = { "x", "y" } } }
    H.eq(H.call(forced, ev([[{"provider":"ketch","resolutionStrategy":"or",
                  "allowedConsentIds":["x"],"deniedConsentIds":["y"]}]]),
                H.make_req()),
         { x = true, y = false, g = false }, "strategy option overrides the event")
end)

H.test("mode = rudderstack: only denied ids decide", function()
    local hook = rudderstack.new{ mode = "rudderstack",
                                  categories = { "C0001", "C0002", "C0003", "C0004" },
                                  groups = { ["ads-any"] = { "C0003", "C0004" } } }
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","resolutionStrategy":"and",
                  "allowedConsentIds":["C0001"],"deniedConsentIds":["C0004"]}]]),
                H.make_req()),
         { C0001 = true, C0002 = true, C0003 = true, C0004 = false,
           ["ads-any"] = false },
         "not denied = true, as RudderStack decides")
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","resolutionStrategy":"or",
                  "allowedConsentIds":[],"deniedConsentIds":["C0004"]}]]),
                H.make_req()),
         { C0001 = true, C0002 = true, C0003 = true, C0004 = false,
           ["ads-any"] = true }, "or: some member not denied")
    H.eq(H.call(hook, ev([[{"provider":"oneTrust","resolutionStrategy":"or",
                  "deniedConsentIds":["C0003","C0004"]}]]), H.make_req()),
         { C0001 = true, C0002 = true, C0003 = false, C0004 = false,
           ["ads-any"] = false }, "or: every member denied")
    H.eq({ H.call(hook, ev([[{"provider":"oneTrust",
                  "allowedConsentIds":["C0001"],"deniedConsentIds":[]}]]),
                  H.make_req()) }, {},
         "no denied id: nil (RudderStack filters nothing)")
    H.eq({ H.call(hook, ev([[{"provider":"oneTrust",
                  "allowedConsentIds":["C0001"],"deniedConsentIds":[""]}]]),
                  H.make_req()) }, {},
         "empty ids are dropped, as RudderStack does")
    H.raises(function() rudderstack.new{ mode = "rudderstack" } end,
             "categories", "needs categories")
end)

H.test("providers, path, merge", function()
    local only_ot = rudderstack.new{ providers = { "oneTrust" } }
    H.eq({ H.call(only_ot, ev([[{"provider":"ketch","allowedConsentIds":["a"]}]]),
                  H.make_req()) }, {}, "other provider ignored")
    H.eq(H.call(only_ot, ev(ONETRUST_AND), H.make_req()).C0001, true,
         "listed provider used")
    local p = rudderstack.new{ path = "properties.cm" }
    H.eq(H.call(p, H.make_ev([[{"type":"track","event":"E","userId":"u",
           "properties":{"cm":{"allowedConsentIds":["z"]}}}]]), H.make_req()),
         { z = true }, "path option")
    local m = rudderstack.new{ merge = true }
    H.eq(H.call(m, H.make_ev([[{"type":"track","event":"E","userId":"u",
           "context":{"consent":{"categoryPreferences":{"keep":true,"C0004":true}},
             "consentManagement":{"deniedConsentIds":["C0004"]}}}]]), H.make_req()),
         { keep = true, C0004 = false }, "merge")
    H.raises(function() rudderstack.new{ strategy = "xor" } end, "strategy", "bad strategy")
    H.raises(function() rudderstack.new{ groups = { g = {} } } end, "empty", "empty group")
end)
