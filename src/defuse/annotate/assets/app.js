// The labelling page of `defuse annotate`. Plain modern JavaScript, no dependencies: it
// reads /api/state, renders one card per scenario, and posts each decision at once to
// /api/annotations (with the page's CSRF token). Untrusted text (class names, notes,
// annotator names) only ever goes into textContent, never into HTML.
'use strict';

const NAME_KEY = 'defuse.annotator';
const POLL_MS = 15000;

const csrf = document.querySelector('meta[name="defuse-csrf"]').content;
const token = new URLSearchParams(location.search).get('token');

const page = {
  state: null,         // the last /api/state
  cards: new Map(),    // scenario id -> {root, parts...}
  active: 0,           // index of the card with keyboard focus
  saving: new Set(),   // scenario ids with a request in flight
};

// ---- small helpers ----

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function percent(x) {
  return `${Math.round(100 * x)}%`;
}

function withToken(url) {
  return token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url;
}

function headers(extra) {
  const h = Object.assign({}, extra);
  if (token) h['X-Defuse-Token'] = token;
  return h;
}

function className(label) {
  const names = page.state ? page.state.class_names : [];
  return label >= 0 && label < names.length ? names[label] : `class ${label}`;
}

function shortcutFor(label) {
  return label < 9 ? String(label + 1) : label === 9 ? '0' : null;
}

function annotator() {
  return document.getElementById('annotator').value.trim();
}

