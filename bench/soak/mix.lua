-- wrk script of bench/soak.sh: sends the raw requests DIR/NAME.req of
-- the kinds listed in DIR/kinds.txt in turn, and exits after COUNT
-- responses (run wrk with one thread, so the count is exact; wrk's own
-- stop only comes at the end of -d, whatever the thread does).
--
--   wrk -t1 -c N -d LIMIT -s mix.lua URL -- DIR COUNT

local reqs, n, i = {}, 0, 0
local limit, got = 0, 0

function init(args)
    local dir = args[1]
    limit = tonumber(args[2])
    for line in io.lines(dir .. "/kinds.txt") do
        local name = line:match("^(%S+)")
        local f = assert(io.open(dir .. "/" .. name .. ".req", "rb"))
        n = n + 1
        reqs[n] = f:read("a")
        f:close()
    end
end

function request()
    i = i % n + 1
    return reqs[i]
end

function response(status, headers, body)
    got = got + 1
    if got >= limit then
        io.write(got, " responses\n")
        io.flush()
        os.exit(0)
    end
end
