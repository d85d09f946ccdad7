import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { type FeatureMatrix, featureMatrix } from '../../../src/eval/metrics/features.js';
import { featureStats } from '../../../src/eval/metrics/frechet.js';
import {
  decodeStats,
  encodeStats,
  loadOrComputeStats,
  readStatsCache,
  statsCachePath,
  type StatsKey,
  writeStatsCache,
} from '../../../src/eval/metrics/stats-cache.js';
import { gaussianSample } from './test-data.js';

/** The file with its JSON header replaced (same payload). */
function withHeader(file: Buffer, json: string): Buffer {
  const oldLength = file.readUInt32LE(8);
  const payload = file.subarray(Math.ceil((12 + oldLength) / 8) * 8);
  const text = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(Math.ceil((12 + text.length) / 8) * 8);
  file.copy(head, 0, 0, 8);
  head.writeUInt32LE(text.length, 8);
  text.copy(head, 12);
  return Buffer.concat([head, payload]);
}

function sectionsNull(file: Buffer): string {
  const header = JSON.parse(file.subarray(12, 12 + file.readUInt32LE(8)).toString('utf8')) as {
    sections: unknown[];
  };
  header.sections = [null];
  return JSON.stringify(header);
}

void describe('stats cache', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sumi-stats-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const key: StatsKey = { extractorHash: 'sha256:abc123', dataset: 'mnist', split: 'test', n: 50 };
  const feats64 = gaussianSample({ stream: 12, rows: 50, cols: 7, scale: 1, shift: 1 });
  const feats32 = featureMatrix(Float32Array.from(feats64.data), 50, 7);

  void it('round-trips μ, Σ and float32 or float64 features bit for bit', () => {
    for (const features of [feats64, feats32]) {
      const entry = { key, stats: featureStats(features), features };
      const r = decodeStats(encodeStats(entry), key);
      assert.ok(r.ok, `decoded: ${r.ok ? '' : r.reason}`);
      assert.deepEqual(r.entry.stats, entry.stats, 'μ and Σ');
      assert.deepEqual(r.entry.features, features, 'features, same dtype');
    }
  });

  void it('computes once, then reads the file; no temporary files are left', async () => {
    let calls = 0;
    const compute = (): FeatureMatrix => {
      calls++;
      return feats32;
    };
    const first = await loadOrComputeStats(dir, key, compute);
    assert.equal(first.source, 'computed', 'first call computes');
    assert.equal(first.path, statsCachePath(dir, key), 'the keyed path');
    const second = await loadOrComputeStats(dir, key, compute);
    assert.equal(second.source, 'cache', 'second call reads');
    assert.equal(calls, 1, 'compute ran once');
    assert.deepEqual(second.entry.stats, first.entry.stats, 'same statistics');
    assert.deepEqual(await readdir(dir), [first.path.slice(dir.length + 1)], 'only the cache file');
  });

  void it('another key misses; a file holding another key is rejected', async () => {
    const other = { ...key, extractorHash: 'sha256:def456' };
    assert.equal((await readStatsCache(dir, other)).status, 'missing', 'other extractor: missing');
    await copyFile(statsCachePath(dir, key), statsCachePath(dir, other));
    const r = await readStatsCache(dir, other);
    assert.ok(
      r.status === 'invalid' && /key mismatch/.test(r.reason),
      `rejected: ${JSON.stringify(r)}`,
    );
  });

  void it('a corrupted or truncated file is reported and recomputed, never used', async () => {
    const path = statsCachePath(dir, key);
    const good = await readFile(path);
    const damages: [string, Buffer, RegExp][] = [
      [
        'flipped payload byte',
        Buffer.from(good).fill(0x55, good.length - 3, good.length - 2),
        /checksum/,
      ],
      ['truncated', good.subarray(0, good.length - 100), /payload is/],
      ['bad magic', Buffer.concat([Buffer.from('NOTSTATS'), good.subarray(8)]), /bad magic/],
      ['garbled header', Buffer.from(good).fill(0x7b, 12, 20), /unreadable header/],
      ['header of another shape', withHeader(good, 'null'), /not an object/],
      ['sections not objects', withHeader(good, sectionsNull(good)), /malformed header/],
    ];
    for (const [what, bytes, reason] of damages) {
      await writeFile(path, bytes);
      const told: string[] = [];
      let calls = 0;
      const r = await loadOrComputeStats(
        dir,
        key,
        () => {
          calls++;
          return feats32;
        },
        { onInvalid: (m) => told.push(m) },
      );
      assert.equal(r.source, 'computed', `${what}: recomputed`);
      assert.equal(calls, 1, `${what}: compute ran`);
      assert.ok(told.length === 1 && reason.test(told[0]!), `${what}: reported as ${told[0]}`);
      assert.ok(r.rejected !== null && reason.test(r.rejected), `${what}: in the result`);
      assert.equal((await readStatsCache(dir, key)).status, 'hit', `${what}: rewritten`);
    }
  });

  void it('rejects computed features that do not match the key', async () => {
    const k2 = { ...key, split: 'train', n: 60 };
    await assert.rejects(
      loadOrComputeStats(dir, k2, () => feats32),
      /computed 50 feature rows/,
    );
    await assert.rejects(
      writeStatsCache(dir, { key: k2, stats: featureStats(feats32), features: feats32 }),
      /do not match/,
    );
  });
});
