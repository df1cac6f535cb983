-- ngx_consent example hook: OneTrust's OptanonConsent cookie (or the
-- event's context.consent.onetrust.activeGroups) -> categoryPreferences.
--
--   consent_lua_hook /etc/nginx/consent-onetrust.lua;
--
-- consent.onetrust is installed by libnginx-mod-http-consent in
-- /usr/share/lua/5.4/consent/; docs/lua.md describes its options.

local onetrust = require "consent.onetrust"

return onetrust.new{
    -- the groups the banner offers: one missing from the signal is false
    all_groups = { "C0001", "C0002", "C0003", "C0004" },
}
