/**
 * The losses of autoencoder training (the first stage of latent diffusion, Rombach et al. 2022,
 * §3 and Appendix G; VQ-VAE, van den Oord et al. 2017, eq. 3; VQGAN, Esser et al. 2021, eq. 4),
 * as pure functions of tensors:
 *
 *   reconstruction  mean over every element of  w₁ |x̂ − x| + w₂ (x̂ − x)²
 *   KL              (1/B) Σ_b Σ_{c,h,w} ½ (μ² + σ² − 1 − log σ²)        (summed over the latent,
 *                   averaged over the batch, as the LDM's `kl_loss = sum(kl) / B`)
 *   VQ              mean((sg[z_e] − e)²) + β mean((z_e − sg[e])²)     (codebook + commitment)
 *   hinge (D)       ½ (mean(relu(1 − D(x))) + mean(relu(1 + D(x̂))))
 *   hinge (G)       −mean(D(x̂))
 *
 * and the straight-through estimator z_e + sg[e − z_e]: the value of e, the gradient of z_e.
 */
import { abs, add, maximum, mean, mul, square, sub, type Tensor } from '../engine/index.js';
import type { DiagonalGaussianDistribution } from '../nn/models/index.js';

export interface ReconstructionWeights {
  /** Weight of the mean absolute error. */
  l1: number;
  /** Weight of the mean squared error. */
  mse: number;
}

/** mean(l1 · |x̂ − x| + mse · (x̂ − x)²) over every element. */
export function reconstructionLoss(
  reconstruction: Tensor,
  x: Tensor,
  weights: ReconstructionWeights,
): Tensor {
  const d = sub(reconstruction, x);
  if (weights.mse === 0) return mul(mean(abs(d)), weights.l1);
  if (weights.l1 === 0) return mul(mean(square(d)), weights.mse);
  return add(mul(mean(abs(d)), weights.l1), mul(mean(square(d)), weights.mse));
}

/**
 * KL(q(z|x) ‖ N(0, I)) of a diagonal Gaussian posterior: summed over the latent dimensions
 * (`DiagonalGaussianDistribution.kl`), averaged over the batch.
 */
export function klLoss(posterior: DiagonalGaussianDistribution): Tensor {
  return mean(posterior.kl());
}

/**
 * The VQ-VAE codebook and commitment terms of encoder outputs z_e and their nearest codebook
 * vectors e (same shape; e differentiable in the codebook): mean((sg[z_e] − e)²) moves the
 * codebook, β · mean((z_e − sg[e])²) commits the encoder. With an EMA codebook only the second
 * term is used (`codebook: false`).
 */
export function vqLoss(ze: Tensor, e: Tensor, beta: number, codebook = true): Tensor {
  const commitment = mul(mean(square(sub(ze, e.detach()))), beta);
  if (!codebook) return commitment;
  return add(mean(square(sub(ze.detach(), e))), commitment);
}

/** z_e + sg[e − z_e]: e in the forward pass, the identity to z_e in the backward pass. */
export function straightThrough(ze: Tensor, e: Tensor): Tensor {
  return add(ze, sub(e, ze).detach());
}

/** The hinge loss of the discriminator: ½ (mean(relu(1 − real)) + mean(relu(1 + fake))). */
export function hingeDiscriminatorLoss(realLogits: Tensor, fakeLogits: Tensor): Tensor {
  const real = mean(maximum(sub(1, realLogits), 0));
  const fake = mean(maximum(add(fakeLogits, 1), 0));
  return mul(add(real, fake), 0.5);
}

/** The generator's adversarial loss against a hinge discriminator: −mean(D(x̂)). */
export function hingeGeneratorLoss(fakeLogits: Tensor): Tensor {
  return mul(mean(fakeLogits), -1);
}
