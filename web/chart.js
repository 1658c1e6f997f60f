// Cost per day over the last N days as stacked SVG bars, one colour per model id. The figures are
// the ledger's, as the usage endpoint returns them; the chart only scales them.
import { h, s } from './dom.js';

const COLOURS = ['#2f5bea', '#e8833a', '#2a9d8f', '#a05195', '#8a8a8a'];

function lastDays(n) {
  const out = [];
  const now = Date.now();
  for (let i = n - 1; i >= 0; i--) out.push(new Date(now - i * 86400000).toISOString().slice(0, 10));
  return out;
}

export function usageChart(rows, models, days = 30) {
  const dayList = lastDays(days);
  const cost = new Map();  // day -> model -> nano-dollars
  for (const r of rows) {
    if (!cost.has(r.day)) cost.set(r.day, new Map());
    cost.get(r.day).set(r.model, (cost.get(r.day).get(r.model) || 0) + r.cost_nano_usd);
  }
  const totals = dayList.map((d) => [...(cost.get(d) || new Map()).values()].reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const W = 600, H = 180, pad = 24, bw = (W - pad) / days;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H + 20}`, role: 'img', 'aria-label': 'cost per day, last 30 days' });
  svg.append(s('line', { x1: pad, y1: H, x2: W, y2: H, class: 'axis' }));
  svg.append(s('text', { x: 0, y: 10, class: 'tick' }, '$' + (max / 1e9).toPrecision(3)));
  dayList.forEach((day, i) => {
    let y = H;
    models.forEach((m, mi) => {
      const v = (cost.get(day) && cost.get(day).get(m)) || 0;
      if (!v) return;
      const bh = Math.max(1, (v / max) * (H - 16));
      y -= bh;
      const rect = s('rect', { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: bh, fill: COLOURS[mi % COLOURS.length],
        'data-day': day, 'data-model': m });
      rect.append(s('title', {}, `${day} ${m}: $${(v / 1e9).toFixed(9)}`));
      svg.append(rect);
    });
    if (i % 7 === 0 || i === days - 1) svg.append(s('text', { x: pad + i * bw, y: H + 14, class: 'tick' }, day.slice(5)));
  });
  const legend = h('div', { class: 'legend' }, models.map((m, mi) =>
    h('span', {}, h('i', { class: 'swatch', 'data-colour': String(mi % COLOURS.length) }), m)));
  return h('figure', { class: 'chart', 'data-testid': 'usage-chart' }, svg, legend,
    h('figcaption', { class: 'muted' }, `Cost per day, last ${days} days (from the ledger)`));
}
