/**
 * Reverse-mode autograd. An op whose inputs require gradients records a node on its output: the
 * inputs and a vector-Jacobian product written with other ops, so backward runs on any backend.
 * `backward()` orders the graph iteratively (no recursion: a U-Net graph is deep) in a
 * deterministic order and accumulates gradients with `add`, so a tensor used twice is right.
 */
import type { Tensor } from './tensor.js';

export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Gradients for each input given the output gradient; null where `needs[i]` is false. */
  readonly vjp: (g: Tensor, needs: readonly boolean[]) => readonly (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording switched on or off, restoring the previous state after. */
function withGradEnabled<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn without recording gradients (sampling, EMA, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradEnabled(false, fn);
}

/**
 * Runs fn with gradients recorded, even inside noGrad: the inverse of noGrad, for a gradient
 * taken in the middle of sampling (classifier guidance differentiates a classifier there).
 */
export function enableGrad<T>(fn: () => T): T {
  return withGradEnabled(true, fn);
}

/** Reverse topological order of the nodes reachable from root (root first). */
function reverseTopo(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative post-order DFS: each frame holds a tensor and the index of its next input.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const [t, i] = frame;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      frame[1] = i + 1;
      const next = inputs[i]!;
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

function releasedNode(name: string): GradNode {
  return {
    name,
    inputs: [],
    vjp: () => {
      throw new Error(
        `backward(): the graph through ${name} was already freed by an earlier backward(); ` +
          'pass { retainGraph: true } to the first call to go through it twice',
      );
    },
  };
}

export interface BackwardOptions {
  /** Keep the graph so backward can run again through it. */
  retainGraph?: boolean;
}

export function runBackward(root: Tensor, grad: Tensor, opts: BackwardOptions = {}): void {
  const order = reverseTopo(root);
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  for (const t of order) {
    const g = grads.get(t);
    if (g === undefined) continue;
    grads.delete(t);
    const node = t.node;
    if (node === null) {
      // dispose() drops the node, so a disposed intermediate would pass for a leaf.
      if (t.isDisposed) {
        throw new Error(
          `backward(): tensor #${t.id} [${t.shape.join(', ')}] was disposed before backward() ` +
            'reached it; run forward and backward inside one tidy',
        );
      }
      t.accumulateGrad(g);
      continue;
    }
    const needs = node.inputs.map((x) => x.requiresGrad);
    const raw = node.vjp(g, needs);
    const seen = new Set<Tensor>([g]);
    node.inputs.forEach((x, i) => {
      let gi = raw[i] ?? null;
      if (!needs[i] || gi === null) return;
      if (!gi.sameShape(x)) {
        throw new Error(
          `autograd: ${node.name} gave a gradient of shape [${gi.shape.join(', ')}] ` +
            `for an input of shape [${x.shape.join(', ')}]`,
        );
      }
      // A vjp may pass g through or return one tensor twice: alias so each owner can dispose.
      if (seen.has(gi)) gi = gi.alias();
      seen.add(gi);
      const prev = grads.get(x);
      if (prev === undefined) {
        grads.set(x, gi);
      } else {
        grads.set(x, prev.add(gi));
        prev.dispose();
        gi.dispose();
      }
    });
    g.dispose();
    // Release the inputs (freeing the graph) but keep t a non-leaf: a second backward through
    // it must fail loudly instead of treating t as a leaf and leaving the real leaves untouched.
    if (!opts.retainGraph) t.node = releasedNode(node.name);
  }
}
