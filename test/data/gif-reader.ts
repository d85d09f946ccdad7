/**
 * A GIF reader for tests, written from the GIF89a specification (appendix F for LZW): it parses
 * the structure encodeGif writes (global colour table, NETSCAPE2.0 loop, graphic control
 * extensions, full-screen frames) and decodes every frame to RGB triplets.
 */
import assert from 'node:assert/strict';

/** GIF LZW decoding, written from the GIF89a specification (appendix F), for the tests. */
function lzwDecode(bytes: Uint8Array, minCodeSize: number, count: number): Uint8Array {
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const out: number[] = [];
  let dict: number[][] = [];
  const reset = (): void => {
    dict = Array.from({ length: clear + 2 }, (_, i) => (i < clear ? [i] : []));
  };
  reset();
  let width = minCodeSize + 1;
  let prev: number[] | null = null;
  let bitPos = 0;
  for (;;) {
    if (bitPos + width > bytes.length * 8) throw new Error('LZW: ran out of data before EOI');
    let code = 0;
    for (let k = 0; k < width; k++, bitPos++) {
      code |= ((bytes[bitPos >> 3]! >> (bitPos & 7)) & 1) << k;
    }
    if (code === clear) {
      reset();
      width = minCodeSize + 1;
      prev = null;
      continue;
    }
    if (code === end) break;
    let entry: number[];
    if (code < dict.length) entry = dict[code]!;
    else if (code === dict.length && prev !== null) entry = [...prev, prev[0]!];
    else throw new Error(`LZW: bad code ${code} (table has ${dict.length})`);
    out.push(...entry);
    if (prev !== null && dict.length < 4096) dict.push([...prev, entry[0]!]);
    prev = entry;
    if (dict.length === 1 << width && width < 12) width++;
  }
  assert.equal(out.length, count, 'LZW: decoded pixel count');
  return Uint8Array.from(out);
}

export interface DecodedGif {
  width: number;
  height: number;
  palette: number[][];
  loop: number | null;
  frames: { delay: number; pixels: number[][] }[];
}

/** Parses the GIF structure the encoder writes and decodes every frame to RGB triplets. */
export function decodeGif(b: Uint8Array): DecodedGif {
  let p = 0;
  const u8 = (): number => {
    if (p >= b.length) throw new Error('GIF: unexpected end of file');
    return b[p++]!;
  };
  const u16 = (): number => u8() | (u8() << 8);
  const ascii = (n: number): string => String.fromCharCode(...Array.from({ length: n }, u8));
  const subBlocks = (): Uint8Array => {
    const parts: number[] = [];
    for (let n = u8(); n !== 0; n = u8()) for (let k = 0; k < n; k++) parts.push(u8());
    return Uint8Array.from(parts);
  };
  assert.equal(ascii(6), 'GIF89a');
  const width = u16();
  const height = u16();
  const flags = u8();
  u8(); // background
  u8(); // aspect
  assert.ok(flags & 0x80, 'global colour table present');
  const palette = Array.from({ length: 2 << (flags & 7) }, () => [u8(), u8(), u8()]);
  const gif: DecodedGif = { width, height, palette, loop: null, frames: [] };
  let delay = 0;
  for (;;) {
    const tag = u8();
    if (tag === 0x3b) break;
    if (tag === 0x21) {
      const label = u8();
      const data = subBlocks();
      if (label === 0xff) {
        // Application extension: an 11-byte identifier block, then the data blocks.
        assert.equal(String.fromCharCode(...data.subarray(0, 11)), 'NETSCAPE2.0');
        assert.equal(data[11], 1);
        gif.loop = data[12]! | (data[13]! << 8);
      } else if (label === 0xf9) {
        assert.equal(data.length, 4);
        delay = data[1]! | (data[2]! << 8);
      }
      continue;
    }
    assert.equal(tag, 0x2c, `unexpected block 0x${tag.toString(16)} at byte ${p - 1}`);
    const [x, y, w, h] = [u16(), u16(), u16(), u16()];
    assert.deepEqual([x, y, w, h], [0, 0, width, height]);
    assert.equal(u8() & 0x80, 0, 'no local colour table');
    const minCodeSize = u8();
    const indices = lzwDecode(subBlocks(), minCodeSize, w * h);
    gif.frames.push({ delay, pixels: [...indices].map((i) => palette[i]!) });
  }
  assert.equal(p, b.length, 'nothing after the trailer');
  return gif;
}
