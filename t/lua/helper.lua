-- Test helpers for the standalone Lua tests (t/lua/run.lua).
--
-- make_ev / make_req build fake `ev` / `req` values shaped like the hook
-- API the gateway provides (docs/lua.md): ev.type, ev.event, ev.userId,
-- ev.anonymousId, ev.consent, ev.context / ev.properties decoded on demand
-- with cjson, ev:json(); req.headers, req.headers_all, req.cookies,
-- req.uri, req.remote_addr.

local cjson = require "cjson"

local H = {}

H.passed, H.failed, H.failures = 0, 0, {}
H.current = "?"
H.max_kinstr = 0            -- most instructions (thousands) of one call

-- ---------------------------------------------------------------------------
-- assertions

local function show(v, depth)
    depth = depth or 0
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) ~= "table" then return tostring(v) end
    if v == cjson.null then return "null" end
    if depth > 4 then return "{...}" end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "string" or type(a) == "number")
        then return a < b end
        return type(a) < type(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do
        local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k
                   or "[" .. show(k) .. "]"
        parts[#parts + 1] = ks .. "=" .. show(v[k], depth + 1)
    end
    return "{" .. table.concat(parts, ", ") .. "}"
end
H.show = show

local function deep_eq(a, b)
    if a == b then return true end
    if type(a) ~= "table" or type(b) ~= "table" then return false end
    for k, v in pairs(a) do
        if not deep_eq(v, b[k]) then return false end
    end
    for k in pairs(b) do
        if a[k] == nil then return false end
    end
    return true
end
H.deep_eq = deep_eq

local function record(ok, msg, detail)
    if ok then
        H.passed = H.passed + 1
    else
        H.failed = H.failed + 1
        local where = debug.traceback("", 3):match("\n%s*([^\n]*test_[^\n]*)")
        H.failures[#H.failures + 1] = H.current .. ": " .. (msg or "?") ..
            (detail and ("\n      " .. detail) or "") ..
            (where and ("\n      at " .. where) or "")
    end
    return ok
end

function H.eq(got, want, msg)
    return record(deep_eq(got, want), msg,
                  "got  " .. show(got) .. "\n      want " .. show(want))
end

function H.ok(cond, msg)
    return record(cond and true or false, msg)
end

-- calls f and expects it to raise an error matching pattern
function H.raises(f, pattern, msg)
    local ok, err = pcall(f)
    if ok then return record(false, msg, "no error raised") end
    err = tostring(err)
    return record(pattern == nil or err:find(pattern) ~= nil, msg,
                  "error was: " .. err)
end

function H.test(name, fn)
    H.current = name
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then
        record(false, "test raised an error", tostring(err))
    end
end

-- ---------------------------------------------------------------------------
-- fake ev / req

local function nn(v)           -- JSON null -> nil
    if v == cjson.null then return nil end
    return v
end

-- The effective categoryPreferences of a decoded event, as the gateway
-- computes it: context.consent.categoryPreferences, else the legacy
-- context.consentCategories, else the batch's (batch_context).
local function effective_consent(obj, batch_context)
    local function from(ctx)
        if type(ctx) ~= "table" then return nil end
        local c = ctx.consent
        -- a malformed one (null, a string) is passed on as decoded: the
        -- event carries consent, with nothing consented
        if type(c) == "table" and c.categoryPreferences ~= nil then
            return c.categoryPreferences
        end
        return ctx.consentCategories
    end
    local c = from(obj.context)
    if c == nil then c = from(batch_context) end
    return c
end

-- make_ev(json_text [, batch_context_table])
function H.make_ev(text, batch_context)
    local obj = cjson.decode(text)
    local decoded = {}
    local ev = {
        type = nn(obj.type),
        event = nn(obj.event),
        userId = nn(obj.userId),
        anonymousId = nn(obj.anonymousId),
        consent = effective_consent(obj, batch_context),
    }
    return setmetatable(ev, {
        __index = function(t, k)
            if k == "json" then
                return function(self) return text end
            end
            if k == "context" or k == "properties" then
                if decoded[k] == nil then
                    -- decoded on demand, from the raw text
                    decoded[k] = { v = nn(cjson.decode(text)[k]) }
                end
                return decoded[k].v
            end
            return nil
        end,
    })
end

-- make_req{ cookie = "a=1; b=2" | {"a=1", "b=2"},
--           headers = { {"Sec-GPC", "1"}, ... }, uri = ..., remote_addr = ... }
function H.make_req(o)
    o = o or {}
    local headers, all = {}, {}
    local list = {}
    for _, h in ipairs(o.headers or {}) do list[#list + 1] = h end
    local cookie = o.cookie
    if type(cookie) == "string" then cookie = { cookie } end
    for _, c in ipairs(cookie or {}) do list[#list + 1] = { "Cookie", c } end
    for _, h in ipairs(list) do
        local name = h[1]:lower()
        if headers[name] == nil then headers[name] = h[2] end
        all[name] = all[name] or {}
        table.insert(all[name], h[2])
    end
    local cookies = {}
    for _, line in ipairs(all["cookie"] or {}) do
        for pair in line:gmatch("[^;]+") do
            local k, v = pair:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
            if k and cookies[k] == nil then cookies[k] = v end   -- raw
        end
    end
    return {
        -- headers_all: every name answers a list, possibly empty
        headers = headers,
        headers_all = setmetatable(all, {
            __index = function() return {} end }),
        cookies = cookies,
        uri = o.uri or "/v1/track",
        remote_addr = o.remote_addr or "203.0.113.7",
    }
end

-- Calls hook.event(ev, req) the way the gateway would: without io / os
-- in reach, counting VM instructions (in thousands).
function H.call(hook, ev, req)
    local saved = { io = io, os = os, dofile = dofile, loadfile = loadfile }
    io, os, dofile, loadfile = nil, nil, nil, nil
    local k = 0
    debug.sethook(function() k = k + 1 end, "", 1000)
    local res = table.pack(pcall(hook.event, ev, req or H.make_req()))
    debug.sethook()
    io, os, dofile, loadfile = saved.io, saved.os, saved.dofile, saved.loadfile
    if k > H.max_kinstr then H.max_kinstr = k end
    if not res[1] then error(res[2], 2) end
    return table.unpack(res, 2, res.n)
end

-- For fuzzing: H.call, but returns what is wrong instead of raising:
-- nil when the hook raised nothing and returned nil, (nil, reason) or a
-- table of string -> boolean; otherwise a description.
function H.call_checked(hook, ev, req)
    local ok, r, why = pcall(H.call, hook, ev, req)
    if not ok then return "raised: " .. tostring(r) end
    if r == nil then
        if why ~= nil and type(why) ~= "string" then
            return "a reason that is not a string"
        end
        return nil
    end
    if type(r) ~= "table" then return "returned a " .. type(r) end
    for k, v in pairs(r) do
        if type(k) ~= "string" or type(v) ~= "boolean" then
            return "returned " .. show(r)
        end
    end
    return nil
end

-- ---------------------------------------------------------------------------
-- independent encoders (never share code with lua/consent/util.lua)

local STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- plain RFC 4648 base64 of a byte string, with padding
function H.base64(bytes)
    local out = {}
    for i = 1, #bytes, 3 do
        local a, b, c = bytes:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local s = ""
        for j = 3, 0, -1 do
            local idx = math.floor(n / (64 ^ j)) % 64
            s = s .. STD:sub(idx + 1, idx + 1)
        end
        if c == nil then s = s:sub(1, 3) .. "=" end
        if b == nil then s = s:sub(1, 2) .. "==" end
        out[#out + 1] = s
    end
    return table.concat(out)
end

function H.base64url(bytes)
    return (H.base64(bytes):gsub("%+", "-"):gsub("/", "_"):gsub("=", ""))
end

-- bit writer: collects '0'/'1' characters
function H.bitwriter()
    local w = { bits = {} }
    function w:int(value, n)
        for i = n - 1, 0, -1 do
            self.bits[#self.bits + 1] = (math.floor(value / 2 ^ i) % 2 == 1)
                                        and "1" or "0"
        end
        return self
    end
    function w:set(set, n)        -- n flags, flag i = set[i]
        for i = 1, n do self.bits[#self.bits + 1] = set[i] and "1" or "0" end
        return self
    end
    function w:bytes()            -- zero-padded to a whole byte
        local s = table.concat(self.bits)
        s = s .. string.rep("0", (8 - #s % 8) % 8)
        local out = {}
        for i = 1, #s, 8 do out[#out + 1] = string.char(tonumber(s:sub(i, i + 7), 2)) end
        return table.concat(out)
    end
    return w
end

-- Encodes a TCF v2 core segment from fields. f.purposes / f.li /
-- f.special = sets {[n]=true}; f.vendors = set of vendor ids;
-- f.range = true to use range encoding.
function H.tc_string(f)
    local w = H.bitwriter()
    local function set_of(list) local s = {} for _, x in ipairs(list or {}) do s[x] = true end return s end
    w:int(f.version or 2, 6)
    w:int(f.created or 16000000000, 36)        -- deciseconds
    w:int(f.updated or 16000000000, 36)
    w:int(f.cmp_id or 7, 12)
    w:int(f.cmp_version or 1, 12)
    w:int(f.screen or 1, 6)
    w:int(4, 6):int(13, 6)                      -- "EN": E=4, N=13
    w:int(f.vlv or 150, 12)
    w:int(f.policy or 4, 6)
    w:int(0, 1):int(0, 1)                       -- service specific, texts
    w:set(set_of(f.special), 12)
    w:set(set_of(f.purposes), 24)
    w:set(set_of(f.li), 24)
    w:int(0, 1)                                 -- purpose one treatment
    w:int(0, 6):int(0, 6)                       -- publisher CC "AA"
    local vendors = f.vendors or {}
    local max = 0
    for _, v in ipairs(vendors) do if v > max then max = v end end
    w:int(max, 16)
    if f.range then
        w:int(1, 1)
        local sorted = {}
        for _, v in ipairs(vendors) do sorted[#sorted + 1] = v end
        table.sort(sorted)
        local ranges = {}
        for _, v in ipairs(sorted) do
            local last = ranges[#ranges]
            if last and last[2] + 1 == v then last[2] = v
            else ranges[#ranges + 1] = { v, v } end
        end
        w:int(#ranges, 12)
        for _, r in ipairs(ranges) do
            if r[1] == r[2] then w:int(0, 1):int(r[1], 16)
            else w:int(1, 1):int(r[1], 16):int(r[2], 16) end
        end
    else
        w:int(0, 1)
        w:set(set_of(vendors), max)
    end
    w:int(0, 16):int(0, 1)                      -- vendor LI: none
    w:int(0, 12)                                -- no publisher restrictions
    return H.base64url(w:bytes())
end

return H
