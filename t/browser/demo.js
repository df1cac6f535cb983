#!/usr/bin/env node
// Clicks through the demo page (demo/www, served by the demo gateway) in
// headless Chromium (t/browser/chromium.js) for t/41-demo.t.
//
//   node t/browser/demo.js JOB.json   -> one JSON result on stdout
//
// JOB: { chromium, hostRules, url: 'http://127.0.0.1:PORT/',
//        screenshot: 'build/demo.png',
//        steps: [ { clicks: ['#cat-C0002 + .slider', '#send-track', ...] } ] }
//
// Per step: the clicks in order, then a wait (on the page's DOM, no fixed
// delay) until the "Sent from this page" list has every event answered
// and the destinations' panel shows none of them as still sending; the
// result holds, per step, the panel's lines per destination, its
// counters and the page's DemoConfig (categories, destinations).  The
// screenshot is taken after the last step.
'use strict';

const path = require('path');
const { run, record, report } = require('./chromium');

// the panel as data: { dest: { events: [{label, state, why}], counters } }
function readPanel() {
  const panel = {};
  for (const card of document.querySelectorAll('.dest')) {
    const name = card.id.replace(/^dest-/, '');
    panel[name] = {
      events: [...card.querySelectorAll('.ev')].map((li) => ({
        label: li.querySelector('.ename').textContent,
        state: li.className.replace(/^ev /, ''),
        why: li.querySelector('.why').textContent,
      })),
      counters: Object.fromEntries([...card.querySelectorAll('.counter')]
        .map((c) => [c.querySelector('.clabel').textContent,
                     Number(c.querySelector('.cval').textContent)])),
    };
  }
  return panel;
}

// every sent event answered and shown in every destination's card
function settled(n) {
  const sent = document.querySelectorAll('#sent li');
  if (sent.length !== n || document.querySelector('#sent li.sent-sending')) {
    return false;
  }
  const cards = document.querySelectorAll('.dest');
  return cards.length > 0 && [...cards].every((card) =>
    card.querySelectorAll('.ev').length === n
    && !card.querySelector('.ev.pending'));
}

run(async (browser, job) => {
  const state = {};
  const context = await browser.newContext({
    viewport: { width: 1360, height: 900 },
  });
  const page = await context.newPage();
  const host = new URL(job.url).host;
  record(page, state, host, host);

  const steps = [];
  try {
    await page.goto(job.url, { waitUntil: 'load' });
    await page.evaluate(() => window.demoReady);
    state.config = await page.evaluate(() => window.DemoConfig);
    let sent = 0;
    for (const step of job.steps) {
      for (const sel of step.clicks) {
        await page.click(sel);
        if (sel.startsWith('#send-') || sel === '#save') {
          sent++;
        }
      }
      await page.waitForFunction(settled, sent, { timeout: 20000 });
      steps.push({ panel: await page.evaluate(readPanel) });
    }
    await page.screenshot({ path: path.resolve(job.screenshot),
                            fullPage: true });
  } catch (e) {
    state.error = String(e && e.stack || e);
  }
  state.steps = steps;
  const result = report(state);
  await context.close();
  return result;
});
