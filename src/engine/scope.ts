/**
 * Memory scopes. Every tensor made while a scope is open is tracked by the innermost scope; when
 * `tidy(fn)` returns, it disposes every tracked tensor except those in fn's result (found in the
 * returned value: a tensor, or arrays and plain objects of tensors) and those passed to `keep`.
 *
 * Rules:
 * - Tensors made outside any scope (model parameters, optimizer state) are never tracked.
 * - Run forward, backward and the optimizer step of a training step inside one `tidy`: the
 *   autograd graph refers to intermediates of the forward pass.
 * - Gradients stored in `.grad` are kept automatically; so is a tensor written by `assign`.
 * - What a nested tidy returns moves to the enclosing scope.
 */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];

/** Called by every tensor constructor. */
export function track(t: Disposable): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes t from every open scope so that no tidy disposes it. Returns t. */
export function keep<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if ('dispose' in value && 'isDisposed' in value) {
    out.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

/** Runs fn and disposes the tensors it made, except the ones it returns. */
export function tidy<T>(fn: () => T): T {
  return tidyIf(fn, () => true);
}

/**
 * Runs fn in a scope of its own. When `free(result)` holds, disposes what fn made except its
 * result, as `tidy` does; otherwise hands everything fn made to the enclosing scope, as though
 * no scope had been opened. Composite ops use it to free the intermediates that no autograd graph
 * refers to. An exception disposes everything fn made.
 */
export function tidyIf<T>(fn: () => T, free: (result: T) => boolean): T {
  const { result, scope } = inScope(fn, 'tidy');
  const parent = stack[stack.length - 1];
  if (!free(result)) {
    if (parent !== undefined) for (const t of scope) parent.add(t);
    return result;
  }
  const kept = new Set<Disposable>();
  collect(result, kept);
  for (const t of scope) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Runs fn in a new innermost scope; an exception or a promise disposes what fn made. */
function inScope<T>(fn: () => T, caller: string): { result: T; scope: Set<Disposable> } {
  const scope = new Set<Disposable>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of scope) t.dispose();
    throw new Error(
      `${caller}(fn): fn must be synchronous; await outside and ${caller} the sync parts`,
    );
  }
  return { result, scope };
}

/**
 * Runs fn in a scope of its own and hands the caller every tensor fn made that is still alive,
 * tracked by no enclosing scope: state that outlives any `tidy` (held across an `await`), which
 * the caller disposes when done. An exception disposes everything fn made.
 */
export function ownScope<T>(fn: () => T): { result: T; made: Disposable[] } {
  const { result, scope } = inScope(fn, 'ownScope');
  return { result, made: [...scope].filter((t) => !t.isDisposed) };
}
