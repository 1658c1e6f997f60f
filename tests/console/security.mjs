// Console security in a real browser and over raw HTTP: cookie flags, session fixation, XSS through
// key names and model output (rendered inert), brute-force sign-in limited, strict CSP and headers.
import { Checks, assert, eq, launchBrowser, parseArgs, signIn, startConsole } from './harness.mjs';

const opts = parseArgs(process.argv.slice(2));
const ALICE = { password: 'alice-password-1', credit: '5' };
const server = await startConsole(opts, { 'alice@example.com': ALICE, 'eve@example.com': { password: 'eve-password-1', credit: '0' } });
const browser = await launchBrowser();
const checks = new Checks('console security');
const url = server.url;
const json = { 'content-type': 'application/json', 'x-requested-with': 'v4flash-console' };

async function apiSignIn(email, password, extra = {}) {
  return fetch(url + '/console/api/signin', { method: 'POST', headers: { ...json, ...extra }, body: JSON.stringify({ email, password }) });
}

await checks.run('the session cookie is HttpOnly, SameSite=Strict, Path=/ (Secure behind TLS), unreadable by scripts', async () => {
  const r = await apiSignIn('alice@example.com', ALICE.password);
  eq(r.status, 200, 'sign-in');
  const c = r.headers.get('set-cookie');
  assert(/^v4f_session=[0-9a-f]{64};/.test(c), c);
  for (const flag of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert(c.includes(flag), `${flag} missing: ${c}`);
  assert(!c.includes('Secure'), 'Secure over plain HTTP would drop the cookie');
  const tls = await apiSignIn('alice@example.com', ALICE.password, { 'x-forwarded-proto': 'https' });
  assert(tls.headers.get('set-cookie').includes('; Secure'), 'Secure over TLS');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, url, 'alice@example.com', ALICE.password);
  eq(await page.evaluate(() => document.cookie), '', 'document.cookie');
  const [cookie] = await ctx.cookies();
  eq(cookie.httpOnly, true, 'httpOnly');
  eq(cookie.sameSite, 'Strict', 'sameSite');
  await ctx.close();
});

await checks.run('session fixation: a planted cookie is never adopted; sign-in replaces the presented session', async () => {
  const ctx = await browser.newContext();
  const planted = 'ab'.repeat(32);
  await ctx.addCookies([{ name: 'v4f_session', value: planted, url }]);
  const page = await ctx.newPage();
  await signIn(page, url, 'alice@example.com', ALICE.password);
  const [cookie] = await ctx.cookies();
  assert(cookie.value !== planted && /^[0-9a-f]{64}$/.test(cookie.value), 'the planted value survived sign-in');
  const asPlanted = await (await fetch(url + '/console/api/session', { headers: { cookie: `v4f_session=${planted}` } })).json();
  eq(asPlanted.signed_in, false, 'the planted token is not a session');
  // Signing in again with a valid session: a new token, and the old one ends.
  const old = cookie.value;
  const again = await apiSignIn('alice@example.com', ALICE.password, { cookie: `v4f_session=${old}` });
  const fresh = again.headers.get('set-cookie').match(/v4f_session=([0-9a-f]+)/)[1];
  assert(fresh !== old, 'same token after a second sign-in');
  const oldState = await (await fetch(url + '/console/api/session', { headers: { cookie: `v4f_session=${old}` } })).json();
  eq(oldState.signed_in, false, 'the previous session still works');
  // Sign-out ends the session on the server, not only in the browser.
  const s = await (await fetch(url + '/console/api/session', { headers: { cookie: `v4f_session=${fresh}` } })).json();
  const out = await fetch(url + '/console/api/signout', { method: 'POST',
    headers: { ...json, cookie: `v4f_session=${fresh}`, 'x-csrf-token': s.csrf_token }, body: '{}' });
  eq(out.status, 200, 'sign-out');
  eq((await (await fetch(url + '/console/api/session', { headers: { cookie: `v4f_session=${fresh}` } })).json()).signed_in, false, 'after sign-out');
  await ctx.close();
});

await checks.run('XSS through key names is rendered inert', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, url, 'alice@example.com', ALICE.password);
  const names = ['<img src=x onerror="window.__xss=1">', '<script>window.__xss=2</script>', '"><svg onload=window.__xss=3>'];
  for (const n of names) {
    await page.getByTestId('key-name-input').fill(n);
    await page.getByTestId('create-key').click();
    await page.getByTestId('key-secret').filter({ hasText: 'sk-v4f-' }).waitFor();
    await page.getByTestId('keys-table').locator('td.key-name', { hasText: n }).waitFor();
  }
  await page.reload();
  await page.getByTestId('keys-table').locator('td.key-name').nth(2).waitFor();
  const cells = await page.getByTestId('keys-table').locator('td.key-name').allTextContents();
  for (const n of names) assert(cells.includes(n), `name not shown as text: ${n}`);
  eq(await page.evaluate(() => window.__xss), undefined, 'script ran');
  eq(await page.getByTestId('keys-table').locator('img, script, svg').count(), 0, 'markup in the table');
  await ctx.close();
});