let toastTimer = 0;
function toast(message, kind) {
  const node = document.getElementById('toast');
  node.textContent = message;
  node.className = `show ${kind || ''}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.className = ''; }, kind === 'error' ? 6000 : 2200);
}

function timeOf(iso) {
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleTimeString();
}

// ---- the state ----

async function loadState() {
  const response = await fetch('/api/state', { headers: headers(), credentials: 'same-origin', cache: 'no-store' });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function scenarioById(id) {
  return page.state.scenarios.find((s) => s.id === id);
}

function myVote(scenario) {
  const name = annotator();
  return scenario.votes.find((v) => v.annotator === name) || null;
}

// ---- rendering ----

function imageFigure(image, caption, title, second) {
  return el('figure', { class: 'thumb', title },
    el('img', { src: withToken(image.url), alt: caption, loading: 'lazy', decoding: 'async', width: 72, height: 72 }),
    el('figcaption', { text: caption }),
    second ? el('figcaption', { class: 'second', text: second }) : null);
}

function statsLine(s) {
  const stats = [
    [percent(s.failure_rate), 'failure rate', 'Share of fresh samples from this scenario that the classifier gets wrong'],
    [String(s.members), s.members === 1 ? 'failure' : 'failures', 'Failures found by the latent search that fall in this scenario'],
    [percent(s.seed_label_share), `seeded from ${className(s.seed_label)}`, 'Share of its failures whose seed image had this true label'],
    [percent(s.predicted_share), `predicted ${className(s.predicted_label)}`, 'Share of its failures the classifier called this'],
    [percent(s.weight), 'of all failures', 'Mixture weight of the scenario'],
  ];
  if (s.neighbour_accuracy >= 0)
    stats.push([percent(s.neighbour_accuracy), 'accuracy on nearest real images', 'Classifier accuracy on the nearest real training images']);
  return el('div', { class: 'stats' }, stats.map(([value, label, title]) =>
    el('span', { class: 'stat', title }, el('b', { text: value }), ` ${label}`)));
}

// What the judges (classifiers other than the one under test) and the latent neighbourhood
// say about the scenario: is it a bug of the classifier, or did the decodes turn into the
// class the classifier names?
function validityLine(s) {
  const v = s.validity;
  if (!v || !v.verdict) return el('div', { class: 'validity unknown', text: 'Not checked by judges: look closely before labelling.' });
  const verdicts = {
    genuine: ['genuine', 'Genuine failure: the judges read these as ' + className(s.seed_label) + ', the classifier does not'],
    'label-change': ['label-change', 'Probably not a bug: the judges read these as ' + className(v.judge_label) + ', as the classifier does'],
    ambiguous: ['ambiguous', 'Ambiguous: the judges disagree or are unsure'],
  };
  const [cls, text] = verdicts[v.verdict] || ['ambiguous', v.verdict];
  const parts = [el('b', { text })];
  if (v.judge_label >= 0)
    parts.push(` · ${v.judges} judge${v.judges === 1 ? '' : 's'} read ${percent(v.judge_agreement)} of its failures as ${className(v.judge_label)}`);
  if (v.knn_label >= 0)
    parts.push(` · nearest real images: ${percent(v.knn_seed_share)} ${className(s.seed_label)}, ${percent(v.knn_predicted_share)} ${className(s.predicted_label)}`);
  if (v.realism >= 0) parts.push(` · realism ${percent(v.realism)}`);
  return el('div', { class: `validity ${cls}`, title: 'The judges are classifiers other than the one under test' }, parts);
}

function judged(img) {
  return img.judge !== undefined ? `judges: ${className(img.judge)}` : null;
}

function renderCard(s, index) {
  const n = page.state.class_names.length;
  const labelButtons = [];
  for (let k = 0; k < n; k++) {
    const key = shortcutFor(k);
    const hints = [];
    if (k === s.seed_label) hints.push('seed');
    if (k === s.predicted_label) hints.push('predicted');
    labelButtons.push(el('button', {
      type: 'button', class: 'label-btn', 'data-label': k, role: 'radio', 'aria-checked': 'false',
      title: key ? `Label as ${className(k)} (key ${key})` : `Label as ${className(k)}`,
      onclick: () => decide(s.id, { label: k }),
    }, key ? el('kbd', { text: key }) : null, el('span', { class: 'label-name', text: className(k) }),
    hints.length ? el('span', { class: 'hint', text: hints.join(' · ') }) : null));
  }
  const rejectButtons = [
    el('button', { type: 'button', class: 'reject-btn', 'data-reject': 'unrealistic', title: 'These images are not realistic (key r)',
      onclick: () => decide(s.id, { reject: 'unrealistic' }) }, el('kbd', { text: 'r' }), ' Reject: unrealistic'),
    el('button', { type: 'button', class: 'reject-btn', 'data-reject': 'ambiguous', title: 'No single class fits these images (key a)',
      onclick: () => decide(s.id, { reject: 'ambiguous' }) }, el('kbd', { text: 'a' }), ' Reject: ambiguous'),
    el('button', { type: 'button', class: 'reject-btn', 'data-reject': 'not-a-bug',
      title: 'The images are what the classifier says they are: it is right, not a bug (key b)',
      onclick: () => decide(s.id, { reject: 'not-a-bug' }) }, el('kbd', { text: 'b' }), ' Classifier is right: not a bug'),
  ];
  const note = el('textarea', {
    class: 'note', rows: 1, maxlength: page.state.limits.note, placeholder: 'Note (optional): saved with your decision',
    'aria-label': `note for scenario ${s.id}`,
  });
  note.addEventListener('change', () => saveNote(s.id));
  const saveState = el('span', { class: 'save-state' });
  const resolution = el('span', { class: 'resolution' });
  const votes = el('div', { class: 'votes' });

  const root = el('article', { class: 'card', id: `scenario-${s.id}`, 'data-id': s.id, tabindex: -1,
    onclick: () => setActive(index, false) },
  el('header', { class: 'card-head' },
    el('div', { class: 'rank', title: 'Rank: 1 is the most important scenario', text: `#${s.id}` }),
    el('div', { class: 'title' },
      el('h2', {}, el('span', { class: 'seed', text: className(s.seed_label) }), el('span', { class: 'arrow', text: ' → ' }),
        el('span', { class: 'pred', text: className(s.predicted_label) })),
      statsLine(s), validityLine(s)),
    resolution),
  el('div', { class: 'card-body' },
    (s.members_shown || []).length ? el('section', { class: 'members' },
      el('h3', {}, 'Its failures ', el('small', { text: "classifier's prediction under each" })),
      el('div', { class: 'grid' }, s.members_shown.map((img) => imageFigure(img, className(img.predicted),
        `seed: ${className(img.label)} · classifier: ${className(img.predicted)}`, judged(img))))) : null,
    el('section', { class: 'samples' },
      el('h3', {}, 'Draws at its own spread ', el('small', { text: "classifier's prediction under each" })),
      el('div', { class: 'grid' }, s.samples.map((img) => imageFigure(img, className(img.predicted),
        `classifier: ${className(img.predicted)}`, judged(img))))),
    s.neighbours.length ? el('section', { class: 'neighbours' },
      el('h3', {}, 'Nearest real training images ', el('small', { text: 'true label' })),
      el('div', { class: 'grid' }, s.neighbours.map((img) => {
        const wrong = img.predicted !== img.label;
        const fig = imageFigure(img, className(img.label), `true: ${className(img.label)} · classifier: ${className(img.predicted)}`,
          wrong ? `→ ${className(img.predicted)}` : null);
        if (wrong) fig.classList.add('misclassified');
        return fig;
      }))) : null),
  el('footer', { class: 'decision' },
    el('div', { class: 'picker', role: 'radiogroup', 'aria-label': 'label' }, labelButtons),
    el('div', { class: 'row' }, rejectButtons, note, saveState),
    votes));
  page.cards.set(s.id, { root, note, saveState, resolution, votes, labelButtons, rejectButtons });
  return root;
}

