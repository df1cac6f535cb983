#!/usr/bin/env node
// Drives headless Chromium (Debian's /usr/bin/chromium, through the
// pinned npm playwright-core) through the scenarios of t/40-browser.t.
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

const fs = require('fs');
const { chromium } = require('playwright-core');

const WAIT_MS = 20000;

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const gateway = new URL(job.gateway);

function eventsIn(rec) {
  const b = rec.body;
  if (rec.path === '/v1/b') {
    return b && Array.isArray(b.batch) ? b.batch.length : 0;
  }
  return /^\/v1\/[tpigas]$/.test(rec.path) ? 1 : 0;
}

// Resolves when check() turns true (re-checked on every recorded browser
// event), rejects after WAIT_MS with what was seen so far.
function until(state, what, check) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      state.waiters.delete(poll);
      reject(new Error(`timed out waiting for ${what}`));
    }, WAIT_MS);
    function poll() {
      if (check()) {
        clearTimeout(timer);
        state.waiters.delete(poll);
        resolve();
      }
    }
    state.waiters.add(poll);
    poll();
  });
}

function notify(state) {
  for (const w of state.waiters) {
    w();
  }
}

async function runScenario(browser, sc) {
  const state = {
    name: sc.name, posts: [], failed: [], console: [], pageErrors: [],
    external: [], waiters: new Set(),
  };
  const started = Date.now();
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageHost = new URL(sc.page).host;

  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol !== 'data:' && u.host !== gateway.host
        && u.host !== pageHost && req.url() !== 'about:blank') {
      state.external.push(req.url());
    }
  });
  page.on('response', async (res) => {
    const req = res.request();
    const u = new URL(req.url());
    if (u.host !== gateway.host) {
      return;
    }
    let body = null;
    try {
      body = JSON.parse(req.postData() || 'null');
    } catch (e) {
      body = { unparsable: req.postData() };
    }
    const rec = {
      method: req.method(), path: u.pathname, status: res.status(),
      requestHeaders: await req.allHeaders(),
      responseHeaders: await res.allHeaders(),
      body,
    };
    state.posts.push(rec);
    notify(state);
  });
  page.on('requestfailed', (req) => {
    state.failed.push({ url: req.url(), method: req.method(),
                        error: req.failure() && req.failure().errorText });
    notify(state);
  });
  page.on('console', (msg) => {
    state.console.push({ type: msg.type(), text: msg.text() });
    notify(state);
  });
  page.on('pageerror', (err) => {
    state.pageErrors.push(String(err && err.stack || err));
    notify(state);
  });

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
  await context.close();
  const { waiters, ...result } = state;
  return result;
}

(async () => {
  const started = Date.now();
  const browser = await chromium.launch({
    executablePath: job.chromium || '/usr/bin/chromium',
    headless: true,
    args: [
      `--host-resolver-rules=${job.hostRules}`,
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-dev-shm-usage',
    ],
  });
  const result = { version: browser.version(), scenarios: [] };
  try {
    for (const sc of job.scenarios) {
      result.scenarios.push(await runScenario(browser, sc));
    }
  } finally {
    await browser.close();
  }
  result.ms = Date.now() - started;
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((e) => {
  process.stderr.write(`drive.js: ${e && e.stack || e}\n`);
  process.exit(1);
});