await checks.run('XSS through model output (streamed into the playground) is rendered inert', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, url, 'alice@example.com', ALICE.password);
  // What a model could write: raw HTML, a script, an event handler and a javascript: link, in Markdown.
  const evil = 'Hi <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script>\n\n' +
    '[click](javascript:window.__xss=3) **bold** `<b>code</b>`\n\n```html\n<script>window.__xss=4</script>\n```';
  const chunk = (delta, extra = {}) => `data: ${JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1,
    model: 'deepseek-v4-flash', choices: [{ index: 0, delta, finish_reason: null }], ...extra })}\n\n`;
  await page.route('**/v1/chat/completions', (route) => route.fulfill({ status: 200, contentType: 'text/event-stream',
    body: chunk({ reasoning_content: '<img src=y onerror="window.__xss=5">' }) + chunk({ content: evil }) +
      chunk({}, { choices: [], usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 } }) + 'data: [DONE]\n\n' }));
  await page.goto(url + '/playground');
  await page.getByTestId('prompt-input').fill('hello');
  await page.getByTestId('send').click();
  const answer = page.getByTestId('answer').last();
  await answer.filter({ hasText: 'bold' }).waitFor();
  await page.waitForTimeout(300);
  eq(await page.evaluate(() => window.__xss), undefined, 'script ran');
  eq(await answer.locator('img, script, iframe').count(), 0, 'live markup in the answer');
  eq(await page.getByTestId('reasoning').last().locator('img').count(), 0, 'live markup in the reasoning');
  eq(await answer.locator('a[href^="javascript"]').count(), 0, 'javascript: link');
  assert((await answer.textContent()).includes('<img src=x onerror="window.__xss=1">'), 'HTML shown as text');
  eq(await answer.locator('strong').textContent(), 'bold', 'Markdown still renders');
  eq(await answer.locator('pre code').textContent(), '<script>window.__xss=4</script>', 'code block as text');
  await ctx.close();
});

await checks.run('brute-force sign-in is limited (429 + Retry-After, even for the right password)', async () => {
  for (let i = 0; i < 5; i++) eq((await apiSignIn('eve@example.com', 'wrong-' + i)).status, 401, `attempt ${i + 1}`);
  const blocked = await apiSignIn('eve@example.com', 'eve-password-1');
  eq(blocked.status, 429, 'sixth attempt');
  assert(Number(blocked.headers.get('retry-after')) >= 1, 'Retry-After');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(url + '/signin');
  await page.getByTestId('signin-email').fill('eve@example.com');
  await page.getByTestId('signin-password').fill('eve-password-1');
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('signin-error').filter({ hasText: 'retry after' }).waitFor();
  await ctx.close();
});

await checks.run('pages and assets carry a strict CSP, nosniff and the right types and caching', async () => {
  const r = await fetch(url + '/models/deepseek-v4-flash');
  const csp = r.headers.get('content-security-policy');
  for (const d of ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) assert(csp.includes(d), csp);
  assert(!csp.includes('unsafe'), csp);
  eq(r.headers.get('x-content-type-options'), 'nosniff', 'nosniff');
  eq(r.headers.get('content-type'), 'text/html; charset=utf-8', 'html type');
  const html = await r.text();
  const js = html.match(/src="(\/assets\/[0-9a-f]+\/app\.js)"/)[1];
  const a = await fetch(url + js);
  eq(a.headers.get('content-type'), 'text/javascript; charset=utf-8', 'js type');
  assert(a.headers.get('cache-control').includes('immutable'), 'assets are immutable');
  eq((await fetch(url + js.replace(/[0-9a-f]{16}/, '0000000000000000'))).status, 404, 'stale build path');
  const css = await fetch(url + js.replace('app.js', 'style.css'));
  eq(css.headers.get('content-type'), 'text/css; charset=utf-8', 'css type');
  eq((await fetch(url + '/console/api/keys')).status, 401, 'keys without a session');
  const signup = await fetch(url + '/console/api/signup', { method: 'POST', headers: json, body: '{"email":"x@y.z","password":"long-enough"}' });
  eq(signup.status, 403, 'sign-up is closed by default');
});

await browser.close();
await server.stop();
checks.finish();
