// Browser test of the HTML report of `defuse report`: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core opens the report from file:// with the network
// switched off, and checks that it renders offline: no console error (a Content-Security-
// Policy violation is one), no request other than the file itself and its data: images,
// every image decoded, every section visible, the plots drawn with a nonzero size, no
// horizontal overflow, the table of contents working. Then saves a full-page screenshot.
//
//   node report.spec.mjs --report REPORT.html --screenshot OUT.png [--scenarios 6]
//
// --scenarios 0 checks the report of an empty workspace (every section "not available", no
// plot). Run by scripts/browser_report_test.sh. Exits non-zero with the failing check on stderr.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`missing --${name}`);
  return fallback;
}

const report = path.resolve(option('report'));
const screenshot = option('screenshot');
const expectedScenarios = Number(option('scenarios', '6'));
const full = expectedScenarios > 0;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const url = pathToFileURL(report).href;
const SECTIONS = ['findings', 'scenarios', 'before-after', 'lambda-curves', 'latent-map', 'interpolation', 'failure-grid', 'summary'];

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
let step = 'start';
try {
  const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
  });
  page.on('requestfailed', (request) => problems.push(`failed request: ${request.url().slice(0, 80)} (${request.failure()?.errorText})`));
  page.on('request', (request) => {
    const u = request.url();
    if (u !== url && !u.startsWith('data:')) problems.push(`unexpected request: ${u.slice(0, 120)}`);
  });

  step = 'load the report from disk';
  const response = await page.goto(url, { waitUntil: 'load' });
  assert.ok(!response || response.ok(), 'the file loads');
  assert.match(await page.title(), /defuse report/);

  step = 'every image is inline and decoded';
  const images = await page.evaluate(() => [...document.images].map((img) => ({
    inline: img.getAttribute('src').startsWith('data:image/png;base64,'),
    ok: img.complete && img.naturalWidth > 0,
    alt: img.getAttribute('alt') || '',
  })));
  for (const [i, image] of images.entries()) {
    assert.ok(image.inline, `image ${i} is a data: URI`);
    assert.ok(image.ok, `image ${i} (${image.alt}) decodes`);
    assert.ok(image.alt.length > 0, `image ${i} has alt text`);
  }
  if (full) assert.ok(images.length >= expectedScenarios * 10, `expected many images, found ${images.length}`);

  step = 'no link or resource leaves the file';
  const external = await page.evaluate(() => [...document.querySelectorAll('[src],[href]')]
    .map((e) => e.getAttribute('src') ?? e.getAttribute('href'))
    .filter((v) => !v.startsWith('#') && !v.startsWith('data:')));
  assert.deepEqual(external, [], 'only in-page anchors and data: URIs');
  assert.equal(await page.locator('script').count(), 0, 'no script');

  step = 'sections are visible';
  for (const id of SECTIONS) {
    const section = page.locator(`section#${id}`);
    assert.ok(await section.isVisible(), `section ${id} is visible`);
    const box = await section.boundingBox();
    assert.ok(box && box.height > 40, `section ${id} has content`);
  }
  assert.equal(await page.locator('article.scenario').count(), expectedScenarios, 'one card per scenario');
  assert.equal(await page.locator('nav.toc a').count(), SECTIONS.length, 'a table of contents entry per section');

  step = 'the plots have a size';
  const plots = page.locator('svg.plot');
  assert.equal(await plots.count(), full ? 2 : 0);
  for (let i = 0; i < await plots.count(); ++i) {
    const box = await plots.nth(i).boundingBox();
    assert.ok(box && box.width > 300 && box.height > 200, `plot ${i} has a nonzero size: ${JSON.stringify(box)}`);
    assert.ok(await plots.nth(i).locator('title').count() >= 1, `plot ${i} has a title`);
  }
  if (full) {
    // The map's marks and the chart's points are drawn inside their plots.
    assert.ok(await page.locator('#latent-map-svg g.mean').count() === expectedScenarios, 'one disc per scenario mean');
    const points = await page.locator('#lambda-curves-svg .pt-test').evaluateAll((nodes) =>
      nodes.map((n) => ({ lambda: Number(n.dataset.lambda), x: n.getBoundingClientRect().x })));
    assert.ok(points.length >= 2, 'the sweep is drawn');
    for (let i = 1; i < points.length; ++i) assert.ok(points[i].x > points[i - 1].x, 'ascending λ left to right');
    // Escaped names read back as the original text.
    assert.match(await page.locator('#latent-map-svg').textContent(), /Bag <& "odd" name>/);
  } else {
    assert.ok(await page.locator('p.na').count() >= SECTIONS.length - 1, 'sections say "not available"');
  }

  step = 'layout';
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow} px)`);

  step = 'the table of contents jumps to a section';
  await page.locator('nav.toc a[href="#lambda-curves"]').click();
  await page.waitForFunction(() => location.hash === '#lambda-curves');
  const { top, atEnd } = await page.locator('section#lambda-curves').evaluate((e) => ({
    top: e.getBoundingClientRect().top,
    atEnd: window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 1,
  }));
  assert.ok(top >= 0 && (top < 120 || atEnd), `the section is at the top of the view (top ${top})`);

  step = 'screenshot';
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  fs.mkdirSync(path.dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });

  assert.deepEqual(problems, [], 'no script errors, CSP violations or requests');
  console.log(`report browser test: ${SECTIONS.length} sections, ${expectedScenarios} scenarios, ${images.length} images; screenshot ${screenshot}`);
} catch (error) {
  console.error(`report browser test failed at "${step}": ${error.message}`);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
