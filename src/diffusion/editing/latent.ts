/**
 * The editing pipelines on a latent model (Rombach et al. 2022; diffusers'
 * StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipelineLegacy): the image is encoded
 * by the pipeline's autoencoder into the denoiser's sample space, u = scaling_factor · (z − shift),
 * the pipeline runs on u exactly as it runs on pixels, and its result is decoded,
 * x = D(u / scaling_factor + shift). An AutoencoderKL's z is its posterior mean μ, or a sample
 * z = μ + σ·ε with ε from the caller's draw (diffusers' img2img samples); a VQModel's z is its
 * unquantized latent (its decoder quantizes). A pixel mask becomes the latents' by the f×f block
 * each latent cell encodes: a cell is repainted when any pixel of its block is, so every kept
 * cell encodes kept pixels only (diffusers' legacy pipeline takes one pixel of the block, by
 * nearest resizing, and can keep a cell that encodes repainted pixels).
 */
import { avgPool2d, gt, noGrad, type Tensor, tidy } from '../../engine/index.js';
import { encodeImages, type LatentDecoder } from '../latent/vae.js';
import { EditInputError } from './inputs.js';

/** Options of the pipelines that take a latent model. */
export interface EditLatentOptions {
  /**
   * A latent pipeline's autoencoder (`LoadedPipeline.vae`): the image is encoded and the result
   * decoded (null or absent: the denoiser works on pixels).
   */
  vae?: LatentDecoder | null;
  /**
   * ε [B, c, h, w] of an AutoencoderKL's posterior sample z = μ + σ·ε (absent: z = μ). A
   * VQModel has no posterior and draws nothing.
   */
  posteriorNoise?: () => Tensor;
}

/** Throws unless `image` [B, C, H, W] has the vae's channels and a size it encodes (H, W multiples of f). */
export function checkVaeImage(vae: LatentDecoder, image: Tensor): void {
  const c = vae.vae.config.in_channels;
  const f = vae.spec.downsampleFactor;
  const [, ch, h, w] = image.shape as [number, number, number, number];
  if (image.rank !== 4 || ch !== c || h % f !== 0 || w % f !== 0) {
    throw new EditInputError(
      `the images are [${image.shape.join(', ')}]; the model's ${vae.spec.vaeClass} encodes ` +
        `[B, ${c}, H, W] with H and W multiples of ${f}`,
    );
  }
}

/**
 * The denoiser's sample u = scaling_factor · (z − shift) [B, c, H/f, W/f] of images [B, C, H, W]
 * in [−1, 1] (see the module comment for z).
 */
export function encodeLatents(
  vae: LatentDecoder,
  image: Tensor,
  posteriorNoise?: () => Tensor,
): Tensor {
  checkVaeImage(vae, image);
  return noGrad(() =>
    tidy(() => {
      const { mean, logvar } = encodeImages(vae.vae, image);
      let z = mean;
      if (logvar !== null && posteriorNoise !== undefined) {
        const eps = posteriorNoise();
        if (!eps.sameShape(mean)) {
          throw new Error(
            `encodeLatents: posterior noise of shape [${eps.shape.join(', ')}] for latents of ` +
              `[${mean.shape.join(', ')}]`,
          );
        }
        z = mean.add(logvar.mul(0.5).exp().mul(eps));
      }
      const { scalingFactor, shiftFactor } = vae.spec;
      return (shiftFactor === null ? z : z.sub(shiftFactor)).mul(scalingFactor);
    }),
  );
}

/**
 * The latents' mask [B, 1, H/f, W/f] of a pixel mask [B, 1, H, W] (1: repaint): 1 where any pixel
 * of the cell's f×f block is 1.
 */
export function latentMask(mask: Tensor, factor: number): Tensor {
  const [, c, h, w] = mask.shape as [number, number, number, number];
  if (mask.rank !== 4 || c !== 1 || h % factor !== 0 || w % factor !== 0) {
    throw new EditInputError(
      `the mask is [${mask.shape.join(', ')}]; a latent model takes [B or 1, 1, H, W] with H and ` +
        `W multiples of ${factor}`,
    );
  }
  return tidy(() => gt(avgPool2d(mask, factor), 0));
}

/**
 * `run` on the images or, with a vae, on their encoding, whose result is decoded: the one place
 * where an editing pipeline leaves pixels. `run` gets x_0 in the denoiser's sample space.
 */
export function aroundVae(
  image: Tensor,
  opts: EditLatentOptions,
  run: (x0: Tensor) => Tensor,
): Tensor {
  const vae = opts.vae ?? null;
  if (vae === null) return run(image);
  return noGrad(() => tidy(() => vae.decode(run(encodeLatents(vae, image, opts.posteriorNoise)))));
}
