-- OneTrust, then Global Privacy Control.
--
--   consent_lua_hook /path/to/lua/examples/onetrust_gpc.lua;
--
-- 1. consent.onetrust turns the OptanonConsent cookie (or the event's
--    context.consent.onetrust.activeGroups) into categoryPreferences;
-- 2. consent.gpc then forces C0004 (Targeting / sale of data) to false
--    when the browser sends Sec-GPC: 1.
-- An event with neither a OneTrust signal nor its own preferences, sent
-- with Sec-GPC: 1, leaves with {"C0004":false,"C0002":true}: Targeting
-- destinations blocked, Performance ones served, others gated on any
-- other category blocked (fail closed).

local chain    = require "consent.chain"
local onetrust = require "consent.onetrust"
local gpc      = require "consent.gpc"

return chain(
    onetrust.new{
        -- groups the banner offers: one missing from the signal is false
        all_groups = { "C0001", "C0002", "C0003", "C0004", "C0005" },
    },
    gpc.new{
        categories = { "C0004" },
        assume_granted = { "C0002" },
    }
)
