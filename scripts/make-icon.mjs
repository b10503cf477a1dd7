// Draws media/icon.png (128×128): a dark rounded tile with a "φ" made of a ring and a bar, in the
// extension's accent colour. Generated, so no binary asset is copied from anywhere.
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const size = 128;
const pixels = Buffer.alloc(size * (size * 4 + 1));
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (bytes) => {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
};

for (let y = 0; y < size; y++) {
  pixels[y * (size * 4 + 1)] = 0;
  for (let x = 0; x < size; x++) {
    const i = y * (size * 4 + 1) + 1 + x * 4;
    const cx = x - 63.5;
    const cy = y - 63.5;
    const corner = Math.max(Math.abs(cx) - 44, 0) ** 2 + Math.max(Math.abs(cy) - 44, 0) ** 2;
    const inside = corner <= 20 * 20;
    const ring = Math.abs(Math.hypot(cx / 1.15, cy) - 26) < 6;
    const bar = Math.abs(cx) < 5.5 && Math.abs(cy) < 46;
    const [r, g, b] = ring || bar ? [86, 214, 160] : [30, 36, 48];
    pixels[i] = r;
    pixels[i + 1] = g;
    pixels[i + 2] = b;
    pixels[i + 3] = inside ? 255 : 0;
  }
}
const header = Buffer.alloc(13);
header.writeUInt32BE(size, 0);
header.writeUInt32BE(size, 4);
header[8] = 8;
header[9] = 6;
writeFileSync(new URL('../media/icon.png', import.meta.url), Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk('IHDR', header),
  chunk('IDAT', deflateSync(pixels)),
  chunk('IEND', Buffer.alloc(0)),
]));
