import { philox4x32 } from './src/engine/rng/philox.js';
const i = 68792, j = Math.floor(i / 4), w = i % 4;
const out = new Uint32Array(4); philox4x32(j, 0, 0, 0, 3, 0, out);
console.log(w, [...out].map(v => v.toString(16)));
const a = out[w & 2]!, b = out[(w & 2) + 1]!;
const u1 = (a + 0.5) / 2 ** 32, u2 = (b + 0.5) / 2 ** 32;
console.log(u1, u2, Math.sqrt(-2 * Math.log(u1)), Math.cos(2 * Math.PI * u2), Math.sin(2 * Math.PI * u2));
