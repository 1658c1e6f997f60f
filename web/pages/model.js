// The public model page: specs, live rate cards (the billing's own rate-card data), parameters with
// defaults and ranges, code examples with this server's base URL, links into the playground.
import { call } from '../api.js';
import { snippets } from '../code.js';
import { copyButton, h } from '../dom.js';

export function codeTabs(variants) {
  const pre = h('pre', { class: 'code', 'data-testid': 'code-sample' });
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const show = (name) => {
    pre.textContent = variants[name];
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.textContent === name));
  };
  for (const name of Object.keys(variants)) {
    const b = h('button', { type: 'button', role: 'tab', class: 'tab', 'data-lang': name }, name);
    b.addEventListener('click', () => show(name));
    tabs.append(b);
  }
  show(Object.keys(variants)[0]);
  return h('div', { class: 'code-tabs' }, h('div', { class: 'row' }, tabs, copyButton(() => pre.textContent)), pre);
}

function rateCard(c) {
  return h('div', { class: 'card rate', 'data-testid': 'rate-card', 'data-model': c.id, 'data-input-usd-per-m': c.input_usd_per_m,
    'data-cached-input-usd-per-m': c.cached_input_usd_per_m, 'data-output-usd-per-m': c.output_usd_per_m },
  h('h3', {}, h('code', {}, c.id)),
  h('dl', {}, h('dt', {}, 'Input'), h('dd', {}, `$${c.input_usd_per_m} / 1M tokens`),
    h('dt', {}, 'Cached input'), h('dd', {}, `$${c.cached_input_usd_per_m} / 1M tokens`),
    h('dt', {}, 'Output'), h('dd', {}, `$${c.output_usd_per_m} / 1M tokens`),
    h('dt', {}, 'Web search'), h('dd', {}, `$${c.web_search_usd_per_call} / call`)),
  h('a', { class: 'button', href: '/playground?model=' + encodeURIComponent(c.id), 'data-testid': 'try-playground' }, 'Try in the playground'));
}

export async function render(root) {
  const m = await call('GET', '/console/api/model');
  const specs = [['Context window', `${m.context_length.toLocaleString('en')} tokens`],
    ['Max output', `${m.max_output_tokens.toLocaleString('en')} tokens (reasoning included)`],
    ['Region', m.region], ['Base URL', m.base_url + '/v1'], ['Endpoints', m.endpoints.join(', ')]];
  const example = { model: 'deepseek-v4-flash', messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 256 };
  root.replaceChildren(
    h('h1', {}, m.name, ' ', h('code', { class: 'muted' }, m.id)),
    h('section', { class: 'card' }, h('h2', {}, 'Specs'),
      h('table', { class: 'specs', 'data-testid': 'model-specs' }, h('tbody', {}, specs.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))))),
    h('section', {}, h('h2', {}, 'Pricing (live rate cards)'),
      h('p', { class: 'muted' }, 'These are the rate cards the API bills with: the page reads them from the server.'),
      h('div', { class: 'grid' }, m.rate_cards.map(rateCard))),
    h('section', { class: 'card' }, h('h2', {}, 'Parameters'),
      h('div', { class: 'scroll' }, h('table', { 'data-testid': 'parameters-table' },
        h('thead', {}, h('tr', {}, ['Parameter', 'Type', 'Default', 'Range', 'What it does'].map((t) => h('th', {}, t)))),
        h('tbody', {}, m.parameters.map((p) => h('tr', { 'data-param': p.name }, h('td', {}, h('code', {}, p.name)), h('td', {}, p.type),
          h('td', {}, h('code', {}, JSON.stringify(p.default))), h('td', {}, p.range), h('td', {}, p.description))))))),
    h('section', { class: 'card' }, h('h2', {}, 'Quick start'), codeTabs(snippets(m.base_url, example))),
  );
}
