// Segment's analytics.js (the UMD bundle of npm @segment/analytics-next,
// loaded before this file as window.AnalyticsNext) pointed at an
// ngx_consent gateway, without Segment's CDN, and consent set the way a
// CMP wrapper does.  Used by the demo page (demo/www/index.html) and by
// the browser test's page (t/browser/page.html).
//
// No request goes to Segment: AnalyticsBrowser.load() gets the settings
// object the CDN would serve (cdnSettings) instead of fetching it, and
// demo/www/analytics-cdn.js, loaded before the bundle, sets
// analytics._cdn so that its lazy chunks come from
// /analytics-next/bundles/ on the page's own origin.
(function () {
  'use strict';

  // gateway: the gateway's origin ('http://127.0.0.1:8080'); analytics.js
  // posts to <protocol>://<apiHost>/t, /p, /i, /g, /a, /s (one event
  // each), /b (batching delivery) and /m (its own telemetry).
  // delivery: undefined (one request per event) or a deliveryStrategy,
  // { strategy: 'batching', config: { size, timeout } }.
  // metrics: the CDN settings' telemetry options ({ flushTimer, ... }).
  function load(gateway, writeKey, delivery, metrics) {
    var url = new URL(gateway);
    var segmentio = {
      apiHost: url.host + '/v1',
      protocol: url.protocol.replace(':', '')
    };
    if (delivery) {
      segmentio.deliveryStrategy = delivery;
    }
    var cdnSettings = { integrations: { 'Segment.io': { apiKey: writeKey } } };
    if (metrics) {
      cdnSettings.metrics = metrics;
    }
    return AnalyticsNext.AnalyticsBrowser.load(
      { writeKey: writeKey, cdnURL: location.origin, cdnSettings: cdnSettings },
      { integrations: { 'Segment.io': segmentio } }
    ).then(function (loaded) { return loaded[0]; });
  }

  // What @segment/analytics-consent-tools' wrapper does: a source
  // middleware stamping the user's current preferences on every event as
  // context.consent.categoryPreferences.  getPreferences() returns an
  // object of booleans, or null for "no consent object" (the middleware
  // then leaves the event alone).
  function addConsentMiddleware(analytics, getPreferences) {
    return analytics.addSourceMiddleware(function (mw) {
      var prefs = getPreferences();
      if (prefs) {
        var ctx = mw.payload.obj.context = mw.payload.obj.context || {};
        ctx.consent = Object.assign({}, ctx.consent, {
          categoryPreferences: Object.assign({}, prefs)
        });
      }
      mw.next(mw.payload);
    });
  }

  // The wrapper's consentChange(): the event a CMP sends when the user
  // saves a choice.
  function consentChanged(analytics, prefs) {
    return analytics.track('Segment Consent Preference Updated', undefined, {
      consent: { categoryPreferences: Object.assign({}, prefs) }
    });
  }

  window.GatewayAnalytics = {
    load: load,
    addConsentMiddleware: addConsentMiddleware,
    consentChanged: consentChanged
  };
})();
