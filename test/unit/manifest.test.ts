/**
 * A model folder's manifest.json is data (a folder may be downloaded or copied from anywhere): its file names
 * must stay inside the folder, its `files` must have the shape the builder writes, and only regular files are
 * hashed. Each bad manifest is refused with a message naming the manifest and the field.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { MANIFEST_FILE, MANIFEST_FORMAT, modelFileHashProblems, modelFileProblems, readManifest } from '../../src/model/manifest';
import { installDamage } from '../../src/install/install';
import { scratchDir } from '../support/tinyModels';

const BYTES = Buffer.from('weights');
const record = (bytes: Buffer = BYTES) => ({ bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });

/** A model folder inside a scratch folder, its manifest listing `files`, and a file beside the folder (outside it). */
function modelFolder(files: unknown): { dir: string; manifest: string } {
  const parent = scratchDir();
  const dir = path.join(parent, 'model');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'model.onnx'), BYTES);
  fs.writeFileSync(path.join(parent, 'outside.bin'), BYTES);
  const manifest = path.join(dir, MANIFEST_FILE);
  const fields = { format: MANIFEST_FORMAT, architecture: 'phi', weights: 'int4', ...(files === undefined ? {} : { files }) };
  fs.writeFileSync(manifest, JSON.stringify(fields));
  return { dir, manifest };
}

/** Every reader of the manifest refuses it with `message`; hashing is bounded (a name reaching /dev/zero would never end). */
async function assertRefused(dir: string, message: RegExp): Promise<void> {
  assert.throws(() => readManifest(dir), message);
  assert.throws(() => modelFileProblems(dir), message);
  await assert.rejects(modelFileHashProblems(dir, AbortSignal.timeout(2_000)), message);
  assert.match(installDamage(dir) ?? '', message);
}

test('a good manifest: its files are checked by size and by sha256', async () => {
  const { dir } = modelFolder({ 'model.onnx': record(), 'sub/tokenizer.json': record(Buffer.from('{}')) });
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'tokenizer.json'), '{}');
  assert.deepEqual(modelFileProblems(dir), []);
  assert.deepEqual(await modelFileHashProblems(dir), []);
  fs.writeFileSync(path.join(dir, 'model.onnx'), 'WEIGHTS');
  assert.deepEqual(await modelFileHashProblems(dir), [`model.onnx has sha256 ${record(Buffer.from('WEIGHTS')).sha256} instead of ${record().sha256}`]);
});

test('no "files", or "files" of another shape: an error naming the manifest and the field', async () => {
  for (const [files, shown] of [[undefined, 'missing'], [null, 'null'], [['model.onnx'], '["model.onnx"]'], ['model.onnx', '"model.onnx"']] as const) {
    const { dir, manifest } = modelFolder(files);
    await assertRefused(dir, new RegExp(`${manifest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: its "files" field must be an object of file names and their \\{ "bytes", "sha256" \\}, but it is ${shown.replace(/[[\]]/g, '\\$&')}; rebuild or re-download the model$`));
  }
  for (const entry of [null, 7, { bytes: '7', sha256: record().sha256 }, { bytes: -1, sha256: record().sha256 }, { bytes: 7, sha256: 'abc' }, { bytes: 7 }]) {
    const { dir } = modelFolder({ 'model.onnx': entry });
    await assertRefused(dir, /manifest\.json: its "files" entry for "model\.onnx" must be \{ "bytes": a whole number, "sha256": 64 hex digits \}, but it is /);
  }
  const { dir, manifest } = modelFolder({});
  fs.writeFileSync(manifest, '[]');
  assert.throws(() => readManifest(dir), /manifest\.json: the model manifest is not a JSON object/);
});

test('file names that leave the folder, are absolute, or are not plain paths are refused before any file is read', async () => {
  const zero = { bytes: 0, sha256: record(Buffer.alloc(0)).sha256 };
  const names: [string, string, object][] = [
    ['../outside.bin', 'leaves the folder \\(\\.\\.\\)', record()],
    ['sub/../../outside.bin', 'leaves the folder \\(\\.\\.\\)', record()],
    ['..\\outside.bin', 'leaves the folder \\(\\.\\.\\)', record()],
    ['../../../../../../../../dev/zero', 'leaves the folder \\(\\.\\.\\)', zero],
    ['/dev/zero', 'is an absolute path', zero],
    ['C:\\model.onnx', 'is an absolute path', record()],
    ['C:model.onnx', 'names a drive', record()],
    ['model.onnx\0.txt', 'contains a NUL character', record()],
    ['', 'is empty', record()],
    ['./model.onnx', 'has an empty or "\\." segment', record()],
    ['sub//model.onnx', 'has an empty or "\\." segment', record()],
  ];
  for (const [name, why, entry] of names) {
    const { dir } = modelFolder({ 'model.onnx': record(), [name]: entry });
    await assertRefused(dir, new RegExp(`manifest\\.json: its "files" field names ${JSON.stringify(name).replace(/[.\\]/g, '\\$&')}, which ${why}: every file must be a plain relative path inside the model folder; rebuild or re-download the model`));
  }
});

test('a listed file that is not a regular file (a link to /dev/zero, a folder) is a problem, never hashed', { skip: process.platform === 'win32' && 'needs /dev/zero' }, async () => {
  const zero = { bytes: 0, sha256: record(Buffer.alloc(0)).sha256 };
  const { dir } = modelFolder({ 'model.onnx': record(), 'zero.bin': zero });
  fs.symlinkSync('/dev/zero', path.join(dir, 'zero.bin'));
  assert.deepEqual(modelFileProblems(dir), ['zero.bin is not a regular file']);
  assert.deepEqual(await modelFileHashProblems(dir, AbortSignal.timeout(2_000)), ['zero.bin is not a regular file']);
  assert.equal(installDamage(dir), 'zero.bin is not a regular file');

  const folder = modelFolder({ 'model.onnx': record(), sub: zero });
  fs.mkdirSync(path.join(folder.dir, 'sub'));
  assert.deepEqual(modelFileProblems(folder.dir), ['sub is not a regular file']);
});
