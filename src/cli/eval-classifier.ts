/**
 * `sumi eval classifier`: how well an evaluation classifier labels its reference set, the real
 * images it did not train on (the held-out split of its training, the mnist-full or fashion-mnist
 * test split): its accuracy ± the binomial standard error, per class. Every FD and conditional
 * accuracy it scores is only as good as this figure (docs/quality.md).
 */
import { accuracyReport, EvalInputError } from '../eval/index.js';
import type { Args, CommandSpec } from './args.js';
import { EXIT, selectBackend } from './common.js';
import {
  CLASSIFIER_OPTIONS,
  COMMON_TAIL,
  dataSpec,
  loadEvalClassifier,
  reference,
  referenceJson,
  table,
  toJson,
} from './eval-common.js';
import { Progress } from './progress.js';

export const classifierSpec: CommandSpec = {
  name: 'eval classifier',
  summary: "An evaluation classifier's accuracy on its reference set (the images it held out).",
  usage: 'sumi eval classifier --classifier <dir> [--data D] [options]',
  options: [...CLASSIFIER_OPTIONS, ...COMMON_TAIL],
  notes: [
    'The reference set is the one `sumi eval fd` compares samples with: the held-out split of the\n' +
      "classifier's training (--holdout), or the mnist-full or fashion-mnist test split. Its features\n" +
      'are cached.',
  ],
};

export async function classifierCommand(args: Args): Promise<number> {
  const json = args.flag('json') === true;
  const progress = new Progress(args.flag('quiet') === true || json);
  await selectBackend(args.str('backend'));
  const t0 = performance.now();
  const c = await loadEvalClassifier(args);
  const ref = await reference(args, c, dataSpec(args, c, null), progress);
  if (ref.labels === null) {
    throw new EvalInputError(
      `the reference set (${ref.split.description}) has no labels: no accuracy to report`,
    );
  }
  const acc = accuracyReport(ref.classes.predicted, ref.labels, c.numClasses);
  const names = c.info?.classNames ?? null;
  if (json) {
    console.log(
      toJson({
        format: 'sumi-eval',
        version: 1,
        command: 'classifier',
        classifier: { path: c.root, hash: c.hash, features: c.numFeatures, classes: c.numClasses },
        reference: referenceJson(ref),
        classNames: names,
        accuracy: acc,
        seconds: (performance.now() - t0) / 1000,
      }),
    );
    return EXIT.ok;
  }
  console.log(
    table([
      ['classifier', `${c.root} (${c.numFeatures} features, ${c.numClasses} classes)`],
      ['reference', ref.split.description],
      [
        'accuracy',
        `${(100 * acc.accuracy).toFixed(2)}% ± ${(100 * acc.standardError).toFixed(2)}% ` +
          `(${acc.correct} of ${acc.n})`,
      ],
    ]),
  );
  console.log();
  console.log(
    table([
      ['class', 'images', 'accuracy'],
      ...acc.perClass.map((a, k) => [
        names?.[k] ?? String(k),
        String(acc.perClassCount[k] ?? 0),
        a === null ? '-' : a.toFixed(3),
      ]),
    ]),
  );
  return EXIT.ok;
}
