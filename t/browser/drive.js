#!/usr/bin/env node
// Drives headless Chromium (t/browser/chromium.js) through the scenarios
// of t/40-browser.t.
//
//   node t/browser/drive.js JOB.json   -> one JSON result on stdout
//
// JOB: { chromium, hostRules, gateway: 'http://127.0.0.1:PORT',
//        scenarios: [ { name, page: URL, spec: {...runScenario spec},
//                       expect: 'delivered' | 'unload' | 'cors',
//                       events: N, telemetry: bool } ] }
//
// Per scenario a fresh browser context (no cookies, no localStorage) opens
// the page and calls window.runScenario(spec) (t/browser/page.html).  Then
// it waits on what the browser itself reports, never on a fixed delay:
//   delivered: gateway responses to event requests until N events were
//              answered (/v1/t, p, i, g, a, s: one each; /v1/b: its
//              batch), and, with telemetry, one answered /v1/m;
//   unload:    the page is left (about:blank) with its events still in
//              analytics.js's batch buffer, which analytics.js then sends
//              with fetch keepalive; t/40 waits for them at the sinks;
//   cors:      a failed gateway request and Chromium's console error
//              naming the CORS policy.
// Everything is recorded (gateway requests with their headers and bodies,
// statuses, failed requests, console messages, page errors, requests to
// hosts other than the job's) for t/40-browser.t to assert on.
'use strict';

const { run, record, until, report } = require('./chromium');

function eventsIn(rec) {
  const b = rec.body;
  if (rec.path === '/v1/b') {
    return b && Array.isArray(b.batch) ? b.batch.length : 0;
  }
  return /^\/v1\/[tpigas]$/.test(rec.path) ? 1 : 0;
}

async function runScenario(browser, gateway, sc) {
  const state = { name: sc.name };
  const started = Date.now();
  const context = await browser.newContext();
  const page = await context.newPage();
  record(page, state, gateway.host, new URL(sc.page).host);

  const answered = () => state.posts.filter((p) => p.status < 400);
  const events = () => answered().reduce((n, p) => n + eventsIn(p), 0);

  try {
    await page.goto(sc.page, { waitUntil: 'load' });
    state.anonymousId = await page.evaluate((spec) => runScenario(spec),
                                            sc.spec);
    if (sc.expect === 'delivered') {
      await until(state, `${sc.events} delivered events`,
                  () => events() >= sc.events);
      if (sc.telemetry) {
        await until(state, 'an answered /v1/m',
                    () => answered().some((p) => p.path === '/v1/m'));
      }
    } else if (sc.expect === 'unload') {
      state.batchesBeforeUnload =
        state.posts.filter((p) => p.path === '/v1/b').length;
      await page.goto('about:blank', { waitUntil: 'load' });
    } else if (sc.expect === 'cors') {
      await until(state, 'a failed gateway request and a CORS error',
                  () => state.failed.some((f) => new URL(f.url).host
                                                 === gateway.host)
                        && state.console.some((c) => /CORS policy/
                                                     .test(c.text)));
    }
  } catch (e) {
    state.error = String(e && e.stack || e);
  }
  state.events = events();
  state.ms = Date.now() - started;
  const result = report(state);
  await context.close();
  return result;
}

run(async (browser, job) => {
  const gateway = new URL(job.gateway);
  const scenarios = [];
  for (const sc of job.scenarios) {
    scenarios.push(await runScenario(browser, gateway, sc));
  }
  return { scenarios };
});
