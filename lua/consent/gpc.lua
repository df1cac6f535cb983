-- consent.gpc: Global Privacy Control.
--
-- When the request carries a Sec-GPC header whose value is exactly "1"
-- (any one of several Sec-GPC headers counts; " 1", "1 ", "true" do
-- not), the configured categories are forced to false in the
-- preferences produced so far (ev.consent, which consent.chain keeps
-- up to date). Without the signal the hook returns nil: nothing changes.
--
-- When the event carries no consent at all, the result holds only the
-- forced-false categories plus `assume_granted` set true. That makes the
-- event carry consent: destinations gated on any other category are
-- then blocked (fail closed by design) unless listed in assume_granted.
--
-- local gpc = require "consent.gpc"
-- return gpc.new{ categories = { "C0004" }, assume_granted = { "C0002" } }

local util = require "consent.util"

local type, ipairs = type, ipairs

local M = {}

-- true when one of the header's values is exactly "1"
local function gpc_set(req, name)
    local all = req.headers_all and req.headers_all[name]
    if type(all) == "table" then
        for _, v in ipairs(all) do
            if v == "1" then return true end
        end
        return false
    end
    return (req.headers and req.headers[name]) == "1"
end

function M.new(opts)
    opts = opts or {}
    assert(type(opts) == "table", "gpc.new: options must be a table")
    local forced = util.list(opts.categories, "categories")
    assert(#forced > 0, "gpc: categories = { ... } is required")
    local granted = util.list(opts.assume_granted, "assume_granted")
    local header = (opts.header or "sec-gpc"):lower()

    local hook = {}

    function hook.event(ev, req)
        if not gpc_set(req, header) then return nil end
        local base = ev.consent
        local out
        if base == nil then
            out = {}
            for _, id in ipairs(granted) do out[id] = true end
        else
            -- a consent that is not a table (null, a string) is malformed:
            -- normalize gives {}, which keeps it failing closed
            out = util.normalize(base)
        end
        for _, id in ipairs(forced) do out[id] = false end
        return out
    end

    return hook
end

M.signalled = gpc_set

return M
