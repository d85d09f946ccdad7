/**
 * Per-image noise: the Gaussian noise of a sampling run laid out so that image k of seed s gets
 * the same numbers whatever the number of images and the batch they are generated in, for the
 * stochastic samplers too.
 *
 * Draw d of a run (d = 0: x_T; d = 1, 2, …: each noise draw of the sampler, in order) gives image
 * k the C·H·W normals of Philox stream `seed` starting at block
 *
 *   offset(d, k) = d · 2³² + k · ⌈C·H·W / 4⌉,
 *
 * so image k's numbers depend on (seed, k, d) only, and the images of a batch [first, first + B)
 * are one contiguous draw of B · ⌈C·H·W / 4⌉ blocks. When C·H·W is a multiple of 4, draw 0 is
 * exactly `randn([n, C, H, W], { seed })`.
 */
import {
  type Backend,
  type FloatDType,
  randn,
  reshape,
  slice,
  type Tensor,
} from '../../engine/index.js';

/** Blocks between two draws: the counter's high word is the draw index. */
const DRAW_STRIDE = 2 ** 32;
/** Draws before the offset would pass the last Philox counter (2⁵³). */
const MAX_DRAWS = 2 ** 21;

/** Philox blocks one image takes per draw. */
export function blocksPerImage(imageShape: readonly number[]): number {
  return Math.ceil(imageShape.reduce((a, b) => a * b, 1) / 4);
}

/** The noise of images [first, first + count) of a run with `seed`, one draw after another. */
export class ImageNoise {
  #draws = 0;
  readonly #blocks: number;

  constructor(
    readonly seed: number,
    readonly first: number,
    readonly count: number,
    /** [C, H, W] of one image. */
    readonly imageShape: readonly number[],
    readonly opts: { backend?: Backend; dtype?: FloatDType } = {},
  ) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new Error(`seed must be an integer in [0, 2^53), got ${seed}`);
    }
    if (!Number.isInteger(first) || first < 0 || !Number.isInteger(count) || count < 1) {
      throw new Error(`images [${first}, ${first + count}): not a range of image indices`);
    }
    this.#blocks = blocksPerImage(imageShape);
    const last = (first + count) * this.#blocks;
    if (last > DRAW_STRIDE) {
      throw new Error(
        `image ${first + count - 1} is past the last image a seed holds at this size ` +
          `(${Math.floor(DRAW_STRIDE / this.#blocks)})`,
      );
    }
  }

  /** Draws made so far. */
  get draws(): number {
    return this.#draws;
  }

  /** The next draw: [count, C, H, W] standard normals (its intermediates go to the caller's scope). */
  next(): Tensor {
    const d = this.#draws++;
    if (d >= MAX_DRAWS) throw new Error(`more than ${MAX_DRAWS} noise draws in one run`);
    const size = this.imageShape.reduce((a, b) => a * b, 1);
    const padded = 4 * this.#blocks;
    const flat = randn([this.count, padded], {
      seed: this.seed,
      offset: d * DRAW_STRIDE + this.first * this.#blocks,
      ...this.opts,
    });
    // Each image starts on a block boundary; the words past C·H·W of its last block are unused.
    const images = padded === size ? flat : slice(flat, [0, 0], [this.count, size]);
    return reshape(images, [this.count, ...this.imageShape]);
  }
}
