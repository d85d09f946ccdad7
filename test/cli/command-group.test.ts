// The commands with subcommands (sumi edit, eval, lora, controlnet) share one dispatcher (commandGroup):
// --help lists every subcommand with its summary, a missing or unknown one exits 2 with the list.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { sumiInProcess as sumi } from './run-sumi.js';

const GROUPS: [string, string[]][] = [
  ['edit', ['img2img', 'inpaint', 'invert', 'reconstruct', 'upscale']],
  ['eval', ['fd', 'cond', 'nll', 'sweep', 'recon', 'classifier']],
  ['lora', ['merge']],
  ['controlnet', ['map']],
];

void describe('commandGroup', () => {
  for (const [group, subs] of GROUPS) {
    void test(`sumi ${group}: the list on --help, exit 2 without or with an unknown subcommand`, async () => {
      const help = await sumi([group, '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.match(
        help.stdout,
        new RegExp(`^usage: sumi ${group} <${subs.join('\\|')}> \\[options\\]`),
      );
      for (const s of subs) assert.match(help.stdout, new RegExp(`\\n  ${s} +\\S`), `lists ${s}`);
      const none = await sumi([group]);
      assert.equal(none.code, 2);
      assert.match(none.stderr, new RegExp(`^sumi ${group}: give a subcommand\\n\\nusage: `));
      const wrong = await sumi([group, 'nope', '--x']);
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, new RegExp(`^sumi ${group}: unknown subcommand 'nope'`));
      const sub = await sumi([group, subs[0]!, '--help']);
      assert.equal(sub.code, 0, sub.stderr);
      assert.match(sub.stdout, new RegExp(`^usage: sumi ${group} ${subs[0]} `));
    });
  }
});
