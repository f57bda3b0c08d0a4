import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readJsonFile, writeFileAtomic } from '../../src/store/definitions-file.js';
import { withTempDir } from './store-test-kit.js';

test('writeFileAtomic replaces the content and leaves no temp file', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'definitions.json');
    await writeFileAtomic(path, JSON.stringify({ version: 1 }));
    assert.deepEqual(await readJsonFile(path), { version: 1 });
    await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify({ version: 2 })));
    assert.deepEqual(await readJsonFile<{ version: number }>(path), { version: 2 });
    assert.deepEqual(await readdir(dir), ['definitions.json']);
  });
});

test('readers racing many atomic writes only ever see a whole old or a whole new file', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'definitions.json');
    const contentFor = (version: number): string => JSON.stringify({ version, filler: 'x'.repeat(20_000 + version) });
    await writeFileAtomic(path, contentFor(0));
    let writing = true;
    const writer = (async () => {
      for (let version = 1; version <= 30; version++) await writeFileAtomic(path, contentFor(version));
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const text = await readFile(path, 'utf8');
      const parsed = JSON.parse(text) as { version: number };
      assert.equal(text, contentFor(parsed.version));
      reads += 1;
    }
    await writer;
    assert.ok(reads > 0);
    assert.deepEqual(await readJsonFile(path), JSON.parse(contentFor(30)));
  });
});

test('a failed write leaves the old content and no temp file', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, 'definitions.json');
    await writeFileAtomic(path, '{"old":true}');
    await assert.rejects(writeFileAtomic(join(dir, 'missing-dir', 'x.json'), 'data'), { code: 'ENOENT' });
    // Renaming over a directory fails after the temp file was written: it must be cleaned up.
    await mkdir(join(dir, 'occupied'));
    await assert.rejects(writeFileAtomic(join(dir, 'occupied'), '{"new":true}'));
    assert.deepEqual((await readdir(dir)).sort(), ['definitions.json', 'occupied']);
    assert.equal(await readFile(path, 'utf8'), '{"old":true}');
  });
});

test('readJsonFile: undefined when missing, an error naming the file when malformed', async () => {
  await withTempDir(async (dir) => {
    assert.equal(await readJsonFile(join(dir, 'absent.json')), undefined);
    const path = join(dir, 'broken.json');
    await writeFile(path, '{"queues": [');
    await assert.rejects(readJsonFile(path), (error: unknown) => error instanceof Error && error.message.includes(path) && /not valid JSON/.test(error.message));
  });
});
