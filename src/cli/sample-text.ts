/**
 * `sumi sample --task text`: sentences from a Diffusion-LM (`sumi train --task text`), with the
 * clamping trick, any sampler of the registry, infilling of a template (`--infill "the ___ of
 * ___"`), and with `--lm` the metrics of the samples (perplexity under the LM against its
 * held-out perplexity, distinct-1/2, exact copies of training sentences).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import { decodeRows, loadTextCorpus, type WordLevelTokenizer } from '../data/index.js';
import {
  createSampler,
  loadTextModel,
  sampleTextIds,
  type TextInfill,
  type TextModelFolder,
} from '../diffusion/index.js';
import { textSampleMetrics } from '../eval/index.js';
import { CLIPTextModel, DiffusionLMModel } from '../nn/models/index.js';
import { type Args, CliError, type CommandSpec, UsageError } from './args.js';
import {
  BACKEND_OPTION,
  defineCommand,
  ETA_OPTION,
  EXIT,
  formatDuration,
  modelOption,
  samplerOption,
  seedOption,
  selectBackend,
  taskCommandSpec,
} from './common.js';
import type { Command } from './main.js';

export const sampleTextSpec: CommandSpec = taskCommandSpec('text', {
  name: 'sample',
  summary: 'Sample sentences from a Diffusion-LM.',
  usage: 'sumi sample --task text --model <dir> [-n N] [--infill "the ___ of ___"] [--lm <dir>]',
  options: [
    modelOption('a sumi train --task text output folder, checkpoint or export'),
    { name: 'n', kind: 'int', arg: 'N', help: 'sentences (also -n)', default: '8' },
    { name: 'steps', kind: 'int', arg: 'K', help: 'sampler steps (default 200, at most T)' },
    samplerOption('ddpm'),
    ETA_OPTION,
    seedOption('seed of x_T and the sampler noise'),
    { name: 'batch', kind: 'int', arg: 'B', help: 'sentences per batch', default: '128' },
    {
      name: 'clamp',
      kind: 'flag',
      help: 'the clamping trick: snap x̂_0 to the nearest word vectors at every step (default; --no-clamp: off)',
    },
    {
      name: 'infill',
      kind: 'string',
      arg: 'TEXT',
      help: 'a template whose ___ are words to fill (one word each); the rest is kept',
    },
    {
      name: 'lm',
      kind: 'string',
      arg: 'DIR',
      help: 'a language model (sumi train --task text --lm): print the metrics of the samples',
    },
    { name: 'out', kind: 'string', arg: 'FILE', help: 'write the sentences, one a line' },
    { name: 'metrics', kind: 'string', arg: 'FILE', help: 'write the metrics as JSON (with --lm)' },
    BACKEND_OPTION,
    { name: 'quiet', kind: 'flag', help: 'print nothing but the sentences' },
  ],
  notes: [
    'Infilling fixes <start>, the template words, <end> and the padding after it; only the ___\n' +
      'positions are sampled (at every step x̂_0 of the fixed positions is their word vector).',
  ],
});

/** A ___ of the template: a run of two or more underscores. */
const BLANK = /^_{2,}$/;

/**
 * The fixed ids and mask of `n` rows for a template: <bos>, its words (blanks free), <eos>, then
 * padding, over L positions.
 */
