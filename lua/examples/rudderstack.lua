-- RudderStack SDKs: context.consentManagement -> categoryPreferences.
--
-- Destinations RudderStack would gate with the "or" strategy are mapped to
-- a group category in nginx:
--   consent_category marketing-any "C0003 or C0004";
--   consent_destination braze /_dest/braze marketing-any;

local rudderstack = require "consent.rudderstack"

return rudderstack.new{
    groups = { ["marketing-any"] = { "C0003", "C0004" } },
}
