import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { escapeXml, lineChartSvg, linearTicks, logTicks } from '../../src/eval/svg-chart.js';

/** The numbers of every `points="x,y x,y"` attribute. */
function polylines(svg: string): [number, number][][] {
  return [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) =>
    m[1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]),
  );
}

void describe('line chart', () => {
  void it('ticks: 1-2-5 steps on linear axes, powers of ten (and 2, 5 ×) on log axes', () => {
    assert.deepEqual(linearTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(linearTicks(-3, 12), [0, 5, 10]);
    assert.deepEqual(logTicks(3, 120), [5, 10, 20, 50, 100]);
    assert.deepEqual(logTicks(0.5, 2000), [1, 10, 100, 1000]);
  });

  void it('maps points monotonically, upwards for larger y, and skips what a log axis cannot show', () => {
    const svg = lineChartSvg(
      [
        {
          name: 'a <b>',
          points: [
            { x: 5, y: 40 },
            { x: 10, y: 20 },
            { x: 100, y: 5 },
          ],
        },
        {
          name: 'c',
          points: [
            { x: 5, y: 0 },
            { x: 50, y: 8 },
            { x: 100, y: NaN },
          ],
        },
      ],
      { xLabel: 'steps', yLabel: 'FD', logX: true, logY: true, lines: [{ y: 2, label: 'floor' }] },
    );
    const [a, c] = polylines(svg);
    assert.equal(a!.length, 3);
    assert.ok(a![0]![0] < a![1]![0] && a![1]![0] < a![2]![0], 'x grows to the right');
    assert.ok(a![0]![1] < a![1]![1] && a![1]![1] < a![2]![1], 'larger y is higher up');
    assert.equal(c, undefined, 'one drawable point: a dot, no line');
    assert.equal(svg.match(/<circle/g)?.length, 4);
    assert.match(svg, /a &lt;b&gt;/);
    assert.match(svg, /stroke-dasharray="6 4"/);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
    assert.throws(
      () =>
        lineChartSvg([{ name: 'x', points: [{ x: 0, y: 1 }] }], {
          xLabel: '',
          yLabel: '',
          logX: true,
        }),
      /no plottable x values/,
    );
    assert.equal(escapeXml(`"&'`), `&quot;&amp;'`);
  });
});
