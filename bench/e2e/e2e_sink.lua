-- The counting destination of bench/e2e.sh's equivalence check (not used
-- while measuring): every POST /<destination> must be {"batch":[...]};
-- per destination it counts requests and events and chains an md5 over
-- the events' messageIds in arrival order.  GET /_counts prints one line
-- per destination, /_reset clears.

local cjson = require "cjson.safe"
local dict = ngx.shared.e2e_counts

local M = {}

function M.post()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        local name = ngx.req.get_body_file()
        local f = name and io.open(name, "rb")
        body = f and f:read("*a") or ""
        if f then
            f:close()
        end
    end

    local dest = ngx.var.uri:sub(2)
    local req = cjson.decode(body)
    local ids = {}

    if type(req) == "table" and type(req.batch) == "table" then
        for i, ev in ipairs(req.batch) do
            ids[i] = tostring(ev.messageId)
        end
    else
        dict:incr("bad " .. dest, 1, 0)
    end

    dict:incr("requests " .. dest, 1, 0)
    dict:incr("events " .. dest, #ids, 0)
    dict:set("md5 " .. dest, ngx.md5((dict:get("md5 " .. dest) or "")
                                     .. table.concat(ids, ",")))
    ngx.say('{"ok":true}')
end

function M.counts()
    local keys = dict:get_keys(0)
    local dests = {}
    for _, k in ipairs(keys) do
        local d = k:match("^requests (.*)$")
        if d then
            dests[#dests + 1] = d
        end
    end
    table.sort(dests)
    for _, d in ipairs(dests) do
        ngx.say(string.format("%-10s requests %5d  events %6d  bad %d  %s", d,
                              dict:get("requests " .. d),
                              dict:get("events " .. d),
                              dict:get("bad " .. d) or 0,
                              dict:get("md5 " .. d)))
    end
end

function M.reset()
    dict:flush_all()
    ngx.say("ok")
end

return M
