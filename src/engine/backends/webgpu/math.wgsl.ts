/**
 * WGSL scalar math with accuracy that does not depend on the driver: WGSL only promises loose
 * bounds for exp/log/sin/cos/tanh (sin and cos: absolute 2^-11 on [-π, π]; tanh may overflow to
 * NaN), and drivers differ. These functions reach about 1–2 ulp in f32 on every device. They are
 * the f32 counterparts of the CPU reference scalars (Math.exp, Math.log, Math.sin, Math.cos,
 * Math.tanh, Math.pow, and erf / sigmoid / gelu in backends/cpu/math.ts).
 *
 * Polynomials: exp, log, sin, cos and tanh follow Cephes (S. L. Moshier, cephes/single: expf.c,
 * logf.c, sinf.c, tanhf.c); erf and erfc follow fdlibm s_erff.c (Sun Microsystems, 1993, freely
 * distributable with this notice preserved; float conversion by Ian Lance Taylor).
 * NaN and infinity are detected from bits, since WGSL lets compilers assume finite math.
 */

interface MathFn {
  deps: readonly string[];
  code: string;
}

/**
 * An f32 → f32 function that returns a NaN argument unchanged, its `body` reading x and
 * ax = |x|; `deps` are what the body calls.
 */
function nanPassing(name: string, deps: readonly string[], body: string): MathFn {
  return {
    deps: ['m_isnan', ...deps],
    code: `fn ${name}(x: f32) -> f32 {
  if (m_isnan(x)) { return x; }
  let ax = abs(x);
${body}
}`,
  };
}

