// A small Markdown subset rendered straight to DOM nodes: fenced code, headings, lists, quotes,
// paragraphs; inline code, bold, italics and http(s) links. Text only ever becomes text nodes, so
// HTML in model output shows as text and never runs.
import { h } from './dom.js';

const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([\s\S]+?)\*\*|(?<![^\s(])__([^_\s](?:[\s\S]*?[^_\s])?)__(?!\w)|\*([^*\s](?:[^*]*[^*\s])?)\*|\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g;

export function inline(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1]) out.push(h('code', {}, m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) out.push(h('strong', {}, inline(m[3] ?? m[4])));
    else if (m[5] !== undefined) out.push(h('em', {}, inline(m[5])));
    else out.push(h('a', { href: m[7], rel: 'noopener noreferrer nofollow', target: '_blank' }, m[6]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const BULLET = /^\s*[-*+]\s+/;
const NUMBERED = /^\s*\d+[.)]\s+/;
const FENCE = /^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/;

function list(lines, i, pattern, tag) {
  const items = [];
  while (i < lines.length && pattern.test(lines[i])) items.push(h('li', {}, inline(lines[i++].replace(pattern, ''))));
  return [h(tag, {}, items), i];
}

function blockStart(line) {
  return FENCE.test(line) || /^#{1,6}\s/.test(line) || BULLET.test(line) || NUMBERED.test(line) || /^\s*>/.test(line);
}

export function renderMarkdown(text) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      blocks.push(h('pre', {}, h('code', fence[2] ? { 'data-lang': fence[2] } : {}, body.join('\n'))));
    } else if (!line.trim()) {
      i++;
    } else if (/^#{1,6}\s/.test(line)) {
      const level = Math.min(6, line.match(/^#+/)[0].length + 2);
      blocks.push(h('h' + level, {}, inline(line.replace(/^#+\s+/, ''))));
      i++;
    } else if (BULLET.test(line)) {
      let el;
      [el, i] = list(lines, i, BULLET, 'ul');
      blocks.push(el);
    } else if (NUMBERED.test(line)) {
      let el;
      [el, i] = list(lines, i, NUMBERED, 'ol');
      blocks.push(el);
    } else if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ''));
      blocks.push(h('blockquote', {}, renderMarkdown(quoted.join('\n'))));
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() && !(para.length && blockStart(lines[i]))) para.push(lines[i++]);
      blocks.push(h('p', {}, inline(para.join('\n'))));
    }
  }
  return blocks;
}