function describeVote(v) {
  return v.label !== null ? className(v.label) : `rejected (${v.reject})`;
}

function updateCard(s) {
  const card = page.cards.get(s.id);
  if (!card) return;
  const mine = myVote(s);
  for (const button of card.labelButtons) {
    const selected = !!mine && mine.label === Number(button.dataset.label);
    button.classList.toggle('selected', selected);
    button.setAttribute('aria-checked', String(selected));
    const resolved = s.resolution.status === 'labelled' && s.resolution.label === Number(button.dataset.label);
    button.classList.toggle('resolved', resolved);
  }
  for (const button of card.rejectButtons)
    button.classList.toggle('selected', !!mine && mine.reject === button.dataset.reject);
  if (mine && document.activeElement !== card.note && !card.note.dataset.dirty) card.note.value = mine.note || '';
  if (!page.saving.has(s.id)) {
    card.saveState.className = 'save-state';
    card.saveState.textContent = mine ? `saved ✓ ${timeOf(mine.created_at)}` : 'not decided yet';
    if (mine) card.saveState.classList.add('ok');
  }
  const r = s.resolution;
  const status = { unlabelled: 'open', labelled: 'labelled', rejected: 'rejected', tie: 'tie' }[r.status] || r.status;
  let text = 'open';
  if (r.status === 'labelled') text = `${className(r.label)}`;
  else if (r.status === 'rejected') text = `rejected: ${r.reject_reason}`;
  else if (r.status === 'tie') text = 'tie: needs another vote';
  if (r.voters > 0) text += ` · ${r.voters > 1 ? `${Math.round(r.agreement * r.voters)}/${r.voters} agree` : '1 vote'}`;
  if (r.automatic) text += ' · automatic';
  card.resolution.textContent = text;
  card.resolution.className = `resolution ${status}${r.disputed ? ' disputed' : ''}`;
  card.root.classList.toggle('decided', r.status === 'labelled' || r.status === 'rejected');
  card.votes.replaceChildren();
  const others = s.votes.filter((v) => v.annotator !== annotator());
  if (others.length) {
    card.votes.append(el('span', { class: 'votes-title', text: 'Other votes:' }));
    for (const v of others) {
      card.votes.append(el('span', { class: `vote${v.automatic ? ' auto' : ''}`, title: v.note || '' },
        el('b', { text: v.annotator }), ` ${describeVote(v)}`, v.note ? ' ✎' : ''));
    }
  }
}

