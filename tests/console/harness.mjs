// Shared pieces of the console's browser tests: a live `v4flash serve --db` on a tiny random-weight
// checkpoint, accounts made with the CLI, Debian's Chromium driven by playwright-core, and checks.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');

export function parseArgs(argv) {
  const out = { binary: null, model: null, shots: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--binary') out.binary = argv[++i];
    else if (argv[i] === '--model') out.model = argv[++i];
    else if (argv[i] === '--screenshots') out.shots = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!out.binary || !out.model) throw new Error('usage: --binary v4flash --model CHECKPOINT_DIR');
  return out;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export function cli(binary, args, input) {
  return execFileSync(binary, args, { input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

// A fresh database with accounts {email: {password, credit, admin}}, and a server on it.
export async function startConsole(opts, accounts, extraArgs = []) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'v4f-console-'));
  const db = path.join(dir, 'v4flash.db');
  for (const [email, a] of Object.entries(accounts)) {
    const args = ['accounts', 'create', '--db', db, '--email', email, '--password-stdin', '--credit', a.credit];
    if (a.admin) args.push('--admin');
    cli(opts.binary, args, a.password + '\n');
  }
  const port = await freePort();
  const child = spawn(opts.binary, ['serve', '--model', opts.model, '--db', db, '--port', String(port), ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}):\n${output}`);
    try {
      if ((await fetch(url + '/health')).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`server did not come up:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url, db, dir, log: () => output,
    usageJson: (args = []) => JSON.parse(cli(opts.binary, ['usage', '--db', db, '--json', ...args])),
    stop: async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exitPromise;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Debian's Chromium (no downloaded browser build), headless, with a fresh profile per launch.
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.V4_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export async function signIn(page, url, email, password) {
  await page.goto(url + '/signin');
  await page.getByTestId('signin-email').fill(email);
  await page.getByTestId('signin-password').fill(password);
  await page.getByTestId('signin-submit').click();
  await page.waitForURL(url + '/dashboard');
  await page.getByTestId('credit-balance').filter({ hasText: /\S/ }).waitFor();
}

export class Checks {
  constructor(name) {
    this.name = name;
    this.failed = 0;
    this.passed = 0;
  }

  async run(title, fn) {
    const t0 = Date.now();
    try {
      await fn();
      this.passed++;
      console.log(`ok   ${title} (${Date.now() - t0} ms)`);
    } catch (e) {
      this.failed++;
      console.log(`FAIL ${title}: ${e.stack || e}`);
    }
  }

  finish() {
    console.log(`${this.name}: ${this.passed} passed, ${this.failed} failed`);
    process.exit(this.failed ? 1 : 0);
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export function eq(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}
