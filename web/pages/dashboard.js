// Dashboard: credit, API keys (create / list / revoke), usage per day and model with a chart, the
// recent requests, CSV export; administrators also see every account and can add credit.
import { call } from '../api.js';
import { usageChart } from '../chart.js';
import { copyButton, formatTime, h, usd } from '../dom.js';

const MODELS = ['deepseek-v4-flash', 'deepseek-v4-flash:variant1', 'deepseek-v4-flash:variant2'];

function confirmDialog(message, action) {
  const accept = h('button', { type: 'button', class: 'danger', 'data-testid': 'confirm' }, action);
  const cancel = h('button', { type: 'button', class: 'secondary', 'data-testid': 'cancel' }, 'Cancel');
  const dialog = h('dialog', { class: 'confirm' }, h('p', {}, message), h('div', { class: 'row' }, cancel, accept));
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    const done = (v) => {
      dialog.close();
      dialog.remove();
      resolve(v);
    };
    accept.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', () => done(false));
  });
}

function keysPanel(ctx) {
  const name = h('input', { type: 'text', maxlength: 64, placeholder: 'key name', 'data-testid': 'key-name-input' });
  const limit = h('input', { type: 'text', inputmode: 'decimal', placeholder: 'spend limit USD (optional)', 'data-testid': 'key-credit-input' });
  const rpm = h('input', { type: 'number', min: 0, placeholder: 'RPM (optional)', 'data-testid': 'key-rpm-input' });
  const tpm = h('input', { type: 'number', min: 0, placeholder: 'TPM (optional)', 'data-testid': 'key-tpm-input' });
  const create = h('button', { type: 'submit', 'data-testid': 'create-key' }, 'Create key');
  const reveal = h('div', { class: 'secret', hidden: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const body = h('tbody');
  const table = h('table', { 'data-testid': 'keys-table' },
    h('thead', {}, h('tr', {}, ['Name', 'Key', 'Created', 'Last used', 'Spend', 'Limits', 'Status', ''].map((t) => h('th', {}, t)))), body);
  const form = h('form', { class: 'row wrap' }, name, limit, rpm, tpm, create);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const req = { name: name.value.trim() };
    if (limit.value.trim()) req.credit_limit_usd = limit.value.trim();
    if (rpm.value) req.rpm_limit = Number(rpm.value);
    if (tpm.value) req.tpm_limit = Number(tpm.value);
    try {
      const k = await call('POST', '/console/api/keys', req);
      const secret = h('code', { 'data-testid': 'key-secret' }, k.secret);
      reveal.replaceChildren(h('strong', {}, `New key "${k.name}": copy it now, it is shown only once.`), h('div', { class: 'row' }, secret, copyButton(() => k.secret)));
      reveal.hidden = false;
      name.value = '';
      await ctx.refresh();
    } catch (e) {
      error.textContent = e.message;
    }
  });
  const fill = (keys) => {
    body.replaceChildren(...keys.map((k) => {
      const revoke = h('button', { type: 'button', class: 'danger small', 'data-testid': 'revoke-key', disabled: k.revoked }, 'Revoke');
      revoke.addEventListener('click', async () => {
        if (!(await confirmDialog(`Revoke the key "${k.name}"? Requests with it will get 401.`, 'Revoke'))) return;
        await call('POST', `/console/api/keys/${encodeURIComponent(k.id)}/revoke`, {});
        await ctx.refresh();
      });
      const limits = [k.credit_limit_usd ? `$${k.credit_limit_usd}` : null, k.rpm_limit ? `${k.rpm_limit} rpm` : null,
        k.tpm_limit ? `${k.tpm_limit} tpm` : null].filter(Boolean).join(', ') || 'none';
      return h('tr', { 'data-key-id': k.id }, h('td', { class: 'key-name' }, k.name), h('td', {}, h('code', {}, k.prefix + '…')),
        h('td', {}, formatTime(k.created_at_ms)), h('td', {}, formatTime(k.last_used_at_ms)), h('td', {}, '$' + k.spent_usd),
        h('td', {}, limits), h('td', {}, k.revoked ? 'revoked' : 'active'), h('td', {}, revoke));
    }));
  };
  return { el: h('section', { class: 'card' }, h('h2', {}, 'API keys'), form, error, reveal, table), fill };
}

