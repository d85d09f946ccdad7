/**
 * LoRA against a full fine-tune of the same base, measured the same way: the training step time
 * (forward, backward, AdamW, EMA) and what each run writes. Both trainers start from the base's
 * weights, run one micro-batch per step on the main thread with the CPU helper threads off (one
 * core each), and alternate step by step so that other load on the machine hits both alike; the
 * first step of each is a warm-up and is not counted.
 *
 *   nice npx tsx scripts/lora-bench.ts [--base models/mnist-cond] [--data mnist] [--batch 32]
 *        [--steps 5] [--rank 4] [--json FILE]
 *
 * Prints a Markdown table; --json FILE also writes the numbers.
 */
import { writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import {
  loadLoraBase,
  loadTrainingData,
  resolveModelDir,
  resolveTrainConfig,
  type TrainConfig,
  Trainer,
} from '../src/diffusion/index.js';
import { cpuBackend, setCpuHelperThreads, setDefaultBackend } from '../src/engine/index.js';
import { DEFAULT_LORA_TARGETS, loadModule, serializeLora } from '../src/nn/index.js';
import { WEIGHTS_NAME } from '../src/nn/models/index.js';
import { loadConfigSource } from '../src/cli/presets.js';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const base = option('base', 'models/mnist-cond');
const data = option('data', 'mnist');
const batch = Number(option('batch', '32'));
const steps = Number(option('steps', '5'));
const rank = Number(option('rank', '4'));
const jsonOut = option('json', '');

setDefaultBackend(cpuBackend());
setCpuHelperThreads(false);

const layout = await resolveModelDir(base);
const source = loadConfigSource(layout.root);
const baseWeights = join(layout.emaDir ?? layout.unetDir, WEIGHTS_NAME);
const size = typeof source.model.sample_size === 'number' ? source.model.sample_size : undefined;
const ds = loadTrainingData(data, size);
const config = (lora: TrainConfig['lora']): TrainConfig =>
  resolveTrainConfig(
    {
      model: source.model,
      scheduler: source.scheduler,
      train: {
        data,
        steps: 1000,
        batchSize: batch,
        microBatches: 1,
        classCond: typeof source.model.num_class_embeds === 'number',
        lora,
      },
    },
    ds,
  );

const fullConfig = config(null);
const full = new Trainer(fullConfig, ds);
await loadModule(full.model, baseWeights);
const loraConfig = config({ base, rank, alpha: rank, targets: [...DEFAULT_LORA_TARGETS] });
const lora = new Trainer(loraConfig, ds, await loadLoraBase(loraConfig));

const times: Record<'full' | 'lora', number[]> = { full: [], lora: [] };
for (let s = 0; s <= steps; s++) {
  for (const [name, t] of [
    ['full', full],
    ['lora', lora],
  ] as const) {
    const t0 = performance.now();
    await t.trainStep();
    const ms = performance.now() - t0;
    if (s > 0) times[name].push(ms);
  }
}
const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const loraBytes = (await serializeLora(lora.lora!)).length;
const baseBytes = (await stat(baseWeights)).size;
const result = {
  base,
  baseWeights,
  data,
  batch,
  rank,
  measuredSteps: steps,
  fullParameters: full.numParameters(),
  loraParameters: lora.numParameters(),
  adaptedLayers: lora.lora!.adapters.size,
  fullStepMs: times.full.map((v) => Math.round(v)),
  loraStepMs: times.lora.map((v) => Math.round(v)),
  fullMedianMs: Math.round(median(times.full)),
  loraMedianMs: Math.round(median(times.lora)),
  stepRatio: Number((median(times.lora) / median(times.full)).toFixed(3)),
  loraFileBytes: loraBytes,
  baseFileBytes: baseBytes,
  fileRatio: Number((loraBytes / baseBytes).toFixed(4)),
  fullOptimizerTensors: full.optimizer.stateDict().size,
  loraOptimizerTensors: lora.optimizer.stateDict().size,
};
console.log(`| | full fine-tune | LoRA rank ${rank} |`);
console.log('| --- | --- | --- |');
console.log(
  `| trained parameters | ${result.fullParameters.toLocaleString('en-US')} | ${result.loraParameters.toLocaleString('en-US')} (${result.adaptedLayers} layers) |`,
);
console.log(
  `| step, median of ${steps} (ms) | ${result.fullMedianMs} | ${result.loraMedianMs} (${result.stepRatio}×) |`,
);
console.log(
  `| weights written (bytes) | ${baseBytes.toLocaleString('en-US')} (base file) | ${loraBytes.toLocaleString('en-US')} (${(100 * result.fileRatio).toFixed(2)}%) |`,
);
if (jsonOut !== '') writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
full.dispose();
lora.dispose();
