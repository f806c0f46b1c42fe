/**
 * A small dependency-free SVG writer for the figures of docs/benchmarks.md: a line chart (optionally log-scaled,
 * with range bars and a threshold line) and a grouped, stacked bar chart. Plain elements, coordinates rounded to
 * 0.1 px, no fonts or scripts embedded: the files stay small and diff well.
 */

export interface LinePoint {
  x: number;
  y: number;
  /** The range of the repeats, drawn as a bar. */
  low?: number;
  high?: number;
  /** Drawn hollow: the point failed its criterion. */
  failed?: boolean;
}

export interface LineSeries {
  name: string;
  color: string;
  points: LinePoint[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  logY?: boolean;
  threshold?: { y: number; label: string };
  width?: number;
  height?: number;
}

export interface BarSegment {
  name: string;
  value: number;
  color: string;
}

export interface BarGroup {
  label: string;
  bars: { label: string; segments: BarSegment[] }[];
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  groups: BarGroup[];
  legend: { name: string; color: string }[];
  width?: number;
  height?: number;
}

const MARGIN = { left: 64, right: 16, top: 36, bottom: 64 };

export const escapeXml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const px = (n: number): string => String(Math.round(n * 10) / 10);

/** A tick label: at most 3 significant digits, no trailing zeros. */
export function formatTick(value: number): string {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  if (abs >= 1000) return `${Math.round(value / 100) / 10}k`.replace(".0k", "k");
  return String(Number(value.toPrecision(3)));
}

/** Round ticks (1, 2, 5 × 10^n steps) covering [min, max]. */
export function niceTicks(min: number, max: number, target = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Ticks of a log axis: 1, 2, 5 × 10^n within [min, max]. */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= min * 0.999 && t <= max * 1.001) ticks.push(Number(t.toPrecision(6)));
    }
  }
  return ticks;
}

const text = (x: number, y: number, content: string, attrs = "") =>
  `<text x="${px(x)}" y="${px(y)}"${attrs ? ` ${attrs}` : ""}>${escapeXml(content)}</text>`;

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(width / 2, 20, title, 'text-anchor="middle" font-size="14" font-weight="bold"'),
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

function legendRow(items: { name: string; color: string }[], x: number, y: number): string[] {
  const out: string[] = [];
  let at = x;
  for (const item of items) {
    out.push(`<rect x="${px(at)}" y="${px(y - 9)}" width="10" height="10" fill="${item.color}"/>`);
    out.push(text(at + 14, y, item.name));
    at += 24 + item.name.length * 6.5;
  }
  return out;
}

export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const points = options.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const xs = points.map((p) => p.x);
  const ys = points.flatMap((p) => [p.y, p.low ?? p.y, p.high ?? p.y]);
  if (options.threshold) ys.push(options.threshold.y);
  const xMin = Math.min(...xs, 0);
  const xMax = Math.max(...xs, 1);
  const positive = ys.filter((y) => y > 0);
  const logY = options.logY === true && positive.length > 0;
  const yMin = logY ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 0;
  const yMaxRaw = Math.max(...ys, logY ? yMin * 10 : 1);
  const yTicks = logY ? logTicks(yMin, 10 ** Math.ceil(Math.log10(yMaxRaw))) : niceTicks(0, yMaxRaw * 1.05);
  const yMax = logY ? 10 ** Math.ceil(Math.log10(yMaxRaw)) : Math.max(yTicks.at(-1)!, yMaxRaw);
  const xTicks = niceTicks(xMin, xMax);
  const sx = (x: number) => MARGIN.left + ((x - xMin) / (xMax - xMin || 1)) * plotW;
  const sy = (y: number) =>
    MARGIN.top +
    plotH -
    (logY
      ? ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin) || 1)) * plotH
      : (y / (yMax || 1)) * plotH);
  const body: string[] = [];
  for (const t of yTicks) {
    body.push(
      `<line x1="${MARGIN.left}" x2="${px(width - MARGIN.right)}" y1="${px(sy(t))}" y2="${px(sy(t))}" stroke="#e5e5e5"/>`,
    );
    body.push(text(MARGIN.left - 6, sy(t) + 4, formatTick(t), 'text-anchor="end"'));
  }
  for (const t of xTicks) body.push(text(sx(t), MARGIN.top + plotH + 16, formatTick(t), 'text-anchor="middle"'));
  body.push(
    `<path d="M${MARGIN.left} ${MARGIN.top}V${px(MARGIN.top + plotH)}H${px(width - MARGIN.right)}" fill="none" stroke="#333"/>`,
  );
  body.push(text(MARGIN.left + plotW / 2, height - 30, options.xLabel, 'text-anchor="middle"'));
  body.push(
    text(
      14,
      MARGIN.top + plotH / 2,
      options.yLabel,
      `text-anchor="middle" transform="rotate(-90 14 ${px(MARGIN.top + plotH / 2)})"`,
    ),
  );
  if (options.threshold) {
    const y = sy(options.threshold.y);
    body.push(
      `<line x1="${MARGIN.left}" x2="${px(width - MARGIN.right)}" y1="${px(y)}" y2="${px(y)}" stroke="#c00" stroke-dasharray="4 3"/>`,
    );
    body.push(text(width - MARGIN.right - 4, y - 4, options.threshold.label, 'text-anchor="end" fill="#c00"'));
  }
  for (const series of options.series) {
    const drawn = series.points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (drawn.length > 1) {
      const d = drawn.map((p, i) => `${i === 0 ? "M" : "L"}${px(sx(p.x))} ${px(sy(p.y))}`).join("");
      body.push(`<path d="${d}" fill="none" stroke="${series.color}" stroke-width="2"/>`);
    }
    for (const p of drawn) {
      if (p.low !== undefined && p.high !== undefined && p.high > p.low) {
        body.push(
          `<line x1="${px(sx(p.x))}" x2="${px(sx(p.x))}" y1="${px(sy(p.low))}" y2="${px(sy(p.high))}" stroke="${series.color}" stroke-width="1.5"/>`,
        );
      }
      const fill = p.failed ? "#fff" : series.color;
      body.push(
        `<circle cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="3.5" fill="${fill}" stroke="${series.color}" stroke-width="1.5"/>`,
      );
    }
  }
  body.push(...legendRow(options.series, MARGIN.left, height - 10));
  return frame(width, height, options.title, body);
}

