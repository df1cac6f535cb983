-- A hand-written hook: no library, just the API.
--
-- * events from the internal health checker are rejected (lua_rejected);
-- * a first-party "consent" cookie "analytics=1|ads=0" sets preferences
--   when the event carries none;
-- * otherwise the event is left as it is.

local M = {}

function M.event(ev, req)
    if req.headers["user-agent"] == "internal-healthcheck/1.0" then
        return nil, "health check traffic is not forwarded"
    end
    if ev.consent ~= nil then return nil end
    local c = req.cookies["consent"]
    if not c then return nil end
    local prefs = {}
    for k, v in c:gmatch("([%w_%-]+)=([01])") do prefs[k] = (v == "1") end
    return prefs
end

return M
