// Entry: the server names the page in <body data-page>; each page is its own module.
import { session } from './api.js';
import { h } from './dom.js';

const pages = {
  signin: () => import('./pages/signin.js'),
  signup: () => import('./pages/signin.js'),
  dashboard: () => import('./pages/dashboard.js'),
  model: () => import('./pages/model.js'),
  playground: () => import('./pages/playground.js'),
};

function nav(state) {
  const links = [
    ['/models/deepseek-v4-flash', 'Model'],
    ['/playground', 'Playground'],
    ['/dashboard', 'Dashboard'],
  ];
  const el = document.getElementById('nav');
  el.replaceChildren(...links.map(([href, text]) => h('a', { href, class: location.pathname === href ? 'active' : '' }, text)));
  if (state.signed_in) {
    const out = h('button', { type: 'button', class: 'link', 'data-testid': 'signout' }, 'Sign out');
    out.addEventListener('click', async () => {
      const { call } = await import('./api.js');
      await call('POST', '/console/api/signout', {});
      location.href = '/signin';
    });
    el.append(h('span', { class: 'who' }, state.account.email), out);
  } else {
    el.append(h('a', { href: '/signin' }, 'Sign in'));
  }
}

async function main() {
  const page = document.body.dataset.page;
  const state = await session();
  nav(state);
  const root = document.getElementById('app');
  const mod = await pages[page]();
  await mod.render(root, state, page);
}

main().catch((e) => {
  document.getElementById('app').replaceChildren(h('p', { class: 'error' }, 'The console failed to load: ' + e.message));
});