function updateProgress() {
  const scenarios = page.state.scenarios;
  const decided = scenarios.filter((s) => s.resolution.status === 'labelled' || s.resolution.status === 'rejected').length;
  const mine = scenarios.filter((s) => myVote(s)).length;
  const name = annotator();
  document.getElementById('progress-text').textContent =
    `${decided} of ${scenarios.length} scenarios decided` + (name ? ` · ${name}: ${mine} of ${scenarios.length}` : '');
  document.getElementById('progress-fill').style.width = scenarios.length ? `${(100 * decided) / scenarios.length}%` : '0';
  document.title = `(${decided}/${scenarios.length}) defuse · label failure scenarios`;
}

function render() {
  const main = document.getElementById('cards');
  main.replaceChildren();
  page.cards.clear();
  const s = page.state;
  document.getElementById('workspace').textContent = s.workspace_name;
  document.getElementById('workspace').title = `${s.workspace} (distill run ${s.distill_run_id})`;
  if (!s.scenarios.length) {
    main.append(el('p', { class: 'empty', text: 'The distillation found no failure scenarios: nothing to label.' }));
  }
  s.scenarios.forEach((scenario, i) => main.append(renderCard(scenario, i)));
  s.scenarios.forEach(updateCard);
  updateProgress();
  setActive(Math.min(page.active, Math.max(0, s.scenarios.length - 1)), false);
}

// distill ran again while this page was open: its decisions still go to the scenarios shown,
// and the new ones need the labelling page restarted.
function showStale(state) {
  const note = document.getElementById('stale');
  const newer = state.latest_distill_run_id && state.latest_distill_run_id !== state.distill_run_id;
  note.hidden = !newer;
  if (newer) {
    note.textContent = `distill has produced new scenarios (run ${state.latest_distill_run_id}) since this page ` +
      `started; the cards below are run ${state.distill_run_id}'s. Restart defuse annotate to label the new ones.`;
  }
}

function refreshFrom(state) {
  showStale(state);
  // Keep the cards (and anything being typed); update votes and resolutions.
  const same = page.state && state.distill_run_id === page.state.distill_run_id &&
    state.scenarios.length === page.state.scenarios.length;
  page.state = state;
  if (!same) return render();
  state.scenarios.forEach(updateCard);
  updateProgress();
}

// ---- actions ----

function setActive(index, scroll = true) {
  const list = page.state ? page.state.scenarios : [];
  if (!list.length) return;
  page.active = Math.max(0, Math.min(index, list.length - 1));
  for (const [i, s] of list.entries()) page.cards.get(s.id).root.classList.toggle('active', i === page.active);
  if (scroll) {
    const root = page.cards.get(list[page.active].id).root;
    root.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    root.focus({ preventScroll: true });
  }
}

function requireName() {
  if (annotator()) return true;
  const input = document.getElementById('annotator');
  input.classList.add('missing');
  input.focus();
  toast('Enter your name first: every decision is recorded with it.', 'error');
  return false;
}

async function post(scenarioId, decision) {
  const card = page.cards.get(scenarioId);
  const body = Object.assign({ scenario: scenarioId, annotator: annotator(), note: card.note.value }, decision);
  page.saving.add(scenarioId);
  card.saveState.className = 'save-state busy';
  card.saveState.textContent = 'saving…';
  try {
    const response = await fetch('/api/annotations', {
      method: 'POST',
      credentials: 'same-origin',
      headers: headers({ 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }),
      body: JSON.stringify(body),
    });
    const result = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(result.error || `HTTP ${response.status}`);
    const s = scenarioById(scenarioId);
    s.votes = s.votes.filter((v) => v.annotator !== result.annotation.annotator).concat([result.annotation]);
    s.resolution = result.resolution;
    delete card.note.dataset.dirty;
    page.saving.delete(scenarioId);
    updateCard(s);
    updateProgress();
    return true;
  } catch (error) {
    page.saving.delete(scenarioId);
    card.saveState.className = 'save-state error';
    card.saveState.textContent = `not saved: ${error.message}`;
    toast(`Not saved: ${error.message}`, 'error');
    return false;
  }
}

