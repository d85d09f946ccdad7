/**
 * A PatchGAN discriminator (pix2pix, Isola et al. 2017, §3.2.2; the NLayerDiscriminator of
 * taming-transformers that VQGAN and the LDM autoencoders train against): a stack of 4×4
 * convolutions, stride 2 for the first `numLayers`, then two of stride 1, LeakyReLU(0.2) between
 * them, giving one real/fake logit per overlapping patch. Normalization is GroupNorm (or none)
 * instead of BatchNorm, so a sample's logits never depend on the rest of its batch.
 *
 *   conv(in → ch, s2) → lrelu
 *   conv(ch·2^(n−1) → ch·2^n, s2, no bias) → norm → lrelu        n = 1 .. numLayers − 1
 *   conv(→ ch·2^numLayers, s1, no bias) → norm → lrelu
 *   conv(→ 1, s1)                                                  (widths capped at 8·ch)
 */
import { maximum, mul, type Tensor } from '../../engine/index.js';
import { Conv2d, GroupNorm, type InitOptions } from '../layers.js';
import { Module, ModuleList } from '../module.js';

export interface PatchDiscriminatorConfig {
  inChannels: number;
  /** Width of the first layer. */
  channels: number;
  /** Stride-2 layers (each halves the size). */
  numLayers: number;
  /** GroupNorm groups of the inner layers; null: no normalization. */
  normNumGroups: number | null;
}

export const PATCH_DISCRIMINATOR_DEFAULTS: PatchDiscriminatorConfig = {
  inChannels: 3,
  channels: 64,
  numLayers: 3,
  normNumGroups: 8,
};

/** The size of the logit map for an input of `size` pixels (0 or less: too small). */
export function patchLogitSize(size: number, numLayers: number): number {
  let s = size;
  for (let i = 0; i < numLayers; i++) s = Math.floor((s + 2 - 4) / 2) + 1;
  return s - 2; // two 4×4 convolutions of stride 1 and padding 1 take one pixel each
}

/** Problems with a config for images of `size` pixels (empty when it is fine). */
export function checkPatchDiscriminator(c: PatchDiscriminatorConfig, size: number): string[] {
  const problems: string[] = [];
  for (const k of ['inChannels', 'channels', 'numLayers'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) problems.push(`${k} must be an integer >= 1`);
  }
  if (problems.length > 0) return problems;
  const g = c.normNumGroups;
  if (g !== null) {
    // The first convolution has no norm: the groups divide the widths after it.
    const normed = widths(c).slice(1);
    if (!Number.isInteger(g) || g < 1 || normed.some((w) => w % g !== 0)) {
      problems.push(`normNumGroups ${g} must divide every normalized width (${normed.join(', ')})`);
    }
  }
  if (patchLogitSize(size, c.numLayers) < 1) {
    problems.push(
      `${c.numLayers} stride-2 layers leave no patch of a ${size}x${size} image; use fewer`,
    );
  }
  return problems;
}

/** Output widths of the convolutions before the last. */
function widths(c: PatchDiscriminatorConfig): number[] {
  return Array.from({ length: c.numLayers + 1 }, (_, n) => c.channels * Math.min(2 ** n, 8));
}

class DiscriminatorLayer extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm | null;
  constructor(
    inCh: number,
    outCh: number,
    stride: number,
    groups: number | null,
    readonly act: boolean,
    init: InitOptions,
  ) {
    super();
    const bias = groups === null || !act;
    this.conv = this.child(
      'conv',
      new Conv2d(inCh, outCh, 4, { ...init, stride, padding: 1, bias }),
    );
    this.norm = groups === null ? null : this.child('norm', new GroupNorm(groups, outCh));
  }
  forward(x: Tensor): Tensor {
    let h = this.conv.forward(x);
    if (this.norm !== null) h = this.norm.forward(h);
    // LeakyReLU(0.2) = max(h, 0.2 h)
    return this.act ? maximum(h, mul(h, 0.2)) : h;
  }
}

export class PatchDiscriminator extends Module {
  readonly config: PatchDiscriminatorConfig;
  readonly layers: ModuleList<DiscriminatorLayer>;
  constructor(config: Partial<PatchDiscriminatorConfig> = {}, init: InitOptions = {}) {
    super();
    const c = { ...PATCH_DISCRIMINATOR_DEFAULTS, ...config };
    this.config = c;
    const w = widths(c);
    const g = c.normNumGroups;
    const layers = [new DiscriminatorLayer(c.inChannels, w[0]!, 2, null, true, init)];
    for (let n = 1; n < c.numLayers; n++) {
      layers.push(new DiscriminatorLayer(w[n - 1]!, w[n]!, 2, g, true, init));
    }
    layers.push(new DiscriminatorLayer(w[c.numLayers - 1]!, w[c.numLayers]!, 1, g, true, init));
    layers.push(new DiscriminatorLayer(w[c.numLayers]!, 1, 1, null, false, init));
    this.layers = this.child('layers', new ModuleList(layers));
  }
  /** Images [B, C, H, W] -> patch logits [B, 1, h, w]. */
  forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers.items) h = l.forward(h);
    return h;
  }
}