export function stackedBarChart(options: BarChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const totals = options.groups.flatMap((g) =>
    g.bars.map((b) => b.segments.reduce((sum, s) => sum + (Number.isFinite(s.value) ? Math.max(0, s.value) : 0), 0)),
  );
  const ticks = niceTicks(0, Math.max(...totals, 1) * 1.05);
  const yMax = Math.max(ticks.at(-1)!, ...totals);
  const sy = (y: number) => MARGIN.top + plotH - (y / (yMax || 1)) * plotH;
  const body: string[] = [];
  for (const t of ticks) {
    body.push(
      `<line x1="${MARGIN.left}" x2="${px(width - MARGIN.right)}" y1="${px(sy(t))}" y2="${px(sy(t))}" stroke="#e5e5e5"/>`,
    );
    body.push(text(MARGIN.left - 6, sy(t) + 4, formatTick(t), 'text-anchor="end"'));
  }
  const groupW = plotW / Math.max(1, options.groups.length);
  options.groups.forEach((group, gi) => {
    const barW = Math.min(48, (groupW * 0.8) / Math.max(1, group.bars.length));
    const start = MARGIN.left + gi * groupW + (groupW - barW * group.bars.length) / 2;
    group.bars.forEach((bar, bi) => {
      const x = start + bi * barW;
      let base = 0;
      for (const segment of bar.segments) {
        const value = Number.isFinite(segment.value) ? Math.max(0, segment.value) : 0;
        if (value === 0) continue;
        const y0 = sy(base);
        const y1 = sy(base + value);
        body.push(
          `<rect x="${px(x + 1)}" y="${px(y1)}" width="${px(barW - 2)}" height="${px(y0 - y1)}" fill="${segment.color}"><title>${escapeXml(`${bar.label} ${segment.name}: ${formatTick(value)}`)}</title></rect>`,
        );
        base += value;
      }
      body.push(text(x + barW / 2, sy(base) - 3, formatTick(base), 'text-anchor="middle" font-size="10"'));
      body.push(text(x + barW / 2, MARGIN.top + plotH + 13, bar.label, 'text-anchor="middle" font-size="10"'));
    });
    body.push(
      text(MARGIN.left + gi * groupW + groupW / 2, MARGIN.top + plotH + 28, group.label, 'text-anchor="middle"'),
    );
  });
  body.push(
    `<path d="M${MARGIN.left} ${MARGIN.top}V${px(MARGIN.top + plotH)}H${px(width - MARGIN.right)}" fill="none" stroke="#333"/>`,
  );
  body.push(
    text(
      14,
      MARGIN.top + plotH / 2,
      options.yLabel,
      `text-anchor="middle" transform="rotate(-90 14 ${px(MARGIN.top + plotH / 2)})"`,
    ),
  );
  body.push(...legendRow(options.legend, MARGIN.left, height - 10));
  return frame(width, height, options.title, body);
}
