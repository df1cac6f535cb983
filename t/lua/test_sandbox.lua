-- The shipped modules use only globals a hook may use: no io, no os, no
-- debug, no load*, and they never assign a global (one Lua state serves
-- every request of a worker).
local H = ...

local ALLOWED = {
    assert = true, error = true, ipairs = true, next = true, pairs = true,
    pcall = true, rawequal = true, rawget = true, require = true,
    select = true, setmetatable = true, getmetatable = true,
    tonumber = true, tostring = true, type = true,
    math = true, string = true, table = true, utf8 = true,
}

local MODULES = { "util", "onetrust", "trustarc", "ketch", "tcf", "gpc",
                  "gpp", "gcm",
                  "rudderstack", "chain" }

H.test("static: globals read or written (luac5.4 -l)", function()
    local p = io.popen("command -v luac5.4 2>/dev/null")
    local luac = p and p:read("l")
    if p then p:close() end
    if not luac or luac == "" then
        H.ok(true, "luac5.4 not installed: static check skipped")
        return
    end
    for _, m in ipairs(MODULES) do
        local f = io.popen("luac5.4 -l -l -p lua/consent/" .. m .. ".lua")
        local bad = {}
        for line in f:lines() do
            local op, name = line:match("%s(%u+TABUP)%s.-; _ENV \"([^\"]+)\"")
            if op == "SETTABUP" then
                bad[#bad + 1] = "assigns global " .. name
            elseif op == "GETTABUP" and not ALLOWED[name] then
                bad[#bad + 1] = "reads global " .. name
            end
        end
        f:close()
        H.eq(bad, {}, m .. ".lua")
    end
end)

H.test("dynamic: exercised paths under a guarded environment", function()
    local used, cache = {}, {}
    local env
    local function guarded_require(name)
        if name:match("^consent%.") then
            if cache[name] == nil then
                local path = "lua/" .. name:gsub("%.", "/") .. ".lua"
                cache[name] = assert(loadfile(path, "t", env))(name)
            end
            return cache[name]
        end
        return require(name)                    -- cjson
    end
    env = setmetatable({}, {
        __index = function(_, k)
            used[k] = true
            if k == "require" then return guarded_require end
            return _G[k]
        end,
        __newindex = function(_, k) error("assignment to global " .. k, 2) end,
    })
    local chain = guarded_require("consent.chain")
    local hook = chain(
        guarded_require("consent.onetrust").new{ all_groups = { "C0001" } },
        guarded_require("consent.trustarc").new{ merge = true },
        guarded_require("consent.ketch").new{ merge = true },
        guarded_require("consent.tcf").new{ merge = true,
            categories = { T = { purposes = { 1 }, vendors = { 3 } } } },
        guarded_require("consent.rudderstack").new{ merge = true,
            groups = { g = { "a", "b" } } },
        guarded_require("consent.gpc").new{ categories = { "C0004" } })
    local ev = H.make_ev([[{"type":"track","event":"E","userId":"u","context":{
      "consent":{"ketch":{"purposes":{"analytics":true}}},
      "consentManagement":{"allowedConsentIds":["a"],"deniedConsentIds":["b"]}}}]])
    local req = H.make_req{
        cookie = "OptanonConsent=groups=C0001%3A1; notice_gdpr_prefs=0,1:; " ..
                 "euconsent-v2=" .. H.tc_string{ purposes = { 1 }, vendors = { 3 } },
        headers = { { "Sec-GPC", "1" } } }
    H.eq(H.call(hook, ev, req),
         { C0001 = true, ["ta-1"] = true, ["ta-2"] = true, ["ta-3"] = false,
           analytics = true, T = true, a = true, b = false, g = false,
           C0004 = false }, "six hooks merged")
    local bad = {}
    for k in pairs(used) do
        if not ALLOWED[k] then bad[#bad + 1] = k end
    end
    table.sort(bad)
    H.eq(bad, {}, "no global outside the allowed set was read")
end)
