// Loaded before analytics.js's bundle: analytics._cdn (Segment's "proxy
// the CDN" setting) makes webpack load the bundle's lazy chunks from
// this page's origin, /analytics-next/bundles/ (the npm package's
// dist/umd/), instead of Segment's CDN.
window.analytics = { _cdn: location.origin };
