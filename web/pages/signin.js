// Sign in (and sign up, when the server allows it) with email + password.
import { call } from '../api.js';
import { h } from '../dom.js';

function nextPage() {
  const next = new URLSearchParams(location.search).get('next');
  // Only our own pages: never an open redirect.
  return next === '/playground' || next === '/dashboard' ? next : '/dashboard';
}

export async function render(root, state, page) {
  if (state.signed_in) {
    location.replace(nextPage());
    return;
  }
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, 'data-testid': 'signin-email' });
  const password = h('input', {
    type: 'password', name: 'password', autocomplete: page === 'signup' ? 'new-password' : 'current-password',
    required: true, minlength: 8, 'data-testid': 'signin-password',
  });
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'signin-error' });
  const signin = h('button', { type: 'submit', 'data-testid': 'signin-submit' }, 'Sign in');
  const signup = h('button', { type: 'button', class: 'secondary', 'data-testid': 'signup-submit', disabled: !state.signup_open },
    'Create account');
  const submit = async (path) => {
    error.textContent = '';
    try {
      await call('POST', path, { email: email.value, password: password.value });
      location.assign(nextPage());
    } catch (e) {
      error.textContent = e.status === 429 ? `${e.message} (retry after ${e.retryAfter} s)` : e.message;
    }
  };
  const form = h('form', { class: 'card narrow' },
    h('h1', {}, page === 'signup' ? 'Create your account' : 'Sign in'),
    h('label', {}, 'Email', email),
    h('label', {}, 'Password', password),
    h('div', { class: 'row' }, signin, signup),
    state.signup_open ? null : h('p', { class: 'muted' }, 'Sign-up is closed on this server: ask its operator for an account.'),
    error);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit('/console/api/signin');
  });
  signup.addEventListener('click', () => {
    if (form.reportValidity()) submit('/console/api/signup');
  });
  root.replaceChildren(form);
}
