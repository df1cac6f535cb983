-- consent.chain: run several hooks as one.
--
-- local chain = require "consent.chain"
-- return chain(require("consent.onetrust").new{},
--              require("consent.gpc").new{ categories = { "C0004" } })
-- -- or chain.new{ hook1, hook2, ... }
--
-- Each hook (a hook table with an `event` function, or a bare function)
-- is called in order. When one returns a preferences table, ev.consent
-- is set to it before the next hook runs, so later hooks (gpc) see and
-- refine what earlier ones (onetrust) produced. The first rejection
-- (nil, "reason") stops the chain and is returned. The result is the
-- last table returned by any hook, or nil when none returned one.
-- A hook returning anything else than nil or a table raises an error
-- (the gateway then fails closed).

local type = type

local M = {}

local function fn_of(h, i)
    if type(h) == "function" then return h end
    if type(h) == "table" then
        if h.event == nil then return nil end      -- a hook without event()
        if type(h.event) == "function" then return h.event end
    end
    error("consent.chain: argument " .. i ..
          " is not a hook (a table with an event function, or a function)",
          3)
end

function M.new(hooks)
    if type(hooks) ~= "table" then
        error("consent.chain.new: expects a list of hooks", 2)
    end
    local fns, n = {}, 0
    for i = 1, hooks.n or #hooks do
        local f = fn_of(hooks[i], i)
        if f then
            n = n + 1
            fns[n] = f
        end
    end

    local hook = {}

    function hook.event(ev, req)
        local result = nil
        for i = 1, n do
            local r, reason = fns[i](ev, req)
            if r == nil or r == false then
                if reason ~= nil then
                    return nil, reason
                end
            elseif type(r) == "table" then
                result = r
                ev.consent = r
            else
                error("consent.chain: hook " .. i .. " returned a " ..
                      type(r) .. ", not a table or nil")
            end
        end
        return result
    end

    return hook
end

setmetatable(M, {
    __call = function(_, ...)
        return M.new(table.pack(...))
    end,
})

return M
