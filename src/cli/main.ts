/** The `sumi` command line: dispatches to one module per command. */
import { readFileSync } from 'node:fs';

import { controlnetCommand } from './controlnet.js';
import { demoCommand } from './demo.js';
import { editCommand } from './edit.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { forecastCommand } from './forecast.js';
import { loraCommand } from './lora.js';
import { reconstructCommand } from './reconstruct.js';
import { sampleCommand } from './sample.js';
import { trainCommand } from './train.js';
import { trainClassifierCommand } from './train-classifier.js';
import { trainVaeCommand } from './train-vae.js';

export interface Command {
  name: string;
  summary: string;
  run(argv: string[]): Promise<number>;
}

const commands: Command[] = [
  trainCommand,
  trainClassifierCommand,
  trainVaeCommand,
  sampleCommand,
  forecastCommand,
  editCommand,
  demoCommand,
  exportCommand,
  evalCommand,
  reconstructCommand,
  loraCommand,
  controlnetCommand,
];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function usage(): string {
  const lines = commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`);
  return [
    'usage: sumi <command> [options]',
    '',
    'Diffusion models in TypeScript, on WebGPU and the CPU.',
    '',
    'commands:',
    ...lines,
    '',
    '  sumi <command> --help   options of a command',
    '  sumi --version          print the version',
  ].join('\n');
}

/** Runs the CLI with argv (without node and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(version());
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (cmd === undefined) {
    console.error(`sumi: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return cmd.run(rest);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
