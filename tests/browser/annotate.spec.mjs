// Browser test of the labelling page of `defuse annotate`: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core labels every scenario of a tiny workspace with
// the mouse and the keyboard, rejects one, writes a note, reloads and finds the stored state,
// sees another annotator's vote after a refresh, and saves a screenshot.
//
//   node annotate.spec.mjs --url http://127.0.0.1:PORT/ --screenshot OUT.png [--scenarios 4]
//
// Run by scripts/browser_test.sh, which builds the workspace and starts the server. Exits
// non-zero with the failing check on stderr.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`missing --${name}`);
  return fallback;
}

const url = option('url');
const screenshot = option('screenshot');
const expectedScenarios = Number(option('scenarios', '4'));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const NAME = 'browser-test';
const NOTE = 'looks like a coat to me';

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'defuse-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  deviceScaleFactor: 1,
});
context.setDefaultTimeout(15000);

const problems = [];
let step = 'start';
try {
  const page = context.pages()[0] || await context.newPage();
  // Any script error or Content-Security-Policy violation fails the test.
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });

  const cards = page.locator('article.card');
  const card = (i) => cards.nth(i);
  const saved = async (i) => {
    await page.waitForFunction((index) => {
      const node = document.querySelectorAll('article.card .save-state')[index];
      return node && node.textContent.startsWith('saved');
    }, i);
  };

  step = 'load the page';
  await page.goto(url);
  await cards.first().waitFor();
  assert.equal(await cards.count(), expectedScenarios, 'one card per scenario');
  const state = await page.evaluate(async () => (await fetch('/api/state')).json());
  const classes = state.class_names;
  assert.equal(state.scenarios.length, expectedScenarios);
  // Images load (the thumbnails are served).
  await page.waitForFunction(() => [...document.images].every((img) => img.complete && img.naturalWidth > 0));
  assert.match(await page.locator('#progress-text').textContent(), new RegExp(`^0 of ${expectedScenarios} `));

  step = 'a decision without a name is refused on the page';
  await card(0).locator('.label-btn').nth(3).click();
  await page.locator('#annotator.missing').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'annotator');

  step = 'enter the name';
  await page.fill('#annotator', NAME);
  await page.keyboard.press('Enter');

  // Scenario 1: the mouse.
  step = 'label scenario 1 with a click';
  await card(0).locator('.label-btn').nth(3).click();
  await saved(0);
  assert.equal(await card(0).locator('.label-btn.selected').getAttribute('data-label'), '3');

  // Scenario 2: the keyboard. Labelling moved the focus to the next card.
  step = 'label scenario 2 with a digit key';
  await page.waitForFunction(() => document.querySelector('article.card.active')?.dataset.id === '2');
  await page.keyboard.press('5');
  await saved(1);
  assert.equal(await card(1).locator('.label-btn.selected').getAttribute('data-label'), '4');

  // Scenario 3: reject with r.
  step = 'reject scenario 3 with r';
  await page.waitForFunction(() => document.querySelector('article.card.active')?.dataset.id === '3');
  await page.keyboard.press('r');
  await saved(2);
  assert.equal(await card(2).locator('.reject-btn.selected').getAttribute('data-reject'), 'unrealistic');

  // Scenario 4: arrows, a note, then a label.
  step = 'move with the arrows, write a note, label scenario 4';
  await page.waitForFunction(() => document.querySelector('article.card.active')?.dataset.id === '4');
  await page.keyboard.press('ArrowUp');
  await page.waitForFunction(() => document.querySelector('article.card.active')?.dataset.id === '3');
  await page.keyboard.press('ArrowDown');
  await page.waitForFunction(() => document.querySelector('article.card.active')?.dataset.id === '4');
  await page.keyboard.press('n');
  await page.keyboard.type(NOTE);
  await page.keyboard.press('Escape');
  await page.keyboard.press('1');
  await saved(3);
  // Scenario 5: "the classifier is right: not a bug", with b.
  step = 'mark scenario 5 as not a bug with b';
  await page.waitForFunction(() => document.querySelector('article.card.active')?.dataset.id === '5');
  await page.keyboard.press('b');
  await saved(4);
  assert.equal(await card(4).locator('.reject-btn.selected').getAttribute('data-reject'), 'not-a-bug');
  for (let i = 5; i < expectedScenarios; i++) {
    await card(i).locator('.label-btn').nth(i % classes.length).click();
    await saved(i);
  }
  await page.waitForFunction((n) => document.querySelector('#progress-text').textContent.startsWith(`${n} of ${n} `),
    expectedScenarios);

  step = 'reload and find the stored state';
  await page.reload();
  await cards.first().waitFor();
  assert.equal(await page.inputValue('#annotator'), NAME, 'the name is remembered');
  assert.equal(await card(0).locator('.label-btn.selected').getAttribute('data-label'), '3');
  assert.equal(await card(1).locator('.label-btn.selected').getAttribute('data-label'), '4');
  assert.equal(await card(2).locator('.reject-btn.selected').getAttribute('data-reject'), 'unrealistic');
  assert.equal(await card(2).locator('.label-btn.selected').count(), 0);
  assert.equal(await card(3).locator('.label-btn.selected').getAttribute('data-label'), '0');
  assert.equal(await card(3).locator('textarea.note').inputValue(), NOTE);
  for (let i = 0; i < expectedScenarios; i++) assert.match(await card(i).locator('.save-state').textContent(), /^saved/);
  assert.match(await page.locator('#progress-text').textContent(), new RegExp(`^${expectedScenarios} of ${expectedScenarios} scenarios decided`));
  assert.match(await card(2).locator('.resolution').textContent(), /rejected: unrealistic/);
  assert.match(await card(4).locator('.resolution').textContent(), /rejected: not-a-bug/);
  assert.match(await card(0).locator('.resolution').textContent(), new RegExp(classes[3].replace(/[/]/g, '\\/')));

  step = 'another annotator votes; a refresh shows it';
  const other = await page.evaluate(async () => {
    const csrf = document.querySelector('meta[name="defuse-csrf"]').content;
    const response = await fetch('/api/annotations', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify({ scenario: 1, annotator: 'carol', label: 6, note: 'a shirt, surely' }),
    });
    return { status: response.status, body: await response.json() };
  });
  assert.equal(other.status, 200);
  assert.equal(other.body.resolution.status, 'tie');
  await page.reload();
  await cards.first().waitFor();
  assert.match(await card(0).locator('.votes').textContent(), new RegExp(`carol ${classes[6]}`));
  assert.match(await card(0).locator('.resolution').textContent(), /tie/);
  assert.match(await page.locator('#progress-text').textContent(), new RegExp(`^${expectedScenarios - 1} of ${expectedScenarios} `));

  step = 'a forged cross-site write is refused';
  const forged = await page.evaluate(async () => {
    const response = await fetch('/api/annotations', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },  // no CSRF token
      body: JSON.stringify({ scenario: 1, annotator: 'mallory', label: 1 }),
    });
    return response.status;
  });
  assert.equal(forged, 403);
  problems.splice(0, problems.length, ...problems.filter((p) => !/HTTP 403 for .*\/api\/annotations|status of 403/.test(p)));

  step = 'screenshot';
  await page.evaluate(() => window.scrollTo(0, 0));
  await card(0).click({ position: { x: 5, y: 5 } });
  fs.mkdirSync(path.dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });

  assert.deepEqual(problems, [], 'no script errors, CSP violations or failed requests');
  console.log(`browser test: ${expectedScenarios} scenarios labelled, one rejected, state found after reload; screenshot ${screenshot}`);
} catch (error) {
  console.error(`browser test failed at "${step}": ${error.message}`);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