export function infillTemplate(
  template: string,
  tokenizer: WordLevelTokenizer,
  L: number,
  n: number,
): TextInfill {
  const tokens: (string | null)[] = [];
  for (const chunk of template.trim().split(/\s+/)) {
    if (chunk === '') continue;
    if (BLANK.test(chunk)) tokens.push(null);
    else tokens.push(...tokenizer.tokenize(chunk));
  }
  if (!tokens.includes(null)) {
    throw new UsageError(`--infill: '${template}' has no ___ to fill`);
  }
  if (tokens.length + 2 > L) {
    throw new UsageError(
      `--infill: '${template}' is ${tokens.length} words; the model takes at most ${L - 2}`,
    );
  }
  const unknown = tokens.filter(
    (t) => t !== null && tokenizer.tokenToId(t) === tokenizer.unkTokenId,
  );
  if (unknown.length > 0) {
    throw new UsageError(`--infill: not in the model's vocabulary: ${unknown.join(', ')}`);
  }
  const row = new Int32Array(L).fill(tokenizer.padTokenId);
  const mask = new Uint8Array(L).fill(1);
  row[0] = tokenizer.bosTokenId;
  tokens.forEach((t, k) => {
    if (t === null) mask[k + 1] = 0;
    else row[k + 1] = tokenizer.tokenToId(t);
  });
  row[tokens.length + 1] = tokenizer.eosTokenId;
  const ids = new Int32Array(n * L);
  const masks = new Uint8Array(n * L);
  for (let r = 0; r < n; r++) {
    ids.set(row, r * L);
    masks.set(mask, r * L);
  }
  return { ids, mask: masks };
}

/** The words of a row with the sampled ones of an infill in [brackets]. */
function marked(tok: WordLevelTokenizer, ids: Int32Array, mask: Uint8Array, L: number): string {
  const words: string[] = [];
  for (let k = 1; k < L; k++) {
    const id = ids[k]!;
    if (mask[k] === 1 && (id === tok.eosTokenId || id === tok.padTokenId)) break;
    const w = tok.vocab[id]!;
    words.push(mask[k] === 1 ? w : `[${w}]`);
  }
  return words.join(' ');
}

async function loadOrUsage(dir: string): Promise<TextModelFolder> {
  try {
    return await loadTextModel(dir);
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e), EXIT.usage);
  }
}

