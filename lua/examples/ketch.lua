-- Ketch: the _ketch_consent_v1_ cookie (or context.consent.ketch.purposes)
-- mapped from Ketch purpose codes to the gateway's categories.

local ketch = require "consent.ketch"

return ketch.new{
    purposes = {
        analytics              = "C0002",
        behavioral_advertising = "C0004",
        targeted_advertising   = "C0004",   -- C0004 needs both purposes
        data_sales             = "C0004",
        essential_services     = "C0001",
    },
    keep_unmapped = false,       -- forward only the mapped categories
}
