/**
 * Every relative link in the README and docs/ leads somewhere: the file exists and, when the
 * link names a section, a heading of that file has that anchor (GitHub's rule: lower case,
 * punctuation dropped, spaces to hyphens). Pages move (performance.md's notebook moved to
 * performance-history.md); a link left pointing at the old place fails here.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/broker.js';

/** GitHub's anchor for a heading's text. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N} -]/gu, '')
    .replace(/ /g, '-');
}

function anchorsIn(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^#{1,6} (.+)$/.exec(line);
    if (!m) continue;
    const base = anchorOf(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

const pages = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];

test('anchors follow GitHub rules', () => {
  assert.equal(anchorOf('Scale (issue 5, point 3)'), 'scale-issue-5-point-3');
  assert.equal(anchorOf('Goals of issue 5, every run'), 'goals-of-issue-5-every-run');
  assert.equal(anchorOf('Checksums: the native addon'), 'checksums-the-native-addon');
  assert.equal(anchorOf('`stats` and metrics'), 'stats-and-metrics');
});

test('every relative link in the README and docs/ resolves, section included', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const text = fs.readFileSync(path.join(ROOT, page), 'utf8');
    // Links outside code: fenced blocks and inline code hold examples, not links.
    const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
      const [file, anchor] = target.split('#', 2) as [string, string | undefined];
      const resolved = file === '' ? path.join(ROOT, page) : path.join(ROOT, path.dirname(page), file);
      checked++;
      if (!fs.existsSync(resolved)) {
        broken.push(`${page}: ${target} (no such file)`);
        continue;
      }
      if (anchor && resolved.endsWith('.md') && !anchorsIn(fs.readFileSync(resolved, 'utf8')).has(anchor)) {
        broken.push(`${page}: ${target} (no such section)`);
      }
    }
  }
  assert.ok(checked > 30, `only ${checked} links found: the pattern is wrong`);
  assert.deepEqual(broken, []);
});
