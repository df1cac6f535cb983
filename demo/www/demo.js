// The demo page's logic (demo/www/index.html): a consent banner stamping
// the user's choices on every analytics.js event, event buttons, and a
// panel of what each destination received and why the rest was filtered.
(function () {
  'use strict';

  // What demo/nginx.conf declares (t/41-demo.t checks that both agree).
  var CATEGORIES = [
    { id: 'C0001', name: 'Strictly necessary', locked: true,
      about: 'Always on' },
    { id: 'C0002', name: 'Performance', about: 'Product analytics' },
    { id: 'C0003', name: 'Functional', about: 'Preferences, chat' },
    { id: 'C0004', name: 'Targeting', about: 'Advertising' },
    { id: 'C0005', name: 'Social media', off: true,
      about: 'Turned off in the gateway: not enforced' }
  ];
  var DESTINATIONS = [
    { name: 'amplitude', categories: ['C0002'], about: 'Product analytics' },
    { name: 'facebook', categories: ['C0004', 'C0005'], about: 'Ads' },
    { name: 'warehouse', enforce: false,
      about: 'Data warehouse: enforce=off, gets every event' },
    { name: 'webhook', categories: [],
      about: 'Unmapped: no category, gets every event' }
  ];

  var EVENTS = [
    { id: 'track', label: 'Track "Order Completed"',
      send: function (a) {
        return a.track('Order Completed', { revenue: 42, currency: 'EUR' });
      } },
    { id: 'page', label: 'Page view',
      send: function (a) { return a.page('Shop', 'Checkout'); } },
    { id: 'identify', label: 'Identify',
      send: function (a) {
        return a.identify('user-42', { plan: 'pro', email: 'ada@example.com' });
      } },
    { id: 'group', label: 'Group',
      send: function (a) { return a.group('acme', { name: 'Acme Inc.' }); } },
    { id: 'alias', label: 'Alias',
      send: function (a) { return a.alias('user-42-new'); } },
    { id: 'ad', label: 'Track "Ad Clicked" (integrations: facebook off)',
      send: function (a) {
        return a.track('Ad Clicked', { campaign: 'winter' },
                       { integrations: { facebook: false } });
      } }
  ];

  var prefs = {};
  CATEGORIES.forEach(function (c) { prefs[c.id] = !!c.locked; });
  var sent = [];            // { messageId, label, prefs, integrations, state }
  var analytics = null;
  var byId = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function categoryName(id) {
    var c = CATEGORIES.filter(function (x) { return x.id === id; })[0];
    return c ? c.name : id;
  }

  function currentPrefs() {
    return byId('no-consent').checked ? null : Object.assign({}, prefs);
  }

  // SPEC section 4 for event E and destination D: null when D gets E,
  // otherwise why not.
  function filterReason(ev, d) {
    if (d.enforce !== false && ev.prefs) {
      var enabled = d.categories.filter(function (id) {
        return !CATEGORIES.some(function (c) { return c.id === id && c.off; });
      });
      var missing = enabled.filter(function (id) { return ev.prefs[id] !== true; });
      if (missing.length) {
        return 'consent: ' + missing.map(function (id) {
          return id + ' ' + categoryName(id);
        }).join(', ') + ' not granted';
      }
    }
    var integ = ev.integrations || {};
    if (integ[d.name] === false
        || (integ.All === false && !(d.name in integ))) {
      return 'integrations: ' + d.name + ' off';
    }
    return null;
  }

  // ---------------------------------------------------------------
  // banner

  function renderToggles() {
    var ul = byId('toggles');
    ul.textContent = '';
    CATEGORIES.forEach(function (c) {
      var li = el('li', 'toggle' + (c.off ? ' off' : ''));
      var text = el('div', 'ttext');
      var title = el('div', 'tname', c.name);
      title.appendChild(el('span', 'cid', c.id));
      text.appendChild(title);
      text.appendChild(el('div', 'tabout', c.about));
      var sw = el('label', 'switch');
      var input = el('input');
      input.type = 'checkbox';
      input.id = 'cat-' + c.id;
      input.checked = prefs[c.id];
      input.disabled = !!c.locked;
      input.addEventListener('change', function () {
        prefs[c.id] = input.checked;
      });
      sw.appendChild(input);
      sw.appendChild(el('span', 'slider'));
      li.appendChild(text);
      li.appendChild(sw);
      ul.appendChild(li);
    });
  }

  function setAll(value) {
    CATEGORIES.forEach(function (c) {
      prefs[c.id] = c.locked ? true : value;
    });
    renderToggles();
  }

  // ---------------------------------------------------------------
  // sending

  function track(label, send, integrations) {
    var entry = { label: label, prefs: currentPrefs(),
                  integrations: integrations, state: 'sending' };
    sent.push(entry);
    renderSent();
    return Promise.resolve(send(analytics)).then(function (ctx) {
      entry.messageId = ctx.event.messageId;
      var failed = ctx.failedDelivery && ctx.failedDelivery();
      entry.state = failed ? 'failed' : 'sent';
      renderSent();
      return refresh();
    });
  }

  function renderButtons() {
    var box = byId('buttons');
    EVENTS.forEach(function (e) {
      var b = el('button', 'event', e.label);
      b.id = 'send-' + e.id;
      b.addEventListener('click', function () {
        track(e.label, e.send, e.id === 'ad' ? { facebook: false } : undefined);
      });
      box.appendChild(b);
    });
  }

  function prefChips(p) {
    var box = el('span', 'chips');
    if (!p) {
      box.appendChild(el('span', 'chip none', 'no consent object'));
      return box;
    }
    CATEGORIES.forEach(function (c) {
      box.appendChild(el('span', 'chip ' + (p[c.id] ? 'yes' : 'no'), c.id));
    });
    return box;
  }

  function renderSent() {
    var ol = byId('sent');
    ol.textContent = '';
    byId('sent-count').textContent = sent.length;
    sent.slice().reverse().forEach(function (s) {
      var li = el('li', 'sent-' + s.state);
      li.appendChild(el('span', 'ename', s.label));
      li.appendChild(prefChips(s.prefs));
      li.appendChild(el('span', 'estate', s.state));
      ol.appendChild(li);
    });
  }

  // ---------------------------------------------------------------
  // the panel

  function getJSON(url) {
    return fetch(url, { cache: 'no-store' }).then(function (r) {
      if (!r.ok) { throw new Error(url + ': ' + r.status); }
      return r.json();
    });
  }

  // messageIds a sink received, from its request log
  function receivedIds(listing) {
    var ids = {};
    listing.requests.forEach(function (r) {
      try {
        (JSON.parse(r.body).batch || []).forEach(function (ev) {
          ids[ev.messageId] = true;
        });
      } catch (e) { /* not a batch */ }
    });
    return ids;
  }

  var refreshing = null;
  function refresh() {
    if (refreshing) {
      return refreshing.then(refresh);
    }
    // the events answered before the sinks are read: only their fate is
    // known from this read (a later one is still "sending")
    var answered = {};
    sent.forEach(function (s) {
      if (s.messageId) { answered[s.messageId] = true; }
    });
    refreshing = Promise.all([getJSON('/status?format=json')].concat(
      DESTINATIONS.map(function (d) { return getJSON('/_sinks/' + d.name); })
    )).then(function (r) {
      renderPanel(r[0], r.slice(1).map(receivedIds), answered);
      byId('refreshed').textContent = 'updated ' + new Date().toLocaleTimeString();
    }).catch(function (e) {
      byId('refreshed').textContent = 'refresh failed: ' + e.message;
    }).then(function () { refreshing = null; });
    return refreshing;
  }

  function counter(label, value, cls) {
    var c = el('div', 'counter ' + cls);
    c.appendChild(el('div', 'cval', String(value)));
    c.appendChild(el('div', 'clabel', label));
    return c;
  }

  function renderPanel(status, received, answered) {
    var box = byId('dests');
    box.textContent = '';
    DESTINATIONS.forEach(function (d, i) {
      var card = el('div', 'card dest');
      card.id = 'dest-' + d.name;
      var head = el('div', 'dhead');
      head.appendChild(el('h3', null, d.name));
      var rule = d.enforce === false ? 'enforce=off'
               : d.categories.length ? 'needs ' + d.categories.map(function (id) {
                   return id + (CATEGORIES.some(function (c) {
                     return c.id === id && c.off; }) ? ' (off)' : '');
                 }).join(' + ')
               : 'unmapped';
      head.appendChild(el('span', 'rule', rule));
      card.appendChild(head);
      card.appendChild(el('div', 'dabout', d.about));

      var n = (status.events_total || {})[d.name] || {};
      var counters = el('div', 'counters');
      counters.appendChild(counter('delivered', n.delivered || 0, 'ok'));
      counters.appendChild(counter('filtered: consent',
                                   n.filtered_consent || 0, 'consent'));
      counters.appendChild(counter('filtered: integrations',
                                   n.filtered_integrations || 0, 'integ'));
      if (n.failed) {
        counters.appendChild(counter('failed', n.failed, 'bad'));
      }
      card.appendChild(counters);

      var ul = el('ul', 'events');
      sent.slice().reverse().forEach(function (s) {
        var why = filterReason(s, d);
        var got = s.messageId && received[i][s.messageId];
        var li, state, text;
        if (!answered[s.messageId]) {
          state = 'pending'; text = 'sending...';
        } else if (got && !why) {
          state = 'received'; text = 'received';
        } else if (!got && why) {
          state = 'filtered'; text = 'filtered: ' + why;
        } else if (got) {
          state = 'unexpected'; text = 'received, but expected ' + why;
        } else {
          state = 'missing'; text = 'not received (expected it)';
        }
        li = el('li', 'ev ' + state
                      + (state === 'filtered' && /^integrations/.test(why)
                         ? ' integ' : ''));
        li.appendChild(el('span', 'mark'));
        li.appendChild(el('span', 'ename', s.label));
        li.appendChild(el('span', 'why', text));
        ul.appendChild(li);
      });
      if (!sent.length) {
        ul.appendChild(el('li', 'empty', 'No event sent from this page yet.'));
      }
      card.appendChild(ul);
      box.appendChild(card);
    });
  }

  // ---------------------------------------------------------------

  window.DemoConfig = { categories: CATEGORIES, destinations: DESTINATIONS };
  // analytics.js's default delivery: one request per event, so an event's
  // promise resolves once the gateway answered, i.e. after every
  // destination got what it may get
  window.demoReady = GatewayAnalytics.load(location.origin, 'demo_write_key')
    .then(function (a) {
      analytics = a;
      byId('gateway').textContent = location.origin + '/v1/';
      return GatewayAnalytics.addConsentMiddleware(a, currentPrefs);
    })
    .then(function () {
      renderToggles();
      renderButtons();
      byId('reject-all').addEventListener('click', function () { setAll(false); });
      byId('accept-all').addEventListener('click', function () { setAll(true); });
      byId('save').addEventListener('click', function () {
        byId('no-consent').checked = false;
        var p = currentPrefs();
        track('Consent Preference Updated', function (an) {
          return GatewayAnalytics.consentChanged(an, p);
        });
      });
      setInterval(function () { if (!document.hidden) { refresh(); } }, 3000);
      return refresh();
    });
})();
