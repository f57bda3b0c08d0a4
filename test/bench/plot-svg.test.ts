import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatHgrm, parseHgrm } from '../../src/bench/hgrm.js';
import { createLatencyHistogram, recordMicros } from '../../src/bench/latency-histogram.js';
import { decadeLabel, escapeXml, niceCeiling, percentileDecades, plotLatencySvg } from '../../src/bench/plot-svg.js';

function pointsOf(svg: string): Array<[number, number]>[] {
  return [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((match) =>
    (match[1] ?? '').split(' ').map((pair) => pair.split(',').map(Number) as [number, number]),
  );
}

describe('latency-by-percentile SVG', () => {
  it('puts 90%, 99%, 99.9% one decade apart on the x axis', () => {
    assert.equal(percentileDecades(0), 0);
    assert.ok(Math.abs(percentileDecades(0.9) - 1) < 1e-12);
    assert.ok(Math.abs(percentileDecades(0.99) - 2) < 1e-12);
    assert.ok(Math.abs(percentileDecades(0.999) - 3) < 1e-9);
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(decadeLabel), ['0%', '90%', '99%', '99.9%', '99.99%', '99.999%']);
  });

  it('draws one polyline per series, equally spaced decades, latency rising with percentile', () => {
    const histogram = createLatencyHistogram();
    for (let micros = 1; micros <= 100_000; micros++) recordMicros(histogram, micros);
    const slow = createLatencyHistogram();
    for (let micros = 1; micros <= 100_000; micros++) recordMicros(slow, micros * 2);
    const svg = plotLatencySvg('Latency <A & B>', [
      { label: 'fast', rows: parseHgrm(formatHgrm(histogram)).rows },
      { label: 'slow', rows: parseHgrm(formatHgrm(slow)).rows },
    ]);
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.match(svg, /Latency &#60;A &#38; B&#62;/);
    // 100 000 samples reach past 99.99%; the axis ends at the next whole decade.
    for (const label of ['0%', '90%', '99%', '99.9%', '99.99%']) assert.match(svg, new RegExp(`>${label.replace('.', '\\.')}</text>`));
    const series = pointsOf(svg);
    assert.equal(series.length, 2);
    const [fast, slower] = series;
    assert.ok(fast !== undefined && slower !== undefined);
    // y grows downwards in SVG: higher latency, smaller y; x never goes back.
    for (let index = 1; index < fast.length; index++) {
      const [x0, y0] = fast[index - 1] ?? [0, 0];
      const [x1, y1] = fast[index] ?? [0, 0];
      assert.ok(x1 >= x0 && y1 <= y0);
    }
    const decadeX = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="middle">(\d[\d.]*%)<\/text>/g)].map((match) => Number(match[1]));
    const gaps = decadeX.slice(1).map((x, index) => x - (decadeX[index] ?? 0));
    for (const gap of gaps) assert.ok(Math.abs(gap - (gaps[0] ?? 0)) < 0.2);
    // At the same percentile the slower series sits higher (smaller y).
    assert.ok((slower[5]?.[1] ?? 0) < (fast[5]?.[1] ?? 0));
  });

  it('leaves out the 100% row, which has no place on a log axis', () => {
    const svg = plotLatencySvg('t', [{ label: 'one', rows: [{ valueMillis: 1, percentile: 0, totalCount: 1, inverseTail: 1 }, { valueMillis: 1, percentile: 1, totalCount: 1, inverseTail: Infinity }] }]);
    const series = pointsOf(svg);
    assert.equal(series[0]?.length, 1);
    assert.ok(!svg.includes('NaN') && !svg.includes('Infinity'));
  });

  it('rounds the latency axis up to a round number', () => {
    assert.deepEqual([0.7, 1, 1.2, 3, 7, 42, 207, 0].map(niceCeiling), [0.8, 1, 1.5, 3, 8, 50, 250, 1]);
  });

  it('escapes labels', () => {
    assert.equal(escapeXml(`a<b>&"'`), 'a&#60;b&#62;&#38;&#34;&#39;');
  });
});
