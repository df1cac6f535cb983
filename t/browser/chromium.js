// Shared by t/browser/drive.js and t/browser/demo.js: Debian's Chromium
// through the pinned npm playwright-core, a job file in, one JSON result
// out, and a recorder of what a page's browser reports.
'use strict';

const fs = require('fs');
const { chromium } = require('playwright-core');

// Runs main(browser, job) with the job of argv[2] (chromium, hostRules,
// ...) and prints its result as one JSON line; exits 1 on an exception.
function run(main) {
  (async () => {
    const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
    const started = Date.now();
    const browser = await chromium.launch({
      executablePath: job.chromium || '/usr/bin/chromium',
      headless: true,
      // as this machine's probe starts it: no background connections
      // (the network is closed), no sandbox (root)
      args: [
        `--host-resolver-rules=${job.hostRules}`,
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-dev-shm-usage',
      ],
    });
    let result;
    try {
      result = await main(browser, job);
    } finally {
      await browser.close();
    }
    result.version = browser.version();
    result.ms = Date.now() - started;
    process.stdout.write(JSON.stringify(result) + '\n');
  })().catch((e) => {
    process.stderr.write(`${process.argv[1]}: ${e && e.stack || e}\n`);
    process.exit(1);
  });
}

// Records into state (posts, failed, console, pageErrors, external) what
// PAGE's browser reports: every answered request to the gateway (method,
// path, status, headers, parsed body), failed requests, console
// messages, page errors and requests to hosts other than the gateway's
// and the page's.  state.waiters (a Set of functions) are called after
// each record, for until().
function record(page, state, gatewayHost, pageHost) {
  Object.assign(state, { posts: [], failed: [], console: [],
                         pageErrors: [], external: [] });
  state.waiters = state.waiters || new Set();
  const notify = () => {
    for (const w of state.waiters) {
      w();
    }
  };

  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol !== 'data:' && u.host !== gatewayHost
        && u.host !== pageHost && req.url() !== 'about:blank') {
      state.external.push(req.url());
    }
  });
  page.on('response', async (res) => {
    const req = res.request();
    const u = new URL(req.url());
    if (u.host !== gatewayHost || !u.pathname.startsWith('/v1/')) {
      return;
    }
    let body = null;
    try {
      body = JSON.parse(req.postData() || 'null');
    } catch (e) {
      body = { unparsable: req.postData() };
    }
    state.posts.push({
      method: req.method(), path: u.pathname, status: res.status(),
      requestHeaders: await req.allHeaders(),
      responseHeaders: await res.allHeaders(),
      body,
    });
    notify();
  });
  page.on('requestfailed', (req) => {
    state.failed.push({ url: req.url(), method: req.method(),
                        error: req.failure() && req.failure().errorText });
    notify();
  });
  page.on('console', (msg) => {
    state.console.push({ type: msg.type(), text: msg.text() });
    notify();
  });
  page.on('pageerror', (err) => {
    state.pageErrors.push(String(err && err.stack || err));
    notify();
  });
}

// Resolves when check() turns true (checked now and after each record),
// rejects after ms with a message naming what.
function until(state, what, check, ms = 20000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      state.waiters.delete(poll);
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
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

// A copy of state without its waiters, for the JSON result: taken before
// the page is closed, whose closing aborts what is still in flight (such
// as analytics.js's periodic telemetry).
function report(state) {
  const { waiters, ...rest } = state;
  return JSON.parse(JSON.stringify(rest));
}

module.exports = { run, record, until, report };
