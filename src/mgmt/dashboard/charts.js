// warren dashboard: small canvas line charts (no library, no build step).
//
// drawChart(canvas, {series: [{label, color, points: [[x, y], ...]}], x: 'time' | 'percentile',
//   yLog: bool, yFormat: (v) => string, yMin?: number, empty?: string})
// 'percentile' x values are percentiles (0..100) drawn on HdrHistogram's tail-stretching
// scale: x = log10(1 / (1 - p/100)), so 90, 99, 99.9 ... are evenly spaced.
'use strict';

(function () {
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const percentileMax = 99.9999;

  function tailX(p) {
    const q = Math.min(p, percentileMax) / 100;
    return Math.log10(1 / (1 - q));
  }

  function niceStep(range, targetTicks) {
    const raw = range / Math.max(1, targetTicks);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const n = raw / mag;
    return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  }

  function timeLabel(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
  }

  function setupCanvas(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 400;
    const height = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }

  function drawChart(canvas, opts) {
    if (!canvas || !canvas.isConnected) return;
    const { ctx, width, height } = setupCanvas(canvas);
    const series = opts.series.filter((s) => s.points.length > 0);
    const pad = { left: 62, right: opts.x === 'percentile' ? 34 : 16, top: 10, bottom: 26 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const grid = css('--chart-grid') || '#e5e1dc';
    const text = css('--muted') || '#6b635b';
    ctx.font = '11px system-ui, -apple-system, "Segoe UI", sans-serif';
    ctx.lineWidth = 1;

    if (series.length === 0) {
      ctx.fillStyle = text;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(opts.empty || 'No data yet', width / 2, height / 2);
      return;
    }

    const xOf = opts.x === 'percentile' ? tailX : (v) => v;
    let xMin = Infinity;
    let xMax = -Infinity;
    let yMin = Infinity;
    let yMax = -Infinity;
    for (const s of series) {
      for (const [x, y] of s.points) {
        const xv = xOf(x);
        xMin = Math.min(xMin, xv);
        xMax = Math.max(xMax, xv);
        yMin = Math.min(yMin, y);
        yMax = Math.max(yMax, y);
      }
    }
    if (opts.x === 'percentile') {
      xMin = 0;
      xMax = Math.max(xMax, 2);
    }
    if (xMax === xMin) xMax = xMin + 1;

    // y scale
    let yTicks;
    let yOf;
    if (opts.yLog) {
      const lo = Math.floor(Math.log10(Math.max(1, yMin)));
      let hi = Math.ceil(Math.log10(Math.max(1, yMax)));
      if (hi === lo) hi = lo + 1;
      yTicks = [];
      for (let e = lo; e <= hi; e++) yTicks.push(10 ** e);
      yOf = (v) => pad.top + plotH - ((Math.log10(Math.max(1, v)) - lo) / (hi - lo)) * plotH;
    } else {
      const lo = opts.yMin !== undefined ? Math.min(opts.yMin, yMin) : yMin;
      let hi = yMax;
      if (hi - lo < 1e-9) hi = lo + 1;
      const step = niceStep(hi - lo, 4);
      const start = Math.floor(lo / step) * step;
      const end = Math.ceil(hi / step) * step;
      yTicks = [];
      for (let v = start; v <= end + step / 2; v += step) yTicks.push(v);
      yOf = (v) => pad.top + plotH - ((v - start) / (end - start || 1)) * plotH;
    }
    const xPix = (xv) => pad.left + ((xv - xMin) / (xMax - xMin)) * plotW;

    // grid + y labels
    ctx.strokeStyle = grid;
    ctx.fillStyle = text;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const t of yTicks) {
      const y = Math.round(yOf(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(width - pad.right, y);
      ctx.stroke();
      ctx.fillText(opts.yFormat ? opts.yFormat(t) : String(t), pad.left - 6, y);
    }

    // x labels
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    if (opts.x === 'percentile') {
      const labels = [0, 90, 99, 99.9, 99.99, 99.999, 99.9999];
      for (const p of labels) {
        const xv = tailX(p);
        if (xv > xMax + 1e-9) break;
        const x = Math.round(xPix(xv)) + 0.5;
        ctx.strokeStyle = grid;
        ctx.beginPath();
        ctx.moveTo(x, pad.top);
        ctx.lineTo(x, pad.top + plotH);
        ctx.stroke();
        ctx.fillText(`${p}%`, x, pad.top + plotH + 6);
      }
    } else {
      const span = xMax - xMin;
      const step = niceStep(span, Math.max(2, Math.floor(plotW / 90)));
      for (let v = Math.ceil(xMin / step) * step; v <= xMax; v += step) {
        const label = timeLabel(v);
        const half = ctx.measureText(label).width / 2;
        const x = xPix(v);
        if (x - half < pad.left - 4 || x + half > width - 2) continue;
        ctx.fillText(label, x, pad.top + plotH + 6);
      }
    }

    // series
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top - 2, plotW, plotH + 4);
    ctx.clip();
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      s.points.forEach(([x, y], i) => {
        const px = xPix(xOf(x));
        const py = yOf(y);
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      });
      ctx.stroke();
      if (s.fill) {
        const last = s.points[s.points.length - 1];
        const first = s.points[0];
        ctx.lineTo(xPix(xOf(last[0])), pad.top + plotH);
        ctx.lineTo(xPix(xOf(first[0])), pad.top + plotH);
        ctx.closePath();
        ctx.globalAlpha = 0.08;
        ctx.fillStyle = s.color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    }
    ctx.restore();

    // axes
    ctx.strokeStyle = text;
    ctx.globalAlpha = 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left + 0.5, pad.top);
    ctx.lineTo(pad.left + 0.5, pad.top + plotH + 0.5);
    ctx.lineTo(width - pad.right, pad.top + plotH + 0.5);
    ctx.stroke();
    ctx.globalAlpha = 1;
  }

  window.warrenCharts = { drawChart };
})();
