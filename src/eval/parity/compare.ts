/** Error measures for parity checks, computed in float64 on host arrays. */
import type { RecordResult } from './kinds.js';

type Vec = ArrayLike<number>;

function checkLengths(a: Vec, b: Vec, what: string): void {
  if (a.length !== b.length) {
    throw new Error(`${what}: ${a.length} values against ${b.length} in the fixture`);
  }
}

/** ‖a − b‖₂ / ‖b‖₂ over [start, end) (the absolute error when b = 0); NaN anywhere gives NaN. */
export function relL2(a: Vec, b: Vec, start = 0, end = a.length): number {
  checkLengths(a, b, 'relL2');
  let num = 0;
  let den = 0;
  for (let i = start; i < end; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

/** max|a − b| / max|b| (the absolute error when b = 0), for small vectors such as timesteps. */
export function maxRel(a: Vec, b: Vec): number {
  checkLengths(a, b, 'maxRel');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    num = Number.isNaN(d) || d > num ? d : num;
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den > 0 ? num / den : num;
}

/** The largest relL2 over the leading axis: `steps` blocks of equal size. */
export function maxRelL2PerStep(a: Vec, b: Vec, steps: number): number {
  checkLengths(a, b, 'maxRelL2PerStep');
  const per = a.length / steps;
  let worst = 0;
  for (let s = 0; s < steps; s++) {
    const e = relL2(a, b, s * per, (s + 1) * per);
    worst = Number.isNaN(e) || e > worst ? e : worst;
  }
  return worst;
}

export function record(
  name: string,
  metric: RecordResult['metric'],
  error: number,
  tolerance: number,
): RecordResult {
  return { name, metric, error, tolerance, ok: error <= tolerance };
}
