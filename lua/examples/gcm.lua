-- Google Consent Mode v2: the state the page gave gtag('consent', ...),
-- or a gcs / gcd value, put by the page in context.consent.gcm:
--
--   "context": {"consent": {"gcm": {"ad_storage": "granted",
--       "analytics_storage": "granted", "ad_user_data": "denied",
--       "ad_personalization": "denied"}}}
--   "context": {"consent": {"gcm": "G101"}}          (gcs)
--   "context": {"consent": {"gcm": "13r3r3q3q5"}}    (gcd)
--
--   consent_category C0002 "Performance";
--   consent_category C0004 "Targeting";
--   consent_lua_hook /path/to/lua/examples/gcm.lua;

local gcm = require "consent.gcm"

return gcm.new{
    analytics_storage = "C0002",
    -- advertising destinations need all three advertising states
    ad_storage = "C0004",
    ad_user_data = "C0004",
    ad_personalization = "C0004",
    -- a state the signal does not carry (gcs has no ad_user_data) counts
    -- as denied (the default)
    unset = "denied",
}
