-- consent.util: decoding helpers, checked against independent encoders.
local H = ...
local util = require "consent.util"
local cjson = require "cjson"

H.test("url_decode", function()
    H.eq(util.url_decode("C0001%3A1%2CC0002%3A0"), "C0001:1,C0002:0", "percent")
    H.eq(util.url_decode("Tue+Jun+13", true), "Tue Jun 13", "plus as space")
    H.eq(util.url_decode("a+b"), "a+b", "plus kept without form mode")
    H.eq(util.url_decode("100%"), "100%", "trailing percent kept")
    H.eq(util.url_decode("%zz%4"), "%zz%4", "bad escapes kept")
    H.eq(util.url_decode("%e2%9c%93"), "\226\156\147", "lower-case hex, UTF-8")
end)

H.test("query_param", function()
    local s = "isGpcEnabled=0&datestamp=Tue+Jun+13+2023&groups=C0001%3A1%2CC0002%3A0&hosts="
    H.eq(util.query_param(s, "groups"), "C0001:1,C0002:0", "groups")
    H.eq(util.query_param(s, "datestamp"), "Tue Jun 13 2023", "datestamp")
    H.eq(util.query_param(s, "hosts"), "", "empty value")
    H.eq(util.query_param(s, "nope"), nil, "absent")
    H.eq(util.query_param("flag&groups=x", "flag"), "", "key without '='")
    H.eq(util.query_param("groups=a&groups=b", "groups"), "a", "first wins")
    H.eq(util.query_param("gr%6Fups=z", "groups"), "z", "encoded key")
    H.eq(util.query_param("xgroups=1&groups=2", "groups"), "2", "no suffix match")
end)

H.test("cookie", function()
    local req = H.make_req{ cookie = 'a=1; q="quoted"; e=; qq=""' }
    H.eq(util.cookie(req, "a"), "1", "plain")
    H.eq(util.cookie(req, "q"), "quoted", "quotes removed")
    H.eq(util.cookie(req, "e"), nil, "empty is absent")
    H.eq(util.cookie(req, "qq"), nil, "empty quoted is absent")
    H.eq(util.cookie(req, "missing"), nil, "absent")
    H.eq(util.cookie(req, false), nil, "disabled")
    H.eq(util.cookie({}, "a"), nil, "no cookies table")
end)

H.test("base64 round trip against an independent encoder", function()
    -- every length 0..40 and every byte value, padded and unpadded,
    -- standard and URL-safe alphabets
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    local bad = 0
    for len = 0, 40 do
        for start = 1, 256 - len, 37 do
            local s = all:sub(start, start + len - 1)
            local enc = H.base64(s)
            if util.base64_decode(enc) ~= s then bad = bad + 1 end
            if util.base64_decode((enc:gsub("=", ""))) ~= s then bad = bad + 1 end
            if util.base64_decode(H.base64url(s)) ~= s then bad = bad + 1 end
        end
    end
    H.eq(bad, 0, "all decodes equal the input")
    H.eq(util.base64_decode(H.base64(all)), all, "all 256 byte values")
end)

H.test("base64 rejects malformed text", function()
    H.eq(util.base64_decode("ab c"), nil, "space")
    H.eq(util.base64_decode("abcde"), nil, "length 1 mod 4")
    H.eq(util.base64_decode("ab==="), nil, "three pads")
    H.eq(util.base64_decode("a=bc"), nil, "pad inside")
    H.eq(util.base64_decode("YW*j"), nil, "bad character")
    H.eq(util.base64_decode(""), "", "empty")
    H.eq(util.base64_decode(42), nil, "not a string")
end)

H.test("bit reader against the bit writer", function()
    local w = H.bitwriter()
    local fields = { {2, 6}, {16000000001, 36}, {0, 1}, {4095, 12},
                     {1, 1}, {12345, 16}, {0x2AAAAA, 24}, {5, 3} }
    for _, f in ipairs(fields) do w:int(f[1], f[2]) end
    local r = util.bits(H.base64url(w:bytes()))
    for i, f in ipairs(fields) do
        H.eq(r:read(f[2]), f[1], "field " .. i)
    end
    -- bit_at agrees with read(1) everywhere
    local r2 = util.bits(H.base64url(w:bytes()))
    local same = true
    for p = 0, r2.len - 1 do
        local b = r2:bit_at(p)
        if r2:read(1) ~= b then same = false end
    end
    H.ok(same, "bit_at == sequential read(1)")
    H.eq(r2:read(1), nil, "reading past the end gives nil")
    H.eq(r2:bit_at(-1), nil, "negative position")
    H.eq(util.bits("AB.C"), nil, "'.' is not base64url")
end)

H.test("path and get", function()
    local ev = H.make_ev([[{"type":"track","userId":"u","context":
        {"consent":{"onetrust":{"activeGroups":",C0001,"},"n":null},
         "s":"str"}}]])
    H.eq(util.get(ev, util.path("context.consent.onetrust.activeGroups")),
         ",C0001,", "nested")
    H.eq(util.get(ev, util.path("context.consent.n")), nil, "null is nil")
    H.eq(util.get(ev, util.path("context.s.x")), nil, "through a string")
    H.eq(util.get(ev, util.path("properties.a")), nil, "no properties")
    H.eq(util.get(ev, util.path({ "context", "s" })), "str", "array path")
    H.eq(util.get(ev, false), nil, "disabled")
end)

H.test("normalize", function()
    H.eq(util.normalize({ a = true, b = false, c = "yes", d = 1,
                          e = cjson.null, [1] = true }),
         { a = true, b = false, c = false, d = false, e = false },
         "only true stays true; non-string keys dropped")
    H.eq(util.normalize(nil), {}, "nil")
    H.eq(util.normalize("x"), {}, "string")
end)

H.test("split", function()
    H.eq(util.split(",C0001, C0003 ,,", ","), { "C0001", "C0003" }, "commas")
    H.eq(util.split("0|1,2", ",|"), { "0", "1", "2" }, "two separators")
    H.eq(util.split("", ","), {}, "empty")
end)

H.test("fill and category_map", function()
    local a = util.fill({ x = true, y = true }, false)
    H.eq(a, { x = false, y = false }, "fill")
    H.ok(a ~= util.fill({ x = true, y = true }, false), "a fresh table")
    local map, cats = util.category_map(
        { s1 = "A", s2 = { "A", "B" }, opt = 1 },
        { s1 = true, s2 = true, s3 = true }, { opt = true }, "m", "signals")
    H.eq(map, { s1 = { "A" }, s2 = { "A", "B" } }, "map")
    H.eq(cats, { A = true, B = true }, "categories")
    H.raises(function()
        util.category_map({ s4 = "A" }, { s1 = true }, {}, "m", "signals s1")
    end, "m: unknown option 's4' %(signals s1%)", "unknown key")
    H.raises(function()
        util.category_map({ opt = 1 }, { s1 = true }, { opt = true }, "m",
                          "signals s1")
    end, "at least one of the signals s1", "nothing mapped")
    H.raises(function()
        util.category_map({ s1 = {} }, { s1 = true }, {}, "m", "x")
    end, "names no category", "empty list")
end)

H.test("Bits:fibonacci", function()
    -- 0011 = 3, 11 = 1, 1011 = 4: 001111 1011(00) = "P" then "s"
    local r = util.bits("Ps")
    H.eq({ r:fibonacci(), r:fibonacci(), r:fibonacci() }, { 3, 1, 4 },
         "three code words")
    H.eq(r:fibonacci(), nil, "the padding holds no terminated word")
end)
