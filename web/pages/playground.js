// Playground: multi-turn chat with every API parameter, streamed through the API's own
// /v1/chat/completions (signed-in session + CSRF token instead of a key; billed to the account,
// source=playground). Reasoning and answer stream in; the answer is Markdown rendered inert.
import { call, csrf, errorOf } from '../api.js';
import { snippets } from '../code.js';
import { h } from '../dom.js';
import { renderMarkdown } from '../markdown.js';
import { readSse } from '../stream.js';
import { codeTabs } from './model.js';

function field(label, input, hint) {
  return h('label', {}, label, input, hint ? h('small', { class: 'muted' }, hint) : null);
}

function controls(model, params) {
  const def = Object.fromEntries(params.map((p) => [p.name, p.default]));
  const c = {
    model: h('select', { 'data-testid': 'model-select' }, model.rate_cards.map((r) => h('option', { value: r.id }, r.id))),
    system: h('textarea', { rows: 3, placeholder: 'System prompt (optional)', 'data-testid': 'system-input' }),
    thinking: h('input', { type: 'checkbox', checked: def.thinking.type === 'enabled', 'data-testid': 'thinking-toggle' }),
    effort: h('select', { 'data-testid': 'effort-select' }, ['low', 'medium', 'high', 'max'].map((e) => h('option', { value: e, selected: e === def.reasoning_effort }, e))),
    budget: h('input', { type: 'number', min: 1, max: model.max_output_tokens, value: def.thinking_budget, 'data-testid': 'thinking-budget-input' }),
    temperature: h('input', { type: 'number', min: 0, max: 2, step: 0.05, value: def.temperature, 'data-testid': 'temperature-input' }),
    top_p: h('input', { type: 'number', min: 0, max: 1, step: 0.05, value: def.top_p, 'data-testid': 'top-p-input' }),
    max_tokens: h('input', { type: 'number', min: 1, max: model.max_output_tokens, value: def.max_tokens, 'data-testid': 'max-tokens-input' }),
    stop: h('input', { type: 'text', placeholder: 'comma-separated, up to 4', 'data-testid': 'stop-input' }),
    web_search: h('input', { type: 'checkbox', checked: def.web_search_linkup, 'data-testid': 'web-search-toggle' }),
    no_format: h('input', { type: 'checkbox', checked: def.disable_formatting, 'data-testid': 'disable-formatting-toggle' }),
  };
  const wanted = new URLSearchParams(location.search).get('model');
  if (wanted && model.rate_cards.some((r) => r.id === wanted)) c.model.value = wanted;
  c.defaults = def;
  return c;
}

function buildRequest(c, history, prompt) {
  const messages = [];
  if (c.system.value.trim()) messages.push({ role: 'system', content: c.system.value });
  for (const t of history) messages.push({ role: 'user', content: t.prompt }, { role: 'assistant', content: t.answer });
  messages.push({ role: 'user', content: prompt });
  const body = { model: c.model.value, messages, stream: true, stream_options: { include_usage: true } };
  body.thinking = { type: c.thinking.checked ? 'enabled' : 'disabled' };
  if (c.thinking.checked) {
    body.reasoning_effort = c.effort.value;
    body.thinking_budget = Number(c.budget.value);
  }
  body.temperature = Number(c.temperature.value);
  body.top_p = Number(c.top_p.value);
  body.max_tokens = Number(c.max_tokens.value);
  const stop = c.stop.value.split(',').map((x) => x.trim()).filter(Boolean);
  if (stop.length) body.stop = stop;
  if (c.web_search.checked) body.web_search_linkup = true;
  if (c.no_format.checked) body.disable_formatting = true;
  return body;
}

// The ledger's row for a finished (or stopped) request: tokens and cost as billed.
async function ledgerRow(requestId) {
  for (let i = 0; i < 20 && requestId; i++) {
    const u = await call('GET', '/console/api/usage?days=2');
    const row = u.requests.find((r) => r.request_id === requestId);
    if (row) return row;
    await new Promise((r) => setTimeout(r, 250));
  }
  return null;
}

function turnView(prompt) {
  const reasoningText = h('div', { class: 'reasoning-text' });
  const reasoning = h('details', { class: 'reasoning', open: true, 'data-testid': 'reasoning' }, h('summary', {}, 'Reasoning'), reasoningText);
  const answer = h('div', { class: 'answer md', 'data-testid': 'answer' });
  const usage = h('div', { class: 'turn-usage muted', 'data-testid': 'turn-usage' }, 'waiting…');
  const el = h('article', { class: 'turn' }, h('div', { class: 'bubble user' }, prompt), h('div', { class: 'bubble assistant' }, reasoning, answer, usage));
  return { el, reasoning, reasoningText, answer, usage };
}