async function decide(scenarioId, decision) {
  if (!requireName()) return;
  const index = page.state.scenarios.findIndex((s) => s.id === scenarioId);
  setActive(index, false);
  const ok = await post(scenarioId, decision);
  if (ok) {
    const what = decision.label !== undefined ? className(decision.label) : `rejected (${decision.reject})`;
    toast(`Scenario #${scenarioId}: ${what}: saved`);
    // Move on to the next card, as a labelling session is one card after another.
    if (index === page.active && index + 1 < page.state.scenarios.length) setActive(index + 1);
  }
}

async function saveNote(scenarioId) {
  const s = scenarioById(scenarioId);
  const card = page.cards.get(scenarioId);
  const mine = myVote(s);
  if (!mine) {
    card.note.dataset.dirty = '1';
    card.saveState.className = 'save-state';
    card.saveState.textContent = 'choose a label to save the note';
    return;
  }
  if ((mine.note || '') === card.note.value) return;
  if (!requireName()) return;
  const decision = mine.label !== null ? { label: mine.label } : { reject: mine.reject };
  if (await post(scenarioId, decision)) toast(`Scenario #${scenarioId}: note saved`);
}

function onKey(event) {
  const target = event.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement;
  if (event.key === 'Escape' && typing) {
    target.blur();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey || !page.state || !page.state.scenarios.length) return;
  const s = page.state.scenarios[page.active];
  const key = event.key;
  if (/^[0-9]$/.test(key)) {
    const label = key === '0' ? 9 : Number(key) - 1;
    if (label < page.state.class_names.length) decide(s.id, { label });
  } else if (key === 'r' || key === 'R') {
    decide(s.id, { reject: 'unrealistic' });
  } else if (key === 'a' || key === 'A') {
    decide(s.id, { reject: 'ambiguous' });
  } else if (key === 'b' || key === 'B') {
    decide(s.id, { reject: 'not-a-bug' });
  } else if (key === 'ArrowDown' || key === 'ArrowRight' || key === 'j') {
    setActive(page.active + 1);
  } else if (key === 'ArrowUp' || key === 'ArrowLeft' || key === 'k') {
    setActive(page.active - 1);
  } else if (key === 'n') {
    page.cards.get(s.id).note.focus();
  } else {
    return;
  }
  event.preventDefault();
}

async function poll() {
  if (document.hidden) return;
  try {
    refreshFrom(await loadState());
  } catch (error) {
    // The server may have stopped; keep the page as it is.
  }
}

async function main() {
  const input = document.getElementById('annotator');
  // The name this browser remembers, else the one `defuse annotate --annotator` suggests.
  input.value = localStorage.getItem(NAME_KEY) || document.querySelector('meta[name="defuse-annotator"]').content || '';
  input.addEventListener('input', () => {
    input.classList.remove('missing');
    localStorage.setItem(NAME_KEY, annotator());
    if (page.state) {
      page.state.scenarios.forEach(updateCard);
      updateProgress();
    }
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') input.blur();
  });
  document.addEventListener('keydown', onKey);
  try {
    page.state = await loadState();
    showStale(page.state);
    render();
  } catch (error) {
    document.getElementById('cards').replaceChildren(
      el('p', { class: 'empty error', text: `Cannot load the scenarios: ${error.message}` }));
    return;
  }
  if (!annotator()) input.focus();
  setInterval(poll, POLL_MS);
  document.addEventListener('visibilitychange', poll);
}

main();
