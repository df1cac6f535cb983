-- consent.util: helpers shared by the shipped CMP mappings.
--
-- Pure Lua 5.4 plus lua-cjson. No io, no os, nothing that blocks: every
-- function here runs inside a hook, once per event.

local cjson = require "cjson"

local byte, char, sub, find, gsub = string.byte, string.char, string.sub,
                                    string.find, string.gsub
local type, pairs, ipairs, tonumber, pcall = type, pairs, ipairs, tonumber,
                                             pcall
local next = next

local M = {}

M.null = cjson.null

-- ---------------------------------------------------------------------------
-- URL and cookie decoding

local function hexchar(h)
    return char(tonumber(h, 16))
end

-- Percent-decodes s. With plus == true a '+' becomes a space first
-- (application/x-www-form-urlencoded, as in OneTrust's OptanonConsent).
-- Malformed escapes ("%G1", a trailing "%") are left as they are.
function M.url_decode(s, plus)
    if plus and find(s, "+", 1, true) then
        s = gsub(s, "%+", " ")
    end
    if find(s, "%", 1, true) then
        s = gsub(s, "%%(%x%x)", hexchar)
    end
    return s
end

-- The raw value of cookie `name` from req.cookies, with one pair of
-- surrounding double quotes removed (RFC 6265 allows a quoted value).
-- nil when the cookie is absent or empty, or name is false/nil.
function M.cookie(req, name)
    if not name then return nil end
    local cookies = req and req.cookies
    if cookies == nil then return nil end
    local v = cookies[name]
    if type(v) ~= "string" or v == "" then return nil end
    if #v >= 2 and byte(v, 1) == 34 and byte(v, -1) == 34 then
        v = sub(v, 2, -2)
        if v == "" then return nil end
    end
    return v
end

-- The value of `key` in a query-string-like text "a=1&b=2", decoded
-- (with '+' as space); nil when absent. The first occurrence wins.
function M.query_param(s, key)
    -- fast path: "key=" at the start or right after a '&'
    local pat, init = key .. "=", 1
    while true do
        local i = find(s, pat, init, true)
        if i == nil then break end
        if i == 1 or byte(s, i - 1) == 38 then
            local j = find(s, "&", i, true)
            return M.url_decode(sub(s, i + #pat, j and j - 1 or #s), true)
        end
        init = i + 1
    end
    -- slow path: an encoded key, or the key without '='
    for pair in s:gmatch("[^&]+") do
        local eq = find(pair, "=", 1, true)
        local k = eq and sub(pair, 1, eq - 1) or pair
        if find(k, "[%%+]") then k = M.url_decode(k, true) end
        if k == key then
            return eq and M.url_decode(sub(pair, eq + 1), true) or ""
        end
    end
    return nil
end

-- Splits s on any character of the class `sep` (a Lua pattern class body,
-- e.g. ",|"), trimming blanks; empty items are dropped.
function M.split(s, sep)
    local out, n = {}, 0
    for item in s:gmatch("[^" .. sep .. "]+") do
        item = item:match("^%s*(.-)%s*$")
        if item ~= "" then
            n = n + 1
            out[n] = item
        end
    end
    return out
end

-- ---------------------------------------------------------------------------
-- Base64 (standard and URL-safe alphabets, padding optional)

local B64 = {}
do
    local alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for i = 1, #alpha do B64[byte(alpha, i)] = i - 1 end
    B64[byte("+")] = 62
    B64[byte("/")] = 63
    B64[byte("-")] = 62
    B64[byte("_")] = 63
end
M.B64 = B64

-- Decodes base64 text (either alphabet, '=' padding optional, no
-- whitespace). Returns the bytes, or nil and a reason.
function M.base64_decode(s)
    if type(s) ~= "string" then return nil, "not a string" end
    local n = #s
    while n > 0 and byte(s, n) == 61 do n = n - 1 end     -- strip '='
    if #s - n > 2 then return nil, "bad padding" end
    if n % 4 == 1 then return nil, "bad length" end
    local out, o = {}, 0
    local i = 1
    while i <= n do
        local a, b, c, d = byte(s, i, i + 3)
        local va, vb = B64[a], B64[b]
        if va == nil or vb == nil then return nil, "bad character" end
        local vc, vd = 0, 0
        local nbytes = 3
        if i + 2 > n then
            nbytes = 1
        else
            vc = B64[c]
            if vc == nil then return nil, "bad character" end
            if i + 3 > n then
                nbytes = 2
            else
                vd = B64[d]
                if vd == nil then return nil, "bad character" end
            end
        end
        local v = (va << 18) | (vb << 12) | (vc << 6) | vd
        o = o + 1
        if nbytes == 3 then
            out[o] = char(v >> 16, (v >> 8) & 255, v & 255)
        elseif nbytes == 2 then
            out[o] = char(v >> 16, (v >> 8) & 255)
        else
            out[o] = char(v >> 16)
        end
        i = i + 4
    end
    return table.concat(out)
end

-- ---------------------------------------------------------------------------
-- Bit reader over base64url text (IAB TCF): bits are read most
-- significant first, straight from the 6-bit digits, no byte decoding.

local Bits = {}
Bits.__index = Bits

-- Returns a reader, or nil and a reason when s holds a character outside
-- the base64url alphabet ('+' and '/' are accepted too; trailing '='
-- padding is ignored).
function M.bits(s)
    if type(s) ~= "string" then return nil, "not a string" end
    local n = #s
    while n > 0 and byte(s, n) == 61 do n = n - 1 end
    for i = 1, n do
        if B64[byte(s, i)] == nil then return nil, "bad character" end
    end
    return setmetatable({ s = s, pos = 0, len = n * 6 }, Bits)
end

-- Reads an n-bit unsigned integer (n <= 62) at the current position and
-- advances; nil when the text is too short.
function Bits:read(n)
    local pos = self.pos
    if pos + n > self.len then return nil end
    local s, v = self.s, 0
    while n > 0 do
        local idx = pos // 6
        local off = pos - idx * 6
        local take = 6 - off
        if take > n then take = n end
        local d = B64[byte(s, idx + 1)]
        v = (v << take) | ((d >> (6 - off - take)) & ((1 << take) - 1))
        pos = pos + take
        n = n - take
    end
    self.pos = pos
    return v
end

-- The single bit at absolute position p (0-based), without moving;
-- nil when out of range.
function Bits:bit_at(p)
    if p < 0 or p >= self.len then return nil end
    local idx = p // 6
    local d = B64[byte(self.s, idx + 1)]
    return (d >> (5 - (p - idx * 6))) & 1
end

function Bits:skip(n)
    if self.pos + n > self.len then return nil end
    self.pos = self.pos + n
    return true
end

-- Reads a Fibonacci-coded positive integer (IAB GPP, "Consent String
-- Specification", "About Fibonacci Encoding": bit i of the code word
-- stands for F(i+2) = 1, 2, 3, 5, 8, ...; the word ends with the first
-- "11"; "11" = 1, "011" = 2, "0011" = 3, "1011" = 4). At most max_bits
-- bits (default 40) are read before the terminating 1. nil when the
-- text ends first or the code word is longer.
function Bits:fibonacci(max_bits)
    max_bits = max_bits or 40
    local a, b = 1, 2                  -- the values of the next two bits
    local v, prev = 0, 0
    for _ = 1, max_bits + 1 do
        local bit = self:read(1)
        if bit == nil then return nil end
        if bit == 1 and prev == 1 then return v end
        if bit == 1 then v = v + a end
        prev = bit
        a, b = b, a + b
    end
    return nil
end

-- ---------------------------------------------------------------------------
-- Event access

-- Compiles "context.consent.onetrust.activeGroups" (or an array of keys)
-- into an array of keys. false/nil stay false (source disabled).
function M.path(p)
    if p == nil or p == false then return false end
    if type(p) == "table" then return p end
    local out = {}
    for k in tostring(p):gmatch("[^.]+") do out[#out + 1] = k end
    assert(#out > 0, "empty path")
    return out
end

-- Follows a compiled path from ev (the first key reads ev's field, e.g.
-- ev.context, which the gateway decodes on demand). JSON null and
-- non-table intermediates give nil.
function M.get(ev, path)
    if not path then return nil end
    local v = ev[path[1]]
    for i = 2, #path do
        if type(v) ~= "table" then return nil end
        v = v[path[i]]
    end
    if v == cjson.null then return nil end
    return v
end

-- Wraps a parser of one string argument in a one-entry cache: the same
-- string as last time (a cookie is the same for every event of a batch,
-- and usually for the next request of the same user) returns the same
-- results without parsing again. Callers must treat results as read-only.
function M.memo1(fn)
    local last_k, last_a, last_b = nil, nil, nil
    return function(k)
        if k == last_k and k ~= nil then return last_a, last_b end
        local a, b = fn(k)
        last_k, last_a, last_b = k, a, b
        return a, b
    end
end

-- JSON decode that returns nil instead of raising.
function M.json_decode(s)
    local ok, v = pcall(cjson.decode, s)
    if ok then return v end
    return nil
end

-- ---------------------------------------------------------------------------
-- Preferences

-- A copy of a preferences table holding only string keys, every value
-- a boolean: true stays true, anything else (false, null, "yes", 1)
-- becomes false, as the routing rule counts it. Non-tables give {}.
function M.normalize(t)
    local out = {}
    if type(t) ~= "table" then return out end
    for k, v in pairs(t) do
        if type(k) == "string" then out[k] = (v == true) end
    end
    return out
end

-- Sets category k to v in t with AND semantics: once false, stays false.
function M.set_and(t, k, v)
    if v == true then
        if t[k] == nil then t[k] = true end
    else
        t[k] = false
    end
end

-- Accepts a string or an array of strings; returns an array (copy).
function M.list(v, what)
    if v == nil or v == false then return {} end
    if type(v) == "string" then return { v } end
    assert(type(v) == "table", (what or "option") .. " must be a list")
    for k in pairs(v) do
        assert(math.type(k) == "integer", (what or "option") ..
               " must be a list, not a map")
    end
    local out = {}
    for i, x in ipairs(v) do
        assert(type(x) == "string", (what or "option") ..
               " must hold strings")
        out[i] = x
    end
    return out
end

-- A fresh table with every key of `set` mapped to v (the "nothing
-- consented" table of a mapping is fill(categories, false)).
function M.fill(set, v)
    local out = {}
    for k in pairs(set) do out[k] = v end
    return out
end

-- Reads the "signal = category or list of categories" options of a
-- mapping (gpp's opt-outs, gcm's consent types): keys in `signals` map,
-- keys in `options` are the mapping's other options, any other key is a
-- configuration error naming `hint`. Returns map (signal -> list of
-- ids) and the set of every category named.
function M.category_map(opts, signals, options, name, hint)
    local map, cats = {}, {}
    for k, v in pairs(opts) do
        if signals[k] then
            local list = M.list(v, name .. ": " .. k)
            assert(#list > 0, name .. ": " .. k .. " names no category")
            map[k] = list
            for _, id in ipairs(list) do cats[id] = true end
        else
            assert(options[k], name .. ": unknown option '" .. tostring(k)
                   .. "' (" .. hint .. ")")
        end
    end
    assert(next(map) ~= nil, name .. ": map at least one of the " .. hint ..
           " to a category")
    return map, cats
end

-- Merges two result tables for prefer = "both": a category is true only
-- when both sources say true; present in one source only = false.
function M.both(a, b)
    local out = {}
    for k, v in pairs(a) do out[k] = (v == true and b[k] == true) end
    for k in pairs(b) do
        if out[k] == nil then out[k] = false end
    end
    return out
end

local PREFER = { event = true, cookie = true, both = true }
local MISSING = { keep = true, deny = true, reject = true }
local INVALID = { deny = true, reject = true, keep = true }

-- Validates the options every mapping shares and fills in defaults.
function M.common(opts, name)
    opts = opts or {}
    assert(type(opts) == "table", name .. ".new: options must be a table")
    local c = {
        name = name,
        prefer = opts.prefer or "event",
        missing = opts.missing or "keep",
        invalid = opts.invalid or "deny",
        merge = opts.merge and true or false,
    }
    assert(PREFER[c.prefer], name .. ": prefer must be event, cookie or both")
    assert(MISSING[c.missing], name .. ": missing must be keep, deny or reject")
    assert(INVALID[c.invalid], name .. ": invalid must be deny, reject or keep")
    return c
end

-- Picks the result from two sources. Each source is a function (ev, req)
-- returning (table) on success, (nil) when absent, or (false, reason)
-- when present but malformed; a source is only evaluated when needed.
-- The preferred source being malformed fails; there is no fallback then.
-- Returns (table) | (nil) absent | (false, reason) malformed.
function M.pick(prefer, from_event, from_cookie, ev, req)
    if prefer == "both" then
        local a, ea = from_event(ev, req)
        if a == false then return false, ea end
        local b, eb = from_cookie(ev, req)
        if b == false then return false, eb end
        if a and b then return M.both(a, b) end
        return a or b
    end
    local first, second = from_event, from_cookie
    if prefer == "cookie" then first, second = from_cookie, from_event end
    local r, err = first(ev, req)
    if r ~= nil then return r, err end      -- a table, or false + reason
    return second(ev, req)
end

-- Turns the picked result into the hook's return values, applying the
-- missing / invalid policies and merge. deny_table() builds the
-- "nothing consented" table of the mapping.
function M.finish(c, ev, r, err, deny_table)
    if r == nil then
        if c.missing == "keep" then return nil end
        if c.missing == "reject" then
            return nil, c.name .. ": no consent signal"
        end
        return deny_table()
    end
    if r == false then
        if c.invalid == "keep" then return nil end
        if c.invalid == "reject" then
            return nil, c.name .. ": " .. (err or "malformed consent signal")
        end
        return deny_table()
    end
    if c.merge then
        local base = M.normalize(ev.consent)
        for k, v in pairs(r) do base[k] = v end
        return base
    end
    return r
end

-- The hook of a CMP mapping that reads an event field and a cookie:
-- picks by c.prefer, then finish().
function M.hook(c, from_event, from_cookie, deny_table)
    local hook = {}

    function hook.event(ev, req)
        local r, err = M.pick(c.prefer, from_event, from_cookie, ev, req)
        return M.finish(c, ev, r, err, deny_table)
    end

    return hook
end

return M
