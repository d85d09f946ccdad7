/**
 * diffusers' Transformer2DModel for continuous (feature-map) input, as used by the cross-attention
 * blocks of UNet2DConditionModel (Rombach et al. 2022): GroupNorm, proj_in, BasicTransformerBlocks
 * (self-attention, cross-attention to the encoder states, GEGLU feed-forward), proj_out and the
 * input added back.
 */
import { add, gelu, mul, permute, reshape, slice, type Tensor } from '../../engine/index.js';
import { Attention } from '../attention.js';
import { Conv2d, type Dropout, GroupNorm, LayerNorm, Linear } from '../layers.js';
import { Module, ModuleList } from '../module.js';
import { BuildContext } from './common.js';

/** GELU-gated linear unit (Shazeer 2020): h · gelu(g) with [h, g] = proj(x). */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(
    readonly dimIn: number,
    readonly dimOut: number,
    ctx: BuildContext = new BuildContext(),
  ) {
    super();
    this.proj = this.child('proj', new Linear(dimIn, 2 * dimOut, ctx.init));
  }
  forward(x: Tensor): Tensor {
    const y = this.proj.forward(x);
    const lead = y.shape.slice(0, -1);
    const zeros = lead.map(() => 0);
    const h = slice(y, [...zeros, 0], [...lead, this.dimOut]);
    const g = slice(y, [...zeros, this.dimOut], [...lead, 2 * this.dimOut]);
    return mul(h, gelu(g));
  }
}

/** diffusers' FeedForward with GEGLU: net.0 (GEGLU), net.1 (dropout), net.2 (linear). */
export class FeedForward extends Module {
  readonly net: ModuleList<GEGLU | Dropout | Linear>;
  constructor(dim: number, opts: { mult?: number; dropout?: number; ctx?: BuildContext } = {}) {
    super();
    const ctx = opts.ctx ?? new BuildContext();
    const inner = Math.trunc(dim * (opts.mult ?? 4));
    this.net = this.child(
      'net',
      new ModuleList<GEGLU | Dropout | Linear>([
        new GEGLU(dim, inner, ctx),
        ctx.dropout(opts.dropout ?? 0),
        new Linear(inner, dim, ctx.init),
      ]),
    );
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.net.items) y = m.forward(y);
    return y;
  }
}

export interface BasicTransformerBlockOptions {
  dim: number;
  heads: number;
  headDim: number;
  /** Width of the encoder states; null: attn2 attends to the block's own input. */
  crossAttentionDim: number | null;
  dropout?: number;
  /** attn1 attends to the encoder states too (diffusers' `only_cross_attention`). */
  onlyCrossAttention?: boolean;
  normEps?: number;
  ctx?: BuildContext;
}

/** x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)) (pre-norm). */
export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  /** Absent when there is no cross-attention dim (diffusers creates no attn2 then). */
  readonly norm2: LayerNorm | null;
  readonly attn2: Attention | null;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  readonly onlyCrossAttention: boolean;
  constructor(o: BasicTransformerBlockOptions) {
    super();
    const ctx = o.ctx ?? new BuildContext();
    const eps = o.normEps ?? 1e-5;
    this.onlyCrossAttention = o.onlyCrossAttention ?? false;
    const attn = (crossDim: number | null) =>
      new Attention(o.dim, {
        heads: o.heads,
        dimHead: o.headDim,
        crossAttentionDim: crossDim,
        dropout: o.dropout ?? 0,
        bias: false,
        generator: ctx.init.generator,
      });
    this.norm1 = this.child('norm1', new LayerNorm(o.dim, eps));
    this.attn1 = this.child('attn1', attn(this.onlyCrossAttention ? o.crossAttentionDim : null));
    const cross = o.crossAttentionDim !== null;
    this.norm2 = cross ? this.child('norm2', new LayerNorm(o.dim, eps)) : null;
    this.attn2 = cross ? this.child('attn2', attn(o.crossAttentionDim)) : null;
    this.norm3 = this.child('norm3', new LayerNorm(o.dim, eps));
    this.ff = this.child('ff', new FeedForward(o.dim, { dropout: o.dropout ?? 0, ctx }));
  }
  /** `contextBias`: the additive mask over the context's tokens (see Attention.forward). */
  forward(x: Tensor, context?: Tensor | null, contextBias?: Tensor | null): Tensor {
    const only = this.onlyCrossAttention;
    let h = add(
      this.attn1.forward(this.norm1.forward(x), only ? context : null, only ? contextBias : null),
      x,
    );
    if (this.attn2 && this.norm2) {
      h = add(this.attn2.forward(this.norm2.forward(h), context, contextBias), h);
    }
    return add(this.ff.forward(this.norm3.forward(h)), h);
  }
}

export interface Transformer2DModelOptions {
  heads: number;
  headDim: number;
  inChannels: number;
  numLayers?: number;
  dropout?: number;
  normNumGroups?: number;
  crossAttentionDim: number | null;
  /** Linear proj_in/proj_out on tokens instead of 1×1 convolutions on the feature map. */
  useLinearProjection?: boolean;
  onlyCrossAttention?: boolean;
  ctx?: BuildContext;
}

/** A stack of transformer blocks over the H·W positions of a feature map, with a residual. */
export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Linear | Conv2d;
  readonly transformerBlocks: ModuleList<BasicTransformerBlock>;
  readonly projOut: Linear | Conv2d;
  readonly innerDim: number;
  readonly useLinearProjection: boolean;
  constructor(o: Transformer2DModelOptions) {
    super();
    const ctx = o.ctx ?? new BuildContext();
    const inner = o.heads * o.headDim;
    this.innerDim = inner;
    this.useLinearProjection = o.useLinearProjection ?? false;
    const proj = (a: number, b: number) =>
      this.useLinearProjection ? new Linear(a, b, ctx.init) : new Conv2d(a, b, 1, ctx.init);
    this.norm = this.child('norm', new GroupNorm(o.normNumGroups ?? 32, o.inChannels, 1e-6));
    this.projIn = this.child('proj_in', proj(o.inChannels, inner));
    this.transformerBlocks = this.child(
      'transformer_blocks',
      new ModuleList(
        Array.from(
          { length: o.numLayers ?? 1 },
          () =>
            new BasicTransformerBlock({
              dim: inner,
              heads: o.heads,
              headDim: o.headDim,
              crossAttentionDim: o.crossAttentionDim,
              dropout: o.dropout ?? 0,
              onlyCrossAttention: o.onlyCrossAttention ?? false,
              ctx,
            }),
        ),
      ),
    );
    this.projOut = this.child('proj_out', proj(inner, o.inChannels));
  }
  forward(x: Tensor, context?: Tensor | null, contextBias?: Tensor | null): Tensor {
    const [b, , hgt, wid] = x.shape as [number, number, number, number];
    const toTokens = (t: Tensor) => reshape(permute(t, [0, 2, 3, 1]), [b, hgt * wid, -1]);
    const toMap = (t: Tensor) => permute(reshape(t, [b, hgt, wid, -1]), [0, 3, 1, 2]);
    let h = this.norm.forward(x);
    h = this.useLinearProjection
      ? this.projIn.forward(toTokens(h))
      : toTokens(this.projIn.forward(h));
    for (const blk of this.transformerBlocks.items) h = blk.forward(h, context, contextBias);
    h = this.useLinearProjection ? toMap(this.projOut.forward(h)) : this.projOut.forward(toMap(h));
    return add(h, x);
  }
}
