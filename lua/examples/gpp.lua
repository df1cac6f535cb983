-- IAB Global Privacy Platform (US states): the __gpp cookie (with
-- __gpp_sid), or the event's context.consent.gpp (a string, or the CMP
-- API's {"gppString": ..., "applicableSections": [...]}), decoded into
-- the gateway's categories.
--
--   consent_category C0004 "Targeting";
--   consent_category C0005 "Sensitive data";
--   consent_destination facebook /_dest/facebook C0004;
--   consent_lua_hook /path/to/lua/examples/gpp.lua;
--
-- Only opt-outs switch a category off: a US visitor who did not opt out
-- keeps C0004. Put consent.gpc after it in a chain to honour the
-- browser's Sec-GPC header as well as the string's GPC sub-section.

local gpp = require "consent.gpp"

return gpp.new{
    -- sale, sharing and targeted advertising opt-outs and the GPC
    -- sub-section all turn off advertising destinations
    sale = "C0004",
    sharing = "C0004",
    targeted_advertising = "C0004",
    gpc = "C0004",
    -- a sensitive-data category without the user's consent
    sensitive_data = "C0005",
    -- a malformed string: nothing consented (the default)
    invalid = "deny",
}
