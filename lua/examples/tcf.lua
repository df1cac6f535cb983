-- IAB TCF v2: the euconsent-v2 cookie (or context.consent.tcf.tcString)
-- decoded into the gateway's categories.
--
--   consent_category C0002 "Performance";
--   consent_category C0004 "Targeting";
--   consent_destination amplitude /_dest/amplitude C0002;
--   consent_destination facebook  /_dest/facebook  C0004;
--   consent_lua_hook /path/to/lua/examples/tcf.lua;

local tcf = require "consent.tcf"

return tcf.new{
    categories = {
        -- 1 store/access information on a device, 7 measure ad
        -- performance, 8 measure content performance, 9 audience
        -- insights, 10 develop and improve services
        C0002 = { 1, 8, 9, 10 },
        -- 1, 2 basic ads, 3 ads profile, 4 personalised ads, 7; and
        -- consent for the vendor itself (755 is Google Advertising
        -- Products in the IAB Global Vendor List)
        C0004 = { purposes = { 1, 2, 3, 4, 7 }, vendors = { 755 } },
    },
    -- a malformed string: nothing consented (the default)
    invalid = "deny",
}