function showUsage(view, row, stream, stopped) {
  const prompt = row ? row.input_tokens + row.cached_input_tokens : stream?.prompt_tokens;
  const completion = row ? row.output_tokens : stream?.completion_tokens;
  if (prompt === undefined) return;
  view.usage.dataset.promptTokens = prompt;
  view.usage.dataset.completionTokens = completion;
  if (row) view.usage.dataset.costUsd = row.cost_usd;
  view.usage.textContent = `${prompt} prompt tokens${row && row.cached_input_tokens ? ` (${row.cached_input_tokens} cached)` : ''} · ` +
    `${completion} completion tokens${row ? ` (${row.reasoning_tokens} reasoning)` : ''} · ` +
    (row ? `$${row.cost_usd}` : 'cost pending') + (stopped ? ' · stopped' : '');
}

export async function render(root) {
  const model = await call('GET', '/console/api/model');
  const c = controls(model, model.parameters);
  const history = [];
  const log = h('div', { class: 'conversation', 'aria-live': 'polite' });
  const prompt = h('textarea', { rows: 3, placeholder: 'Message DeepSeek V4 Flash… (Ctrl+Enter to send)', 'data-testid': 'prompt-input' });
  const send = h('button', { type: 'submit', 'data-testid': 'send' }, 'Send');
  const stop = h('button', { type: 'button', class: 'danger', disabled: true, 'data-testid': 'stop' }, 'Stop');
  const viewCode = h('button', { type: 'button', class: 'secondary', 'data-testid': 'view-code' }, 'View code');
  const codePanel = h('div', { class: 'card code-panel', hidden: true, 'data-testid': 'code-panel' });
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'playground-error' });
  let lastRequest = null;
  let controller = null;

  viewCode.addEventListener('click', () => {
    codePanel.hidden = !codePanel.hidden;
    const body = lastRequest || buildRequest(c, history, prompt.value || 'Hello!');
    codePanel.replaceChildren(h('p', { class: 'muted' }, 'The exact request the playground sends (with an API key instead of your session):'),
      codeTabs(snippets(model.base_url, body)));
  });
  stop.addEventListener('click', () => controller && controller.abort());

  const run = async () => {
    const text = prompt.value.trim();
    if (!text || controller) return;
    error.textContent = '';
    const body = buildRequest(c, history, text);
    lastRequest = body;
    const view = turnView(text);
    log.append(view.el);
    prompt.value = '';
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    let reasoning = '', answer = '', id = null, streamUsage = null, chunks = 0, stopped = false, pending = false;
    const paint = () => {
      pending = false;
      view.reasoningText.textContent = reasoning;
      view.answer.replaceChildren(...renderMarkdown(answer));
      if (!streamUsage) view.usage.textContent = `${chunks} tokens so far…`;
    };
    try {
      const r = await fetch('/v1/chat/completions', {
        method: 'POST', credentials: 'same-origin', signal: controller.signal,
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf() }, body: JSON.stringify(body),
      });
      if (!r.ok) throw await errorOf(r);
      await readSse(r, (chunk) => {
        if (chunk.error) throw new Error(chunk.error.message);
        id = chunk.id || id;
        const d = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (d && d.reasoning_content) reasoning += d.reasoning_content, chunks++;
        if (d && d.content) answer += d.content, chunks++;
        if (chunk.usage) streamUsage = chunk.usage;
        if (!pending) pending = requestAnimationFrame(paint);
      });
    } catch (e) {
      if (e.name === 'AbortError') stopped = true;
      else if (e.status === 402) error.textContent = 'Out of credits (402): add credit to your account to continue.';
      else if (e.status === 429) error.textContent = `Rate limited (429): retry in ${e.retryAfter || 1} s. ${e.message}`;
      else error.textContent = e.status ? `${e.status}: ${e.message}` : e.message;
    } finally {
      paint();
      controller = null;
      send.disabled = false;
      stop.disabled = true;
    }
    if (!reasoning) view.reasoning.hidden = true;
    view.el.dataset.requestId = id || '';
    history.push({ prompt: text, answer });
    showUsage(view, null, streamUsage, stopped);
    if (id) showUsage(view, await ledgerRow(id), streamUsage, stopped);
  };
  const form = h('form', { class: 'composer' }, prompt, h('div', { class: 'row' }, send, stop, viewCode));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run();
  });
  prompt.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) run();
  });
  const settings = h('aside', { class: 'card settings' },
    field('Model', c.model), field('System prompt', c.system),
    h('label', { class: 'check' }, c.thinking, ' Thinking'),
    field('reasoning_effort', c.effort), field('thinking_budget', c.budget),
    field('temperature', c.temperature), field('top_p', c.top_p), field('max_tokens', c.max_tokens), field('stop', c.stop),
    h('label', { class: 'check' }, c.web_search, ' web_search_linkup'),
    h('label', { class: 'check' }, c.no_format, ' disable_formatting'));
  root.replaceChildren(h('h1', {}, 'Playground'), h('div', { class: 'playground' }, settings,
    h('section', { class: 'chat' }, log, error, form, codePanel)));
}
