-- TrustArc: notice_gdpr_prefs (falling back to cmapi_cookie_privacy)
-- with the default three buckets named after the gateway's categories.

local trustarc = require "consent.trustarc"

return trustarc.new{
    names = { "required", "functional", "advertising" },   -- buckets 1, 2, 3
    -- a visitor who never chose: no change to the event (the default);
    -- missing = "deny" would block every gated destination instead
    missing = "keep",
}