async function sampleText(args: Args): Promise<number> {
  const modelDir = args.str('model');
  if (modelDir === undefined) throw new UsageError('--model <dir> is required');
  const n = args.num('n') ?? 8;
  const batch = args.num('batch') ?? 128;
  const seed = args.num('seed') ?? 0;
  if (n < 1) throw new UsageError(`--n must be at least 1, got ${n}`);
  if (batch < 1) throw new UsageError(`--batch must be at least 1, got ${batch}`);
  const quiet = args.flag('quiet') === true;
  const backend = await selectBackend(args.str('backend'));
  const folder = await loadOrUsage(modelDir);
  if (!(folder.model instanceof DiffusionLMModel) || folder.schedulerConfig === null) {
    throw new UsageError(
      `${folder.dir} holds a ${folder.info.objective} model; sample from a Diffusion-LM (sumi train --task text without --lm)`,
    );
  }
  const model: DiffusionLMModel = folder.model;
  const tok = folder.tokenizer;
  const L = folder.info.seqLength;
  const T = Number(folder.schedulerConfig.num_train_timesteps);
  const steps = args.num('steps') ?? Math.min(200, T);
  if (steps < 1 || steps > T) throw new UsageError(`--steps must be in 1..${T}, got ${steps}`);
  const samplerName = args.str('sampler') ?? 'ddpm';
  let scheduler;
  try {
    scheduler = createSampler(samplerName, folder.schedulerConfig);
  } catch (e) {
    throw new UsageError(`--sampler: ${e instanceof Error ? e.message : String(e)}`);
  }
  const template = args.str('infill');
  const infillAll = template === undefined ? undefined : infillTemplate(template, tok, L, n);
  let lm: { model: CLIPTextModel; tokenizer: WordLevelTokenizer; seqLength: number } | undefined;
  const lmDir = args.str('lm');
  if (lmDir !== undefined) {
    const f = await loadOrUsage(lmDir);
    if (!(f.model instanceof CLIPTextModel)) {
      throw new UsageError(
        `--lm: ${f.dir} holds a ${f.info.objective} model, not a language model`,
      );
    }
    lm = { model: f.model, tokenizer: f.tokenizer, seqLength: f.info.seqLength };
  }
  const t0 = performance.now();
  const ids = new Int32Array(n * L);
  for (let start = 0; start < n; start += batch) {
    const b = Math.min(batch, n - start);
    const infill =
      infillAll === undefined
        ? undefined
        : {
            ids: infillAll.ids.subarray(start * L, (start + b) * L),
            mask: infillAll.mask.subarray(start * L, (start + b) * L),
          };
    const part = sampleTextIds(model, scheduler, {
      n: b,
      seqLength: L,
      // Each batch its own stream: batch k of seed s is the same whatever --n.
      seed: seed * 1_000_003 + start,
      numInferenceSteps: steps,
      clamp: args.flag('clamp') !== false,
      infill,
      eta: args.num('eta'),
    });
    ids.set(part, start * L);
  }
  const secs = (performance.now() - t0) / 1000;
  const sentences = decodeRows(tok, ids, L);
  const shown =
    infillAll === undefined
      ? sentences
      : sentences.map((_, r) =>
          marked(
            tok,
            ids.subarray(r * L, (r + 1) * L),
            infillAll.mask.subarray(r * L, (r + 1) * L),
            L,
          ),
        );
  for (const s of shown) console.log(s);
  const outFile = args.str('out');
  if (outFile !== undefined) {
    await mkdir(dirname(outFile), { recursive: true });
    await writeFile(outFile, `${sentences.join('\n')}\n`);
  }
  if (!quiet) {
    console.error(
      `${n} sentences, ${samplerName} ${steps} steps${args.flag('clamp') === false ? ', no clamping' : ''}` +
        `${template !== undefined ? `, infilling '${template}'` : ''}, on ${backend.name} in ${formatDuration(secs)}`,
    );
  }
  if (lm !== undefined) {
    const c = folder.info.corpus;
    const corpus = await loadTextCorpus(folder.info.data, c).catch((e: unknown) => {
      throw new CliError(
        `the corpus ${folder.info.data} (for the copies and held-out sentences): ${e instanceof Error ? e.message : String(e)}`,
      );
    });
    const m = textSampleMetrics(sentences, {
      train: new Set(corpus.train),
      heldOut: corpus.heldOut,
      lm,
    });
    const line =
      `metrics (${m.samples} samples): perplexity ${m.samplePerplexity!.toFixed(2)} under the LM ` +
      `(held-out sentences ${m.heldOutPerplexity?.toFixed(2) ?? '-'}, ratio ` +
      `${m.heldOutPerplexity !== null ? (m.samplePerplexity! / m.heldOutPerplexity).toFixed(2) : '-'}), ` +
      `distinct-1 ${m.distinct1.toFixed(3)}, distinct-2 ${m.distinct2.toFixed(3)}, ` +
      `exact copies ${(100 * m.exactCopies).toFixed(1)}%, mean ${m.meanWords.toFixed(1)} words, ${m.empty} empty`;
    console.error(line);
    const metricsFile = args.str('metrics');
    if (metricsFile !== undefined) {
      const doc = {
        model: modelDir,
        lm: lmDir,
        sampler: samplerName,
        steps,
        clamp: args.flag('clamp') !== false,
        seed,
        infill: template ?? null,
        seconds: Number(secs.toFixed(1)),
        ...m,
      };
      await mkdir(dirname(metricsFile), { recursive: true });
      await writeFile(metricsFile, `${JSON.stringify(doc, null, 2)}\n`);
    }
  } else if (args.has('metrics')) {
    throw new UsageError('--metrics needs --lm (the language model that scores the samples)');
  }
  return EXIT.ok;
}

const command = defineCommand(sampleTextSpec, sampleText);

/** `sumi sample --task text`; `-n N` is read as `--n N`. */
export const sampleTextCommand: Command = {
  ...command,
  run: (argv) => command.run(argv.map((a) => (a === '-n' ? '--n' : a))),
};