function usagePanel(ctx) {
  const keySel = h('select', { 'data-testid': 'usage-key-filter' });
  const modelSel = h('select', { 'data-testid': 'usage-model-filter' }, h('option', { value: '' }, 'all models'),
    MODELS.map((m) => h('option', { value: m }, m)));
  const csv = h('a', { class: 'button secondary', 'data-testid': 'usage-csv', download: 'v4flash-usage.csv' }, 'Export CSV');
  const chart = h('div');
  const dayBody = h('tbody');
  const reqBody = h('tbody');
  const filters = () => {
    const p = new URLSearchParams({ days: '30' });
    if (keySel.value) p.set('key', keySel.value);
    if (modelSel.value) p.set('model', modelSel.value);
    return p.toString();
  };
  const load = async () => {
    const u = await call('GET', '/console/api/usage?' + filters());
    csv.href = '/console/api/usage.csv?' + filters();
    chart.replaceChildren(usageChart(u.days, MODELS));
    dayBody.replaceChildren(...u.days.slice().reverse().map((d) => h('tr', { 'data-model': d.model, 'data-day': d.day, 'data-cost-usd': d.cost_usd },
      h('td', {}, d.day), h('td', {}, d.model), h('td', {}, d.requests), h('td', {}, d.input_tokens), h('td', {}, d.cached_input_tokens),
      h('td', {}, d.output_tokens), h('td', {}, d.web_search_calls), h('td', {}, '$' + d.cost_usd))));
    reqBody.replaceChildren(...u.requests.map((r) => h('tr', { 'data-request-id': r.request_id, 'data-cost-usd': r.cost_usd,
      'data-prompt-tokens': r.input_tokens + r.cached_input_tokens, 'data-completion-tokens': r.output_tokens, 'data-source': r.source },
    h('td', {}, formatTime(r.ended_at_ms)), h('td', {}, r.model), h('td', {}, r.key_name), h('td', {}, `${r.input_tokens + r.cached_input_tokens} in (${r.cached_input_tokens} cached) / ${r.output_tokens} out`),
    h('td', {}, '$' + r.cost_usd), h('td', {}, r.source), h('td', {}, r.status))));
    return u;
  };
  keySel.addEventListener('change', load);
  modelSel.addEventListener('change', load);
  const head = (cols) => h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c))));
  const el = h('section', { class: 'card' }, h('h2', {}, 'Usage'),
    h('div', { class: 'row wrap' }, h('label', { class: 'inline' }, 'Key ', keySel), h('label', { class: 'inline' }, 'Model ', modelSel), csv),
    chart,
    h('h3', {}, 'Per day and model'),
    h('div', { class: 'scroll' }, h('table', { 'data-testid': 'usage-table' },
      head(['Day', 'Model', 'Requests', 'Input', 'Cached input', 'Output', 'Web searches', 'Cost']), dayBody)),
    h('h3', {}, 'Recent requests'),
    h('div', { class: 'scroll' }, h('table', { 'data-testid': 'requests-table' },
      head(['Time', 'Model', 'Key', 'Tokens', 'Cost', 'Source', 'Status']), reqBody)));
  const setKeys = (keys) => {
    const current = keySel.value;
    keySel.replaceChildren(h('option', { value: '' }, 'all keys'), keys.map((k) => h('option', { value: k.id }, k.name)));
    keySel.value = keys.some((k) => k.id === current) ? current : '';
  };
  return { el, load, setKeys };
}

function adminPanel() {
  const body = h('tbody');
  const load = async () => {
    const a = await call('GET', '/console/api/admin/accounts');
    body.replaceChildren(...a.data.map((acct) => {
      const amount = h('input', { type: 'text', inputmode: 'decimal', placeholder: 'USD', class: 'small', 'data-testid': 'admin-credit-input' });
      const add = h('button', { type: 'button', class: 'small', 'data-testid': 'admin-add-credit' }, 'Add credit');
      add.addEventListener('click', async () => {
        await call('POST', `/console/api/admin/accounts/${encodeURIComponent(acct.id)}/credit`, { add_usd: amount.value.trim() });
        await load();
      });
      return h('tr', { 'data-account-id': acct.id }, h('td', {}, acct.email), h('td', {}, acct.admin ? 'admin' : 'user'),
        h('td', {}, usd(acct.credit_usd)), h('td', {}, '$' + acct.spent_usd), h('td', {}, acct.requests), h('td', { class: 'row' }, amount, add));
    }));
  };
  const el = h('section', { class: 'card' }, h('h2', {}, 'Accounts (administrator)'),
    h('div', { class: 'scroll' }, h('table', { 'data-testid': 'admin-accounts' },
      h('thead', {}, h('tr', {}, ['Email', 'Role', 'Credit', 'Spent', 'Requests', ''].map((t) => h('th', {}, t)))), body)));
  return { el, load };
}

export async function render(root, state) {
  const balance = h('span', { class: 'balance', 'data-testid': 'credit-balance' });
  const ctx = {};
  const keys = keysPanel(ctx);
  const usage = usagePanel(ctx);
  ctx.refresh = async () => {
    const [k, s] = await Promise.all([call('GET', '/console/api/keys'), call('GET', '/console/api/session')]);
    keys.fill(k.data);
    usage.setKeys(k.data);
    balance.textContent = usd(s.account.credit_usd);
    balance.dataset.creditUsd = s.account.credit_usd ?? 'unlimited';
    await usage.load();
  };
  const parts = [h('section', { class: 'card summary' }, h('div', {}, h('div', { class: 'muted' }, 'Credit balance'), balance),
    h('p', { class: 'muted' }, 'Pay-as-you-go: every request is charged from this balance at the model page\'s rates.')), keys.el, usage.el];
  let admin = null;
  if (state.account.admin) {
    admin = adminPanel();
    parts.push(admin.el);
  }
  root.replaceChildren(h('h1', {}, 'Dashboard'), ...parts);
  await ctx.refresh();
  if (admin) await admin.load();
}
