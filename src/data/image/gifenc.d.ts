// Types for the `gifenc` package (https://github.com/mattdesl/gifenc), which ships none: the
// part of its API the GIF writer uses.
declare module 'gifenc' {
  /** Colours as [r, g, b] (or [r, g, b, a]) byte triplets. */
  export type GifPalette = number[][];

  export interface WriteFrameOptions {
    /** The global colour table on the first frame, a local one on later frames. */
    palette?: GifPalette;
    /** Milliseconds; stored in hundredths of a second. */
    delay?: number;
    /** Loop count: -1 once (no NETSCAPE2.0 block), 0 forever, n > 0 that many times. */
    repeat?: number;
    /** Bits per palette index (the LZW minimum code size, at least 2). */
    colorDepth?: number;
    /** GIF disposal method (0 unspecified, 1 leave in place, 2 background, 3 previous). */
    dispose?: number;
    transparent?: boolean;
    transparentIndex?: number;
  }

  export interface GifEncoderStream {
    writeFrame(index: Uint8Array, width: number, height: number, opts?: WriteFrameOptions): void;
    finish(): void;
    bytes(): Uint8Array;
  }

  export function GIFEncoder(opts?: { initialCapacity?: number; auto?: boolean }): GifEncoderStream;

  /** A palette of at most `maxColors` for RGBA bytes (pairwise nearest-neighbour clustering). */
  export function quantize(
    rgba: Uint8Array,
    maxColors: number,
    opts?: { format?: 'rgb565' | 'rgb444' | 'rgba4444' },
  ): GifPalette;

  /**
   * The index of the nearest palette colour for each RGBA pixel; colours in the same bin of
   * `format` share one answer.
   */
  export function applyPalette(
    rgba: Uint8Array,
    palette: GifPalette,
    format?: 'rgb565' | 'rgb444' | 'rgba4444',
  ): Uint8Array;

  /** The index of the palette colour nearest to `pixel` (squared Euclidean distance). */
  export function nearestColorIndex(palette: GifPalette, pixel: readonly number[]): number;
}
