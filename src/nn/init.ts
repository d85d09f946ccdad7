/**
 * Parameter initialization, PyTorch's defaults, drawn from the engine's Philox stream so a seed
 * gives the same initial weights on every backend.
 */
import { add, Generator, mul, rand, randn, type Tensor, tidy } from '../engine/index.js';

let initGenerator = new Generator(0);

/** Reseeds the stream that layers draw their initial weights from when given no generator. */
export function manualSeed(seed: number): void {
  initGenerator = new Generator(seed);
}

export function defaultInitGenerator(): Generator {
  return initGenerator;
}

/** U(−bound, bound). */
export function uniform(
  shape: readonly number[],
  bound: number,
  generator = initGenerator,
): Tensor {
  // The draw and the scaled draw are freed: only the weights stay alive.
  return tidy(() => add(mul(rand(shape, { generator }), 2 * bound), -bound));
}

/** N(0, std²). */
export function normal(shape: readonly number[], std = 1, generator = initGenerator): Tensor {
  return tidy(() => {
    const z = randn(shape, { generator });
    return std === 1 ? z : mul(z, std);
  });
}

/**
 * PyTorch's default for Linear and Conv weights and biases: kaiming_uniform(a=√5) reduces to
 * U(−1/√fanIn, 1/√fanIn), and so does the bias.
 */
export function defaultBound(fanIn: number): number {
  return fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
}
