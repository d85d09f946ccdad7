/**
 * npm run parity -- <fixtures-dir> [--backend cpu|webgpu] [--dtype float64|float32] [--verbose]
 *
 * Runs every fixture under the directory, prints one line per fixture and `N passed, M failed`,
 * and exits non-zero if any failed (a fixture of a kind nobody registered counts as failed).
 * On the CPU the default is float64 (tolerance 1e-10); webgpu runs in float32 with diffusers'
 * native tolerance. A scheduler case's records against diffusers as shipped (native/*) are held to
 * max(1e-5, 2 × that case's recorded float32-vs-float64 gap of diffusers), as the output says.
 */
import { type Backend, type FloatDType, getBackend, initBackend } from '../engine/index.js';
import { NATIVE_TOLERANCE, runParity } from '../eval/parity/index.js';

const USAGE =
  'usage: npm run parity -- <fixtures-dir> [--backend cpu|webgpu] [--dtype float64|float32] [--verbose]';

interface Args {
  root: string;
  backend: string;
  dtype: FloatDType | null;
  verbose: boolean;
}

function parseArgs(argv: string[]): Args {
  let root: string | null = null;
  let backend = 'cpu';
  let dtype: FloatDType | null = null;
  let verbose = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--backend') backend = value();
    else if (a.startsWith('--backend=')) backend = a.slice('--backend='.length);
    else if (a === '--dtype' || a.startsWith('--dtype=')) {
      const v = a === '--dtype' ? value() : a.slice('--dtype='.length);
      if (v !== 'float64' && v !== 'float32') throw new Error(`--dtype must be float64 or float32`);
      dtype = v;
    } else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a}\n${USAGE}`);
    else if (root === null) root = a;
    else throw new Error(`one fixtures directory expected\n${USAGE}`);
  }
  if (root === null) throw new Error(USAGE);
  if (backend !== 'cpu' && backend !== 'webgpu') throw new Error(`--backend must be cpu or webgpu`);
  return { root, backend, dtype, verbose };
}

/** The webgpu backend, or null (with the reason on stderr) where there is no adapter. */
async function webgpuBackend(): Promise<Backend | null> {
  try {
    return await initBackend('webgpu');
  } catch (e) {
    console.error(`parity: webgpu is not available: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  let backend: Backend = getBackend('cpu');
  let dtype: FloatDType = args.dtype ?? 'float64';
  if (args.backend === 'webgpu') {
    const b = await webgpuBackend();
    if (b === null) {
      console.error('parity: skipping the webgpu run');
      return 0;
    }
    backend = b;
    dtype = args.dtype ?? 'float32';
  }
  console.log(`parity: ${args.root} on ${backend.name} in ${dtype}`);
  console.log(
    `parity: scheduler native/* records (against diffusers' float32 run) use tol max(${NATIVE_TOLERANCE.toExponential(0)}, 2 × the case's recorded float32-vs-float64 gap)`,
  );
  const summary = await runParity(args.root, {
    backend,
    dtype,
    verbose: args.verbose,
    log: (line) => console.log(line),
  });
  return summary.failed > 0 || summary.fixtures.length === 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  },
);
