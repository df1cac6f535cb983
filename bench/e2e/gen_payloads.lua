-- Payloads of the end-to-end benchmark (bench/e2e.sh), deterministic:
--
--   lua5.4 bench/e2e/gen_payloads.lua <dir> [singles] [batches] [events]
--
-- writes <dir>/single/1.json ... (one ~1 KB track event each, for
-- POST /v1/track) and <dir>/batch/1.json ... (a {"batch":[...]} of
-- <events> track / page / identify events, for POST /v1/batch).
--
-- Every event has a messageId, ids and an analytics.js-like context with
-- a OneTrust-style consent object of 8 categories (C0001 always true, the
-- others true with the probability below), so that every gated
-- destination of the benchmark's policy misses some events:
--
--   5% of the events carry no consent object (they go everywhere);
--   8% have "integrations" turning one destination off, 2% "All": false
--   with one destination turned back on;
--   in batches, a batch-level context carries consent too, and 20% of
--   the events have none of their own (they use the batch's); one batch
--   in four has a batch-level "integrations" object.

local dir = assert(arg[1], "usage: gen_payloads.lua <dir> [singles] "
                           .. "[batches] [events]")
local NSINGLE = tonumber(arg[2] or "64")
local NBATCH = tonumber(arg[3] or "16")
local NEVENTS = tonumber(arg[4] or "50")

math.randomseed(20261123)

local rnd = math.random
local fmt = string.format
local concat = table.concat

local CATS = {
    { "C0001", 1.0 },  -- strictly necessary
    { "C0002", 0.8 },  -- performance
    { "C0003", 0.7 },  -- functional
    { "C0004", 0.6 },  -- targeting
    { "C0005", 0.7 },  -- social media
    { "C0006", 0.5 },  -- personalisation (mapped to nothing here)
    { "C0007", 0.5 },  -- sale of personal data
    { "C0008", 0.9 },  -- security
}

local DESTS = { "amplitude", "braze", "google_ads", "facebook", "webhook" }

local PRODUCTS = {
    { "sku-1042", "Games", "Monopoly: 3rd Edition", "Hasbro", 18.99 },
    { "sku-2210", "Outdoor", "Trail Running Shoe \"Ridge\"", "Salomon",
      129.0 },
    { "sku-3307", "Kitchen", "Cast Iron Skillet 28 cm", "Lodge", 39.5 },
    { "sku-4480", "Books", "The Pragmatic Programmer", "Addison-Wesley",
      42.0 },
    { "sku-5123", "Audio", "Noise-cancelling Headphones", "Sony", 279.9 },
}

local TRACK_NAMES = { "Product Viewed", "Product Added", "Checkout Started",
                      "Order Completed", "Products Searched" }

local UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
           .. "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
           .. "Safari/605.1.15"

local function hex(n)
    local t = {}
    for i = 1, n do
        t[i] = fmt("%x", rnd(0, 15))
    end
    return concat(t)
end

local function uuid()
    return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-a" .. hex(3)
           .. "-" .. hex(12)
end

local function prefs()
    local t = {}
    for i, c in ipairs(CATS) do
        t[i] = fmt('"%s":%s', c[1], rnd() < c[2] and "true" or "false")
    end
    return '{"categoryPreferences":{' .. concat(t, ",") .. "}}"
end

local function integrations()
    local x = rnd()
    if x < 0.08 then
        return fmt('{"%s":false}', DESTS[rnd(1, #DESTS)])
    elseif x < 0.10 then
        return fmt('{"All":false,"%s":true}', DESTS[rnd(1, #DESTS)])
    end
    return nil
end

local seq = 0

-- one event; own_consent false: no consent object of its own
local function event(etype, own_consent, lib)
    seq = seq + 1
    local p = PRODUCTS[rnd(1, #PRODUCTS)]
    local user = fmt("user-%05d", rnd(1, 99999))
    local path = "/products/" .. p[1]
    local m = {}

    m[#m + 1] = fmt('"type":"%s"', etype)
    if etype == "track" then
        m[#m + 1] = fmt('"event":"%s"', TRACK_NAMES[rnd(1, #TRACK_NAMES)])
    elseif etype == "page" then
        m[#m + 1] = '"name":"Product"'
    end
    m[#m + 1] = fmt('"userId":"%s"', user)
    m[#m + 1] = fmt('"anonymousId":"%s"', uuid())
    m[#m + 1] = fmt('"messageId":"ajs-next-%d-%s"', seq, hex(24))
    m[#m + 1] = fmt('"timestamp":"2026-11-23T09:%02d:%02d.%03dZ"',
                    rnd(0, 59), rnd(0, 59), rnd(0, 999))

    if etype == "identify" then
        m[#m + 1] = fmt('"traits":{"email":"%s@example.com","plan":"pro",'
                        .. '"createdAt":"2025-06-01T12:00:00Z",'
                        .. '"company":{"name":"Initech","employees":%d}}',
                        user, rnd(10, 5000))
    else
        m[#m + 1] = fmt('"properties":{"product_id":"%s","category":"%s",'
                        .. '"name":"%s","brand":"%s","price":%.2f,'
                        .. '"quantity":%d,"currency":"EUR","position":%d,'
                        .. '"url":"https://shop.example.com%s",'
                        .. '"image_url":"https://cdn.example.com/img/%s.jpg"}',
                        p[1], p[2], p[3]:gsub('"', '\\"'), p[4], p[5],
                        rnd(1, 3), rnd(1, 24), path, p[1])
    end

    local c = {}
    c[#c + 1] = fmt('"ip":"203.0.113.%d"', rnd(1, 254))
    c[#c + 1] = '"locale":"de-DE"'
    c[#c + 1] = fmt('"userAgent":"%s"', UA)
    c[#c + 1] = fmt('"page":{"path":"%s","referrer":"https://www.google.com/",'
                    .. '"search":"?utm_source=newsletter","title":"%s",'
                    .. '"url":"https://shop.example.com%s"}',
                    path, p[3]:gsub('"', '\\"'), path)
    c[#c + 1] = fmt('"library":{"name":"%s","version":"1.70.0"}', lib)
    c[#c + 1] = '"timezone":"Europe/Berlin"'
    if own_consent then
        c[#c + 1] = '"consent":' .. prefs()
    end
    m[#m + 1] = '"context":{' .. concat(c, ",") .. "}"

    local integ = integrations()
    if integ then
        m[#m + 1] = '"integrations":' .. integ
    end

    return "{" .. concat(m, ",") .. "}"
end

local function write(name, s)
    local f = assert(io.open(name, "wb"))
    f:write(s)
    f:close()
end

os.execute("mkdir -p '" .. dir .. "/single' '" .. dir .. "/batch'")

local bytes = 0
for i = 1, NSINGLE do
    local s = event("track", rnd() >= 0.05, "analytics.js")
    bytes = bytes + #s
    write(fmt("%s/single/%d.json", dir, i), s)
end
print(fmt("gen: %d single track events, %.0f bytes on average", NSINGLE,
          bytes / NSINGLE))

bytes = 0
for i = 1, NBATCH do
    local evs = {}
    for e = 1, NEVENTS do
        local x = rnd()
        local t = x < 0.7 and "track" or x < 0.9 and "page" or "identify"
        evs[e] = event(t, rnd() >= 0.2, "analytics-node")
    end
    local env = {}
    env[1] = '"batch":[' .. concat(evs, ",") .. "]"
    env[2] = '"context":{"library":{"name":"analytics-node",'
             .. '"version":"2.1.0"},"consent":' .. prefs() .. "}"
    if i % 4 == 0 then
        env[3] = fmt('"integrations":{"%s":false}', DESTS[rnd(1, #DESTS)])
    end
    env[#env + 1] = '"writeKey":"wk_9f2c6a1e7b3d"'
    env[#env + 1] = '"sentAt":"2026-11-23T09:59:59.999Z"'
    local s = "{" .. concat(env, ",") .. "}"
    bytes = bytes + #s
    write(fmt("%s/batch/%d.json", dir, i), s)
end
print(fmt("gen: %d batches of %d events, %.0f bytes on average", NBATCH,
          NEVENTS, bytes / NBATCH))
