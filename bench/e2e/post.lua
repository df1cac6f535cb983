-- wrk script of bench/e2e.sh: POSTs the payload files <dir>/1.json ...
-- <dir>/<n>.json in turn (requests formatted once, in init).
--
--   wrk ... -s post.lua http://127.0.0.1:PORT -- <dir> <n> <path>

local reqs, n, i = {}, 0, 0

function init(args)
    local dir, count, path = args[1], tonumber(args[2]), args[3]
    local headers = { ["Content-Type"] = "text/plain",
                      ["User-Agent"] = "analytics-node/2.1.0" }
    for k = 1, count do
        local f = assert(io.open(dir .. "/" .. k .. ".json", "rb"))
        local body = f:read("*a")
        f:close()
        reqs[k] = wrk.format("POST", path, headers, body)
    end
    n = count
    -- each thread starts at a different payload
    i = math.random(0, n - 1)
end

function request()
    i = i % n + 1
    return reqs[i]
end
