-- Pattern cases run twice by t/22-lua-hostile.t: by lua5.4's own string
-- library (the reference) and inside a hook, where string.find, match,
-- gmatch and gsub are the gateway's budgeted matcher.  The returned
-- function gives one line per case for part 0 (the cases below) or
-- parts 1..N (random patterns and subjects, the same for a given part
-- in both); the two outputs must be identical.

local function ser(...)
    local out = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        out[#out + 1] = type(v) .. ":" .. tostring(v)
    end
    return table.concat(out, ",")
end

local function try(f, ...)
    local r = table.pack(pcall(f, ...))
    if not r[1] then return "error:" .. tostring(r[2]) end
    return ser(table.unpack(r, 2, r.n))
end

local S = "  hello World, 123 abc_def [x] (a(b)c) THE END\t\n"
local finds = {
    { S, "hello" }, { S, "o", 5 }, { S, "o", -10 }, { S, "o", 100 },
    { S, "%a+" }, { S, "%A+" }, { S, "%d+" }, { S, "%D+" }, { S, "%s+" },
    { S, "%S+" }, { S, "%l+" }, { S, "%u+" }, { S, "%w+" }, { S, "%W+" },
    { S, "%x+" }, { S, "%p+" }, { S, "%c+" }, { S, "%g+" }, { S, "%X+" },
    { S, "[%a_]+" }, { S, "[^%s]+" }, { S, "[a-f]+" }, { S, "[%]]" },
    { S, "[]]" }, { S, "[^]]+" }, { S, "[a-]+" }, { S, "[-a]+" },
    { S, "^%s*(.-)%s*$" }, { S, "^hello" }, { S, "END\t\n$" },
    { S, "(%w+) (%w+)" }, { S, "()ll()" }, { S, "(h)(e)(l)(l)(o)" },
    { S, "%b()" }, { S, "%b[]" }, { S, "%f[%w]%w+" }, { S, "%f[%W]" },
    { S, "(l)%1" }, { S, "(%d)(%d)%2" }, { S, "a?b" }, { S, "x?y?z?" },
    { S, "l-o" }, { S, "l*o" }, { S, "l+o" }, { S, "" }, { S, "", 10 },
    { S, "$" }, { S, "^" }, { S, "a$b" }, { S, "(%a+)%s*=" },
    { S, ".", 1, true }, { S, "(a", 1, true }, { S, "[x]", 1, true },
    { "a+b", "+", 1, true }, { "a.b", "." }, { "a.b", "%." },
    { "aaa", "a-", 2 }, { "aaa", "a-$" }, { "", "" }, { "", "a*" },
    { "abc", "((a)(b))" }, { "abc", "(a)()(b)" }, { "x=1, y=2", "(%w+)=(%w+)" },
    { "THE (quick) fox", "%((%a+)%)" }, { "  x", "^%s*" },
    { "f(a(b)c)d", "%b()" }, { "[[x]]", "%[(%b[])%]" },
    { "hello", "%f[%a]" }, { "hello", "%f[%z]" }, { "\0a\0", "%z" },
    { "caf\195\169", "[\128-\255]+" }, { "abc", "[%a-z]+" },
    -- errors
    { S, "%" }, { S, "[a" }, { S, "(a" }, { S, "a)" }, { S, "%b" },
    { S, "%f" }, { S, "%1" }, { S, "(a)%2" }, { S, "[%" },
}

local gsubs = {
    { "hello world", "o", "0" }, { "hello world", "(o)", "[%1]" },
    { "hello world", "%w+", "%0 %0" }, { "hello world", "", "-" },
    { "hello world", "o", "0", 1 }, { "hello", "l*", "x" },
    { "abc", "%w", "%%" }, { "abc", "%w", "%2" }, { "abc", "%w", "%x" },
    { "$name is $age", "%$(%w+)", { name = "bob", age = 42 } },
    { "$name is $x", "%$(%w+)", { name = "bob" } },
    { "a b c", "%w", function(c) return c:upper() end },
    { "a b c", "%w", function(c) if c == "b" then return false end return "<" .. c .. ">" end },
    { "a b c", "(%w)", function() return {} end },
    { "hello", "^h", "H" }, { "hello", "^l", "L" }, { "x", "x", 1.5 },
    { "abc", "()", "%1" }, { "a,b,,c", ",", ";", 2 },
    { "%20 %41", "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end },
}

local gmatches = {
    { "one two  three", "%a+" }, { "k1=v1, k2=v2", "(%w+)=(%w+)" },
    { "abc", "" }, { "a,b,,c", "[^,]*" }, { "hello", "l*" },
    { "one two three", "%a+", 5 }, { "^a^b", "^%a" }, { "abc", "()" },
}

local ATOMS = { "a", "b", ".", "%a", "%d", "%s", "%w", "[ab]", "[^a]",
    "[a-c]", "%b()", "%f[%w]", "%1", "(", ")", "()", "^", "$", "*", "+",
    "-", "?", "%", "[", "]", "%%", "x", "[%d-]", "%z", "%A" }
local CHARS = { "a", "b", "c", "(", ")", " ", "1", "x", "-", "\0", "%" }
local REPLS = { "<%0>", "%1", "x", { a = "A", ["("] = false },
                function(a) return a and "[" .. a .. "]" end }

local function pick(r, list, n)
    local t = {}
    for _ = 1, r(0, n) do t[#t + 1] = list[r(#list)] end
    return table.concat(t)
end

local function random_part(part, lines)
    math.randomseed(part)
    local r = math.random
    for i = 1, 300 do
        local s, p, init = pick(r, CHARS, 12), pick(r, ATOMS, 7), r(-5, 14)
        local id = part .. "." .. i .. " "
        lines[#lines + 1] = "rfind " .. id .. try(string.find, s, p, init)
        lines[#lines + 1] = "rmatch " .. id .. try(string.match, s, p, init)
        lines[#lines + 1] = "rgsub " .. id
                            .. try(string.gsub, s, p, REPLS[r(#REPLS)])
        lines[#lines + 1] = "rgmatch " .. id .. try(function()
            local out = {}
            for a, b in string.gmatch(s, p, init) do
                out[#out + 1] = ser(a, b)
                if #out > 20 then break end
            end
            return table.concat(out, "|")
        end)
    end
    return table.concat(lines, "\n")
end

return function(part)
    local lines = {}
    if part and part > 0 then return random_part(part, lines) end
    for i, c in ipairs(finds) do
        lines[#lines + 1] = "find " .. i .. " " .. try(string.find, table.unpack(c, 1, 4))
        lines[#lines + 1] = "match " .. i .. " " .. try(string.match, c[1], c[2], c[3])
    end
    for i, c in ipairs(gsubs) do
        lines[#lines + 1] = "gsub " .. i .. " " .. try(string.gsub, table.unpack(c, 1, 4))
    end
    for i, c in ipairs(gmatches) do
        lines[#lines + 1] = "gmatch " .. i .. " " .. try(function()
            local out = {}
            for a, b in string.gmatch(c[1], c[2], c[3]) do
                out[#out + 1] = ser(a, b)
            end
            return table.concat(out, "|")
        end)
    end
    lines[#lines + 1] = "method " .. try(function() return ("a=1"):match("(%w)=(%d)") end)
    return table.concat(lines, "\n")
end
