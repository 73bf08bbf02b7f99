// tests/e2e/web.test.mjs — discoveryd's web pages in a real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core): create a token through the form, watch three
// real etcd 3.4 members arrive live, then "full", a fourth as surplus; hostile member values
// render as text; the page survives a discoveryd restart and says so plainly when its token is
// deleted; the form works without JavaScript;
// one parked watch per tab; axe-core finds no serious or critical violation; screenshots of
// both pages at 375 and 1280 px, light and dark, into $E2E_OUT_DIR. Run by run.sh (ctest).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { Discoveryd, HoldingRelay, Member, cleanupTmp, freePort, httpGet, sleep, T, tail, tmpRoot, waitUntil } from './procs.mjs';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const OUT = process.env.E2E_OUT_DIR || path.join(tmpRoot, 'screenshots');
fs.mkdirSync(OUT, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const XSS = '<script>alert(1)</script>';

let passed = 0, failed = 0;
function check(name, cond, detail = '') {
  if (cond) { passed++; console.log('PASS ' + name); }
  else { failed++; console.log('FAIL ' + name + (detail !== '' ? ': ' + detail : '')); }
  return !!cond;
}
async function scenario(name, fn) {
  console.log('## ' + name);
  const t0 = Date.now();
  try { await fn(); }
  catch (e) { failed++; console.log(`FAIL ${name}: exception ${e && e.stack ? e.stack : e}`); }
  console.log(`## ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

/** Waits for a page condition; a timeout is one failed check, not a crash. */
async function expectPage(page, name, fn, arg, ms = 20000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: T(ms), polling: 100 });
    return check(name, true);
  } catch (e) {
    let state = '';
    try { state = await page.evaluate(() => document.body.dataset.state + ' | ' + document.getElementById('state')?.textContent + ' | ' + document.getElementById('conn')?.textContent); } catch { /* closed */ }
    return check(name, false, 'timed out; page: ' + state);
  }
}

async function axe(page, label) {
  await page.evaluate(AXE);
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  const bad = res.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(`axe: ${label} has no serious or critical violation`, bad.length === 0, JSON.stringify(bad));
  const minor = res.filter((v) => !bad.includes(v));
  if (minor.length) console.log(`# axe ${label}: minor: ${JSON.stringify(minor)}`);
}

async function shots(browser, url, name, prepare) {
  for (const scheme of ['light', 'dark']) {
    for (const width of [375, 1280]) {
      const ctx = await browser.newContext({ viewport: { width, height: width < 500 ? 800 : 900 }, colorScheme: scheme,
        deviceScaleFactor: 1 });
      const p = await ctx.newPage();
      await p.goto(url);
      if (prepare) await prepare(p);
      await p.waitForTimeout(1500); // let the arrival highlight fade
      const file = path.join(OUT, `${name}-${width}-${scheme}.png`);
      await p.screenshot({ path: file, fullPage: true });
      if (width === 375) {
        const sw = await p.evaluate(() => document.documentElement.scrollWidth);
        check(`${name} ${scheme} at 375 px has no horizontal scroll`, sw <= 375, `scrollWidth ${sw}`);
      }
      await axe(p, `${name} (${scheme}, ${width} px)`);
      await ctx.close();
    }
  }
}

async function main() {
  const port = await freePort();
  const dd = new Discoveryd(port);
  await dd.start();
  const base = dd.base;
  const members = [];
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  let tok = null, url = null, page = null;
  const dialogs = [];
  try {
    await scenario('1. curl still gets the plain answers', async () => {
      const r = await httpGet(base + '/', { headers: { Accept: '*/*' } });
      check('/ with Accept */* is text/plain', (r.headers.get('content-type') || '').startsWith('text/plain'));
      const n = await httpGet(base + '/new?size=3', { headers: { Accept: '*/*' } });
      const body = await n.text();
      check('/new with Accept */* prints the URL, no redirect', n.status === 200 && /^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}$/.test(body), body);
    });

    await scenario('2. create a token through the form and open its page', async () => {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await ctx.newPage();
      page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
      const home = await page.goto(base + '/');
      check('/ in the browser is HTML', (home.headers()['content-type'] || '').startsWith('text/html'));
      const h = home.headers();
      check('/ carries a strict CSP', /default-src 'none'/.test(h['content-security-policy'] || '') && !/unsafe-inline/.test(h['content-security-policy'] || ''), h['content-security-policy']);
      check('/ carries nosniff', h['x-content-type-options'] === 'nosniff');
      await page.fill('#size', '3');
      await page.click('#new-form button[type=submit]');
      await page.waitForSelector('#result:not([hidden])', { timeout: T(10000) });
      url = (await page.textContent('#result-url')).trim();
      check('the form shows the new discovery URL', new RegExp('^' + base.replace(/[.]/g, '\\.') + '/[0-9a-f]{32}$').test(url), url);
      tok = url.split('/').pop();
      const etcdLines = await page.textContent('#etcd-lines');
      check('the etcd lines carry the URL', etcdLines.includes('DISCOVERY=' + url) && etcdLines.includes('--discovery'), etcdLines);
      await page.click('#result-link');
      await page.waitForURL(base + '/' + tok, { timeout: T(10000) });
      await expectPage(page, 'the token page says 0 of 3', () => document.getElementById('state').textContent.includes('Waiting for members: 0 of 3'));
      await expectPage(page, 'the token page is live', () => document.getElementById('conn').dataset.conn === 'live');
      await page.evaluate(() => { window.__noReload = 'still here'; });
      const parked = await waitUntil(async () => (await dd.parkedWatches()) === 1, 10000, 'one parked watch').catch(() => false);
      check('one open token page parks exactly one watch', parked, await dd.parkedWatches());
      // Sample across a watch timeout (5 s) and the page's re-poll: never more than one.
      const samples = [];
      for (let i = 0; i < 14; i++) { samples.push(await dd.parkedWatches()); await sleep(500); }
      check('... and never more than one across a watch timeout and re-poll',
        samples.every((n) => n <= 1) && samples.filter((n) => n === 1).length >= samples.length / 2, JSON.stringify(samples));
    });
    if (!tok) throw new Error('no token: cannot go on');

    await scenario('3. three real etcd members arrive live, then full; a fourth is surplus', async () => {
      // Every member reaches discoveryd through one relay (etcd derives member IDs from the
      // discovery URL, so all must use the same one). web1 and web2 start one after the other.
      // Then the relay holds registrations: web3 and web4 both see 2 of 3 and register, as racing
      // members do; the first PUT is let through, then the second, whose sender becomes a real
      // surplus registration.
      const relay = await HoldingRelay.create(base);
      try {
        const viaRelay = relay.base + '/' + tok;
        for (let i = 1; i <= 2; i++) {
          members.push(await Member.create('web' + i, viaRelay));
          await expectPage(page, `member ${i} appears without a reload`,
            (n) => document.querySelectorAll('#members-body tr').length === n && document.getElementById('count').textContent === String(n), i, 30000);
        }
        relay.holding = true;
        const m3 = await Member.create('web3', viaRelay, ['--discovery-fallback=exit']);
        const m4 = await Member.create('web4', viaRelay, ['--discovery-fallback=exit']);
        members.push(m3, m4);
        await waitUntil(() => relay.held.length === 2, 30000, 'both racing registrations at the relay');
        check('the racing registrations are member PUTs below the token', relay.held.every((h) => h.path.includes('/' + tok + '/')),
          JSON.stringify(relay.held.map((h) => h.path)));
        // The PUT names a member ID, not the etcd name: release in arrival order, read names after.
        relay.held[0].release();
        await expectPage(page, 'member 3 appears without a reload',
          () => document.querySelectorAll('#members-body tr').length === 3 && document.getElementById('count').textContent === '3', undefined, 30000);
        await expectPage(page, 'the page says full', () => document.body.dataset.state === 'full' && document.getElementById('state').textContent.startsWith('Full: 3 of 3'));
        relay.held[1].release();
        await expectPage(page, 'the fourth row is surplus', () => {
          const rows = document.querySelectorAll('#members-body tr');
          return rows.length === 4 && rows[3].classList.contains('surplus') &&
            rows[3].querySelector('td[data-label="Role"]').textContent === 'surplus' &&
            rows.length === document.querySelectorAll('#members-body tr.member').length + 1;
        }, undefined, 30000);
        await expectPage(page, 'the state names one surplus', () => document.getElementById('state').textContent.includes('1 surplus'));
        const names = await page.$$eval('#members-body tr.member td[data-label="Name"]', (tds) => tds.map((t) => t.textContent));
        const surplus = await page.$eval('#members-body tr.surplus td[data-label="Name"]', (td) => td.textContent);
        check('the members and the surplus are the four etcd names',
          JSON.stringify([...names, surplus].sort()) === JSON.stringify(['web1', 'web2', 'web3', 'web4']), JSON.stringify([names, surplus]));
        const peers = await page.$$eval('#members-body .peer', (s) => s.map((t) => t.textContent));
        check('the peer URLs are the members\'', JSON.stringify([...peers].sort()) === JSON.stringify(members.map((m) => m.peerURL).sort()), peers);
        check('no reload happened', (await page.evaluate(() => window.__noReload)) === 'still here');
        const winners = members.filter((m) => names.includes(m.name));
        const loser = members.find((m) => m.name === surplus);
        const formed = await waitUntil(async () => {
          for (const m of winners) if (!m.alive()) throw new Error(m.name + ' exited:\n' + tail(m.log));
          for (const m of winners) if (!(await m.healthy())) return false;
          return true;
        }, 60000, 'the etcd cluster healthy', 300).catch((e) => { console.log('# ' + e.message); return false; });
        check('the three member etcds formed a healthy cluster', formed);
        const exited = await waitUntil(() => !loser.alive(), 30000, 'the surplus member to exit').catch(() => false);
        check('the surplus etcd member exited 1 (cluster full)', exited && loser.proc.exitCode === 1,
          `${loser.name} exit ${loser.proc.exitCode}`);
      } finally {
        relay.close();
      }
    });

    await scenario('5. a hostile member value renders as text', async () => {
      const before = await page.evaluate(() => document.querySelectorAll('script').length);
      const r = await httpGet(`${base}/v2/keys/discovery/${tok}/xss0001`, {
        method: 'PUT', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'value=' + encodeURIComponent(XSS + '=http://x'),
      });
      check('registering the hostile value is accepted', r.status === 201, r.status);
      await expectPage(page, 'the hostile name shows as text (live)', (x) => [...document.querySelectorAll('#members-body td[data-label="Name"]')].some((td) => td.textContent === x), XSS);
      const injected = await page.evaluate(() => ({ scripts: document.querySelectorAll('script').length, inBody: document.querySelectorAll('#members-body script, #members-body *[onerror]').length }));
      check('no element was injected (live)', injected.scripts === before && injected.inBody === 0, JSON.stringify(injected));
      // the server-rendered page, too
      await page.reload();
      await expectPage(page, 'the hostile name shows as text (server-rendered)', (x) => [...document.querySelectorAll('#members-body td[data-label="Name"]')].some((td) => td.textContent === x), XSS);
      const after = await page.evaluate(() => ({ scripts: document.querySelectorAll('script').length, inBody: document.querySelectorAll('#members-body script').length }));
      check('no element was injected (server-rendered)', after.scripts === before && after.inBody === 0, JSON.stringify(after));
      await sleep(500);
      check('no dialog was opened', dialogs.length === 0, JSON.stringify(dialogs));
      await expectPage(page, 'the reloaded page is live again', () => document.getElementById('conn').dataset.conn === 'live');
      const parked = await waitUntil(async () => (await dd.parkedWatches()) === 1, 10000, 'one parked watch').catch(() => false);
      check('after a reload the tab still parks exactly one watch', parked, await dd.parkedWatches());
    });

    await scenario('6. screenshots and axe-core on both pages', async () => {
      await shots(browser, base + '/', 'home', async (p) => {
        await p.fill('#size', '3');
        await p.click('#new-form button[type=submit]');
        await p.waitForSelector('#result:not([hidden])', { timeout: T(10000) });
      });
      await shots(browser, base + '/' + tok, 'token', async (p) => {
        await p.waitForFunction(() => document.getElementById('conn').dataset.conn === 'live', null, { timeout: T(10000) });
      });
      console.log('# screenshots in ' + OUT);
    });

    await scenario('7. the page recovers after discoveryd restarts', async () => {
      const rowsBefore = await page.$$eval('#members-body tr', (r) => r.length);
      await dd.kill();
      await expectPage(page, 'the page says the connection is lost', () => document.getElementById('conn').dataset.conn === 'lost' && /lost/i.test(document.getElementById('conn').textContent));
      await dd.start();
      await expectPage(page, 'the page reconnects by itself', () => document.getElementById('conn').dataset.conn === 'live', undefined, 40000);
      const state = await page.evaluate(() => document.body.dataset.state);
      if (state === 'notfound') {
        // The store forgot the token with the process: the page must say so clearly, then pick the
        // token up again when it is re-created by hand (private form) under the same name.
        const text = await page.textContent('#state');
        check('the page says the token does not exist', /No token by this name exists/.test(text), text);
        const r = await httpGet(`${base}/v2/keys/discovery/${tok}/_config/size`, {
          method: 'PUT', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'value=3' });
        check('re-creating the token lost in the restart by hand is accepted', r.status === 201, r.status);
        await expectPage(page, 'the page shows the token re-created after the restart', () => document.getElementById('state').textContent.includes('Waiting for members: 0 of 3'), undefined, 30000);
      } else {
        check('the token survived the restart with its members', await page.$$eval('#members-body tr', (r) => r.length) === rowsBefore, state);
      }
      await expectPage(page, 'the page is live on the restarted discoveryd', () => document.getElementById('conn').dataset.conn === 'live', undefined, 30000);
      const parked = await waitUntil(async () => (await dd.parkedWatches()) <= 1, 10000, 'at most one parked watch').catch(() => false);
      check('after the restart the tab parks at most one watch', parked, await dd.parkedWatches().catch((e) => e.message));
      // A token deleted while its page is open: the page says so plainly, and picks the token up
      // again when it is re-created by hand under the same name (private form).
      const del = await httpGet(`${base}/v2/keys/discovery/${tok}?recursive=true`, { method: 'DELETE' });
      check('deleting the token (recursive) is accepted', del.status === 200, del.status);
      await expectPage(page, 'the open page says the token does not exist',
        () => document.body.dataset.state === 'notfound' && /No token by this name exists/.test(document.getElementById('state').textContent) &&
          document.querySelectorAll('#members-body tr').length === 0, undefined, 30000);
      const again = await httpGet(`${base}/v2/keys/discovery/${tok}/_config/size`, {
        method: 'PUT', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'value=3' });
      check('re-creating the deleted token by hand is accepted', again.status === 201, again.status);
      await expectPage(page, 'the page shows the re-created token', () => document.getElementById('state').textContent.includes('Waiting for members: 0 of 3'), undefined, 30000);
      // a live event still arrives
      await httpGet(`${base}/v2/keys/discovery/${tok}/late0001`, {
        method: 'PUT', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'value=late=http://127.0.0.1:1' });
      await expectPage(page, 'a registration after the restart appears live', () => [...document.querySelectorAll('#members-body td[data-label="Name"]')].some((td) => td.textContent === 'late'));
    });

    await scenario('8. without JavaScript the form still creates a token', async () => {
      const ctx = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 375, height: 800 } });
      const p = await ctx.newPage();
      await p.goto(base + '/');
      await p.fill('#size', '2');
      await Promise.all([p.waitForURL(/\/[0-9a-f]{32}$/, { timeout: T(10000) }), p.click('#new-form button[type=submit]')]);
      const u = new URL(p.url());
      check('the form lands on a token page', /^\/[0-9a-f]{32}$/.test(u.pathname), p.url());
      const st = await p.textContent('#state');
      check('the landed page shows the new token (0 of 2)', st.includes('Waiting for members: 0 of 2'), st);
      const status = await (await httpGet(base + '/status' + u.pathname)).json();
      check('the token exists with size 2', status.size === 2, JSON.stringify(status));
      await ctx.close();
    });
  } finally {
    await browser.close().catch(() => {});
    for (const m of members) m.kill();
  }
  const code = await dd.stop();
  check('discoveryd exits 0 on SIGTERM', code === 0, code);
  const log = dd.logText();
  const marks = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'].filter((m) => log.includes(m));
  check('discoveryd log has no sanitizer report', marks.length === 0, marks.join(', '));
  if (failed) {
    console.log('----- tail of discoveryd log -----\n' + tail(dd.log, 40));
    for (const m of members) console.log(`----- tail of ${m.name} -----\n` + tail(m.log, 10));
  }
}

try {
  await main();
} catch (e) {
  failed++;
  console.log('FAIL e2e: exception ' + (e && e.stack ? e.stack : e));
}
cleanupTmp();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
