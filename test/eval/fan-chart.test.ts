import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { type FanChartData, fanChartImage, fanChartSvg } from '../../src/eval/fan-chart.js';

const DATA: FanChartData = {
  historyX: [-3, -2, -1],
  history: [0, 1, 0],
  futureX: [-1, 0, 1, 2],
  q05: [0, -4, -4, -4],
  q25: [0, -1, -1, -1],
  q50: [0, 0, 0, 0],
  q75: [0, 1, 1, 1],
  q95: [0, 4, 4, 4],
  truth: [0, 2, 2, 2],
};

void describe('fan chart', () => {
  void it('shades the 90% band outside the 50% band, and draws the median', () => {
    const img = fanChartImage(DATA, { width: 200, height: 200 });
    assert.deepEqual([img.width, img.height, img.channels], [200, 200, 3]);
    const at = (x: number, y: number): number[] => [
      ...img.data.subarray((y * 200 + x) * 3, (y * 200 + x) * 3 + 3),
    ];
    // Plot area x 64..184 over x ∈ [−3, 2], y 36..156 over values ∈ [−4.4, 4.4] (5% padding).
    const col = Math.round(64 + ((0.6 + 3) / 5) * 120); // x = 0.6, inside the fan
    const yOf = (v: number): number => Math.round(156 - ((v + 4.4) / 8.8) * 120);
    assert.deepEqual(at(col, yOf(3)), [198, 219, 239], '90% band');
    assert.deepEqual(at(col, yOf(0.6)), [107, 174, 214], '50% band');
    assert.deepEqual(at(col, yOf(0)), [8, 48, 107], 'median');
    assert.deepEqual(at(5, 5), [255, 255, 255], 'background');
  });
  void it('writes an SVG with both bands, the lines and a legend', () => {
    const svg = fanChartSvg(DATA, { title: 'a <test>', xLabel: 'days', yLabel: '°C' });
    assert.equal((svg.match(/<polygon /g) ?? []).length, 2);
    assert.equal((svg.match(/<polyline /g) ?? []).length, 3);
    assert.match(svg, /a &lt;test&gt;/);
    assert.match(svg, />truth</);
  });
});