const fns: Record<string, MathFn> = {
  m_isnan: {
    deps: [],
    code: `fn m_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }`,
  },
  m_isinf: {
    deps: [],
    code: `fn m_isinf(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u; }`,
  },
  // Through a var: a constant expression may not produce inf or NaN.
  m_inf: { deps: [], code: `fn m_inf() -> f32 { var b = 0x7f800000u; return bitcast<f32>(b); }` },
  m_nan: { deps: [], code: `fn m_nan() -> f32 { var b = 0x7fc00000u; return bitcast<f32>(b); }` },
  // Float to int32 as the CPU stores it: truncation, NaN and ±inf to 0 (out-of-range saturates).
  m_f2i: {
    deps: ['m_isnan', 'm_isinf'],
    code: `fn m_f2i(x: f32) -> i32 {
  if (m_isnan(x) || m_isinf(x)) { return 0; }
  return i32(clamp(trunc(x), -2147483648.0, 2147483520.0));
}`,
  },
  // 2^k · p for k in a wide range, in two steps so each ldexp exponent stays in range.
  m_ldexp: {
    deps: [],
    code: `fn m_ldexp(p: f32, k: i32) -> f32 { let h = k / 2; return ldexp(ldexp(p, h), k - h); }`,
  },
  // Cephes expf: x = k ln2 + r with ln2 split in two (k·C1 exact), e^r by a degree-7 polynomial.
  m_exp: {
    deps: ['m_isnan', 'm_inf', 'm_ldexp'],
    code: `fn m_exp(x: f32) -> f32 {
  if (m_isnan(x)) { return x; }
  if (x > 88.72283935546875) { return m_inf(); }
  if (x < -103.97208404541015625) { return 0.0; }
  let k = round(x * 1.44269504088896341);
  let r = (x - k * 0.693359375) + k * 2.12194440e-4;
  let z = r * r;
  let p = (((((1.9875691500e-4 * r + 1.3981999507e-3) * r + 8.3334519073e-3) * r
    + 4.1665795894e-2) * r + 1.6666665459e-1) * r + 5.0000001201e-1) * z + r + 1.0;
  return m_ldexp(p, i32(k));
}`,
  },
  // Cephes logf: x = m 2^e with m in [√½, √2), log(1 + f) by a degree-9 polynomial.
  m_log_core: {
    deps: [],
    code: `fn m_log_core(f: f32, e: f32) -> f32 {
  let z = f * f;
  var y = ((((((((7.0376836292e-2 * f - 1.1514610310e-1) * f + 1.1676998740e-1) * f
    - 1.2420140846e-1) * f + 1.4249322787e-1) * f - 1.6668057665e-1) * f
    + 2.0000714765e-1) * f - 2.4999993993e-1) * f + 3.3333331174e-1) * f * z;
  y += -2.12194440e-4 * e;
  y += -0.5 * z;
  return (f + y) + 0.693359375 * e;
}`,
  },
  m_log: {
    deps: ['m_isnan', 'm_inf', 'm_nan', 'm_log_core'],
    code: `fn m_log(x: f32) -> f32 {
  let bits = bitcast<u32>(x);
  if (m_isnan(x) || ((bits >> 31u) == 1u && (bits & 0x7fffffffu) != 0u)) { return m_nan(); }
  if ((bits & 0x7fffffffu) == 0u) { return -m_inf(); }
  if (bits == 0x7f800000u) { return x; }
  let fe = frexp(x);
  if (fe.fract < 0.707106781186547524) {
    return m_log_core(fe.fract + fe.fract - 1.0, f32(fe.exp) - 1.0);
  }
  return m_log_core(fe.fract - 1.0, f32(fe.exp));
}`,
  },
  // log(1 + y) for y in [√½ − 1, √2 − 1] straight from the polynomial (no rounding of 1 + y;
  // the usual log(1+y)·y/((1+y)−1) trick is unsafe: GPU compilers may simplify (1+y)−1 to y).
  m_log1p_small: {
    deps: ['m_log_core'],
    code: `fn m_log1p_small(y: f32) -> f32 { return m_log_core(y, 0.0); }`,
  },
  // sin and cos on [-π/4, π/4] (Cephes sinf.c polynomials).
  m_sin_poly: {
    deps: [],
    code: `fn m_sin_poly(r: f32) -> f32 {
  let z = r * r;
  return ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
}`,
  },
  m_cos_poly: {
    deps: [],
    code: `fn m_cos_poly(r: f32) -> f32 {
  let z = r * r;
  return ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z
    - 0.5 * z + 1.0;
}`,
  },
  // Octant j of |x| and the reduced argument x - j π/4 (π/4 split in three, Cody–Waite);
  // exact reduction for |x| ≤ 8192, beyond which the builtin is used.
  m_sincos: {
    deps: ['m_isnan', 'm_isinf', 'm_nan', 'm_sin_poly', 'm_cos_poly'],
    code: `fn m_sincos(xin: f32, want_cos: bool) -> f32 {
  if (m_isnan(xin) || m_isinf(xin)) { return m_nan(); }
  let x = abs(xin);
  if (x > 8192.0) { return select(sin(xin), cos(xin), want_cos); }
  var j = u32(x * 1.27323954473516);
  var y = f32(j);
  if ((j & 1u) == 1u) { j += 1u; y += 1.0; }
  j = j & 7u;
  var neg = !want_cos && xin < 0.0;
  if (j > 3u) { neg = !neg; j -= 4u; }
  if (want_cos && j > 1u) { neg = !neg; }
  let r = ((x - y * 0.78515625) - y * 2.4187564849853515625e-4) - y * 3.77489497744594108e-8;
  let use_cos = (j == 1u || j == 2u) != want_cos;
  let v = select(m_sin_poly(r), m_cos_poly(r), use_cos);
  return select(v, -v, neg);
}`,
  },
  m_sin: { deps: ['m_sincos'], code: `fn m_sin(x: f32) -> f32 { return m_sincos(x, false); }` },
  m_cos: { deps: ['m_sincos'], code: `fn m_cos(x: f32) -> f32 { return m_sincos(x, true); }` },
  // Cephes tanhf: odd polynomial below 0.625, else 1 − 2/(e^{2|x|} + 1).
  m_tanh: nanPassing(
    'm_tanh',
    ['m_exp'],
    `  if (ax < 0.625) {
    let z = x * x;
    return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z
      + 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
  }
  var r = 1.0;
  if (ax < 9.0) { r = 1.0 - 2.0 / (m_exp(2.0 * ax) + 1.0); }
  return select(r, -r, x < 0.0);`,
  ),
  // The CPU's sigmoid: 1/(1 + e^−x) for x ≥ 0, e^x/(1 + e^x) below (no overflow either way).
  m_sigmoid: {
    deps: ['m_exp'],
    code: `fn m_sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + m_exp(-x)); }
  let e = m_exp(x);
  return e / (1.0 + e);
}`,
  },
  // erfc(x) = e^{-x²} e^{-0.5625 + R/S} / x for x ≥ 1.25 (fdlibm): R/S here, and the tail with
  // e^{-x²} taken as e^{-z² − 0.5625} e^{(z−x)(z+x) + R/S}, z = x rounded to 12 bits (z² exact).
  m_erfc_rs: {
    deps: [],
    code: `fn m_erfc_rs(ax: f32) -> f32 {
  let s = 1.0 / (ax * ax);
  if (ax < 2.857142857) {
    let R = -9.8649440333e-03 + s * (-6.9385856390e-01 + s * (-1.0558626175e+01 + s * (-6.2375331879e+01
      + s * (-1.6239666748e+02 + s * (-1.8460508728e+02 + s * (-8.1287437439e+01
      + s * -9.8143291473e+00))))));
    let S = 1.0 + s * (1.9651271820e+01 + s * (1.3765776062e+02 + s * (4.3456588745e+02
      + s * (6.4538726807e+02 + s * (4.2900814819e+02 + s * (1.0863500214e+02
      + s * (6.5702495575e+00 + s * -6.0424413532e-02)))))));
    return R / S;
  }
  let R = -9.8649431020e-03 + s * (-7.9928326607e-01 + s * (-1.7757955551e+01 + s * (-1.6063638306e+02
    + s * (-6.3756646729e+02 + s * (-1.0250950928e+03 + s * -4.8351919556e+02)))));
  let S = 1.0 + s * (3.0338060379e+01 + s * (3.2579251099e+02 + s * (1.5367296143e+03
    + s * (3.1998581543e+03 + s * (2.5530502930e+03 + s * (4.7452853394e+02
    + s * -2.2440952301e+01))))));
  return R / S;
}`,
  },
  m_erfc_tail: {
    deps: ['m_exp', 'm_erfc_rs'],
    code: `fn m_erfc_tail(ax: f32) -> f32 {
  let z = bitcast<f32>(bitcast<u32>(ax) & 0xfffff000u);
  return m_exp(-z * z - 0.5625) * m_exp((z - ax) * (z + ax) + m_erfc_rs(ax)) / ax;
}`,
  },
  // erf(x)/x − 1 on |x| < 0.84375 and erf(1 + s) − 0.84506291151 on |s| < 0.25 (fdlibm).
  m_erf_small: {
    deps: [],
    code: `fn m_erf_small(x: f32) -> f32 {
  let z = x * x;
  let r = 1.2837916613e-01 + z * (-3.2504209876e-01 + z * (-2.8481749818e-02
    + z * (-5.7702702470e-03 + z * -2.3763017452e-05)));
  let s = 1.0 + z * (3.9791721106e-01 + z * (6.5022252500e-02 + z * (5.0813062117e-03
    + z * (1.3249473704e-04 + z * -3.9602282413e-06))));
  return r / s;
}
fn m_erf_mid(s: f32) -> f32 {
  let P = -2.3621185683e-03 + s * (4.1485610604e-01 + s * (-3.7220788002e-01 + s * (3.1834661961e-01
    + s * (-1.1089469492e-01 + s * (3.5478305072e-02 + s * -2.1663755178e-03)))));
  let Q = 1.0 + s * (1.0642088205e-01 + s * (5.4039794207e-01 + s * (7.1828655899e-02
    + s * (1.2617121637e-01 + s * (1.3637083583e-02 + s * 1.1984500103e-02)))));
  return P / Q;
}`,
  },
  m_erf: nanPassing(
    'm_erf',
    ['m_erf_small', 'm_erfc_tail'],
    `  var r: f32;
  if (ax < 0.84375) { return x + x * m_erf_small(x); }
  if (ax < 1.25) { r = 8.4506291151e-01 + m_erf_mid(ax - 1.0); }
  else if (ax >= 6.0) { r = 1.0; }
  else { r = 1.0 - m_erfc_tail(ax); }
  return select(r, -r, x < 0.0);`,
  ),
  m_erfc: nanPassing(
    'm_erfc',
    ['m_erf_small', 'm_erfc_tail'],
    `  if (ax < 0.84375) {
    let y = m_erf_small(x);
    if (x < 0.25) { return 1.0 - (x + x * y); }
    return 0.5 - (x * y + (x - 0.5));
  }
  if (ax < 1.25) {
    let p = m_erf_mid(ax - 1.0);
    return select(1.0 + (8.4506291151e-01 + p), (1.0 - 8.4506291151e-01) - p, x > 0.0);
  }
  if (ax >= 28.0) { return select(2.0, 0.0, x > 0.0); }
  let t = m_erfc_tail(ax);
  return select(2.0 - t, t, x > 0.0);`,
  ),
  // x Φ(x) with Φ(x) = erfc(−x/√2)/2, which keeps relative accuracy for negative x. Past
  // |x|/√2 = 1.25 the tail is rebuilt from x itself: e^{−x²/2} with x split into a 12-bit head
  // and an exact remainder (so the head's square is exact), since rounding x/√2 first would cost
  // x²·2^-24 of relative accuracy.
  m_gelu: {
    deps: ['m_erfc', 'm_exp', 'm_erfc_rs', 'm_isinf', 'm_nan'],
    code: `fn m_gelu(x: f32) -> f32 {
  if (m_isinf(x)) { return select(m_nan(), x, x > 0.0); }
  let ax = abs(x);
  let t = ax * 0.70710678118654752;
  if (t < 1.25) { return 0.5 * x * m_erfc(-x * 0.70710678118654752); }
  if (t >= 28.0) { return select(0.0, x, x > 0.0); }
  let xh = bitcast<f32>(bitcast<u32>(ax) & 0xfffff000u);
  let xl = ax - xh;
  let tail = m_exp(-0.5 * xh * xh - 0.5625) * m_exp(-0.5 * xl * (ax + xh) + m_erfc_rs(t)) / t;
  return select(0.5 * x * tail, x - 0.5 * x * tail, x > 0.0);
}`,
  },
  // Math.pow: integer exponents up to 64 by repeated squaring, else e^{b ln|a|} with the sign
  // of an odd integer power of a negative base; a non-integer power of a negative base is NaN.
  m_pow: {
    deps: ['m_isnan', 'm_nan', 'm_exp', 'm_log'],
    code: `fn m_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  if (m_isnan(a) || m_isnan(b)) { return m_nan(); }
  let is_int = floor(b) == b;
  if (is_int && abs(b) <= 64.0) {
    var e = u32(abs(b));
    var base = a;
    var acc = 1.0;
    loop {
      if ((e & 1u) == 1u) { acc = acc * base; }
      e = e >> 1u;
      if (e == 0u) { break; }
      base = base * base;
    }
    return select(acc, 1.0 / acc, b < 0.0);
  }
  if (a < 0.0 && !is_int) { return m_nan(); }
  let r = m_exp(b * m_log(abs(a)));
  let odd = is_int && abs(b) < 16777216.0 && (u32(abs(b)) & 1u) == 1u;
  return select(r, -r, a < 0.0 && odd);
}`,
  },
};

/** The WGSL source of the named functions and everything they call, callees first. */
export function mathWgsl(names: readonly string[]): string {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string): void => {
    if (seen.has(n)) return;
    seen.add(n);
    const f = fns[n];
    if (f === undefined) throw new Error(`mathWgsl: unknown function ${n}`);
    for (const d of f.deps) visit(d);
    out.push(f.code);
  };
  for (const n of names) visit(n);
  return out.join('\n');
}
