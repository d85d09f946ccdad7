/**
 * Multi-head attention with diffusers' parameter names (to_q, to_k, to_v, to_out.0, group_norm):
 * self-attention when no context is given, cross-attention to `context` otherwise. Accepts tokens
 * [B, L, C] or feature maps [B, C, H, W] (flattened to H·W tokens and back).
 */
import {
  add,
  div,
  groupNorm,
  reshape,
  scaledDotProductAttention,
  type Tensor,
  transpose,
} from '../engine/index.js';
import { Dropout, GroupNorm, type InitOptions, Linear } from './layers.js';
import { Module, ModuleList } from './module.js';

export interface AttentionOptions extends InitOptions {
  /** Channels of the context for cross-attention (default: queryDim, i.e. self-attention). */
  crossAttentionDim?: number | null;
  heads?: number;
  dimHead?: number;
  /** Bias on to_q/to_k/to_v. */
  bias?: boolean;
  /** Bias on to_out.0. */
  outBias?: boolean;
  dropout?: number;
  /** GroupNorm over the input first (attention blocks of UNet2DModel). */
  normNumGroups?: number | null;
  eps?: number;
  /** Adds the input back to the output. */
  residualConnection?: boolean;
  /** The output is divided by this. */
  rescaleOutputFactor?: number;
}

export class Attention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly scale: number;
  readonly groupNorm: GroupNorm | null;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear | Dropout>;
  readonly residualConnection: boolean;
  readonly rescaleOutputFactor: number;

  constructor(
    readonly queryDim: number,
    opts: AttentionOptions = {},
  ) {
    super();
    this.heads = opts.heads ?? 8;
    this.dimHead = opts.dimHead ?? 64;
    this.scale = 1 / Math.sqrt(this.dimHead);
    const inner = this.heads * this.dimHead;
    const ctxDim = opts.crossAttentionDim ?? queryDim;
    const bias = opts.bias ?? false;
    const init = { generator: opts.generator };
    this.groupNorm =
      opts.normNumGroups !== undefined && opts.normNumGroups !== null
        ? this.child('group_norm', new GroupNorm(opts.normNumGroups, queryDim, opts.eps ?? 1e-5))
        : null;
    this.toQ = this.child('to_q', new Linear(queryDim, inner, { ...init, bias }));
    this.toK = this.child('to_k', new Linear(ctxDim, inner, { ...init, bias }));
    this.toV = this.child('to_v', new Linear(ctxDim, inner, { ...init, bias }));
    this.toOut = this.child(
      'to_out',
      new ModuleList<Linear | Dropout>([
        new Linear(inner, queryDim, { ...init, bias: opts.outBias ?? true }),
        new Dropout(opts.dropout ?? 0),
      ]),
    );
    this.residualConnection = opts.residualConnection ?? false;
    this.rescaleOutputFactor = opts.rescaleOutputFactor ?? 1;
  }

  /** [B, L, H·D] -> [B, H, L, D] */
  #splitHeads(x: Tensor): Tensor {
    const [b, l] = x.shape as [number, number];
    return transpose(reshape(x, [b, l, this.heads, -1]), 1, 2);
  }

  /**
   * `contextBias`: added to the attention scores, broadcast to [B, heads, Lq, Lk]; a key position
   * with −10⁴ (diffusers' masking value) is effectively not attended to.
   */
  forward(input: Tensor, context?: Tensor | null, contextBias?: Tensor | null): Tensor {
    const spatial = input.rank === 4;
    const [b, c, h, w] = input.shape as [number, number, number, number];
    let x = spatial ? transpose(reshape(input, [b, c, h * w]), 1, 2) : input;
    if (this.groupNorm) {
      const n = this.groupNorm;
      x = transpose(groupNorm(transpose(x, 1, 2), n.numGroups, n.weight, n.bias, n.eps), 1, 2);
    }
    const ctx = context ?? x;
    const q = this.#splitHeads(this.toQ.forward(x));
    const k = this.#splitHeads(this.toK.forward(ctx));
    const v = this.#splitHeads(this.toV.forward(ctx));
    const o = scaledDotProductAttention(q, k, v, { scale: this.scale, mask: contextBias ?? null });
    const [, , l] = o.shape as [number, number, number];
    let y = reshape(transpose(o, 1, 2), [x.shape[0]!, l, this.heads * this.dimHead]);
    for (const m of this.toOut.items) y = m.forward(y);
    if (spatial) y = reshape(transpose(y, 1, 2), [b, c, h, w]);
    if (this.residualConnection) y = add(y, input);
    return this.rescaleOutputFactor === 1 ? y : div(y, this.rescaleOutputFactor);
  }
}
