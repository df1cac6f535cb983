-- The profile scenario's payloads (bench/e2e.sh): a copy of the
-- benchmark's payloads without any consent object, event or batch
-- level, so that every event needs its user's stored profile.
--
--   lua5.4 bench/e2e/strip_consent.lua <payloads> <out> <singles> <batches>
--
-- Each consent object is the last member of its context (gen_payloads
-- writes it so), preceded by a comma.

local src, dst = assert(arg[1]), assert(arg[2])
local counts = { single = tonumber(arg[3]), batch = tonumber(arg[4]) }

os.execute("mkdir -p '" .. dst .. "/single' '" .. dst .. "/batch'")

for kind, n in pairs(counts) do
    for i = 1, n do
        local f = assert(io.open(src .. "/" .. kind .. "/" .. i .. ".json",
                                 "rb"))
        local s = f:read("a")
        f:close()
        local out, k = s:gsub(',"consent":%b{}', "")
        assert(not out:find('"consent"', 1, true), "consent left in " .. i)
        assert(not out:find('"consentCategories"', 1, true))
        f = assert(io.open(dst .. "/" .. kind .. "/" .. i .. ".json", "wb"))
        f:write(out)
        f:close()
    end
end
