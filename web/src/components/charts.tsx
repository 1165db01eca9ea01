/** Bar charts as plain SVG: no chart library, nothing fetched, printable, and each chart says what it shows. */
import type { Bucket, Series } from "../chart-types.ts";

export type { Bucket, Series };

const WIDTH = 560;
const HEIGHT = 220;
const PAD = { left: 40, right: 8, top: 10, bottom: 36 };

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

/**
 * Bars per bucket, stacked (parts of one total) or grouped (side by side for comparison). `format` renders
 * axis values (counts by default). The accessible name lists every bucket's values.
 */
export function BarChart({
  title,
  series,
  buckets,
  mode = "stacked",
  format = (value: number) => String(Math.round(value * 10) / 10),
}: {
  title: string;
  series: Series[];
  buckets: Bucket[];
  mode?: "stacked" | "grouped";
  format?: (value: number) => string;
}) {
  const totals = buckets.map((bucket) =>
    mode === "stacked" ? bucket.values.reduce((sum, value) => sum + value, 0) : Math.max(0, ...bucket.values),
  );
  const max = niceMax(Math.max(0, ...totals));
  const plotWidth = WIDTH - PAD.left - PAD.right;
  const plotHeight = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotWidth / Math.max(1, buckets.length);
  const barWidth = Math.max(2, slot * 0.7);
  const y = (value: number) => PAD.top + plotHeight - (value / max) * plotHeight;
  const labelEvery = Math.ceil(buckets.length / 10);
  const description = buckets
    .map(
      (bucket) =>
        `${bucket.label}: ${series.map((entry, i) => `${entry.label} ${format(bucket.values[i] ?? 0)}`).join(", ")}`,
    )
    .join("; ");
  return (
    <figure>
      <figcaption>{title}</figcaption>
      <svg
        class="chart"
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="img"
        aria-label={`${title}. ${description || "No data"}`}
      >
        {[0, 0.5, 1].map((fraction) => (
          <g key={fraction}>
            <line
              x1={PAD.left}
              x2={WIDTH - PAD.right}
              y1={y(max * fraction)}
              y2={y(max * fraction)}
              stroke="#d0d7de"
              stroke-dasharray={fraction === 0 ? undefined : "3 3"}
            />
            <text x={PAD.left - 4} y={y(max * fraction) + 4} text-anchor="end">
              {format(max * fraction)}
            </text>
          </g>
        ))}
        {buckets.map((bucket, b) => {
          const x0 = PAD.left + b * slot + (slot - barWidth) / 2;
          let stacked = 0;
          return (
            <g key={bucket.label}>
              {bucket.values.map((value, s) => {
                if (value <= 0) return null;
                const color = series[s]?.color ?? "#888";
                if (mode === "stacked") {
                  const top = y(stacked + value);
                  const rect = (
                    <rect key={s} x={x0} y={top} width={barWidth} height={y(stacked) - top} fill={color}>
                      <title>{`${bucket.label} · ${series[s]?.label}: ${format(value)}`}</title>
                    </rect>
                  );
                  stacked += value;
                  return rect;
                }
                const width = barWidth / Math.max(1, series.length);
                return (
                  <rect
                    key={s}
                    x={x0 + s * width}
                    y={y(value)}
                    width={width}
                    height={y(0) - y(value)}
                    fill={color}
                  >
                    <title>{`${bucket.label} · ${series[s]?.label}: ${format(value)}`}</title>
                  </rect>
                );
              })}
              {b % labelEvery === 0 ? (
                <text x={x0 + barWidth / 2} y={HEIGHT - PAD.bottom + 14} text-anchor="middle">
                  {bucket.label}
                </text>
              ) : null}
            </g>
          );
        })}
        {buckets.length === 0 ? (
          <text x={WIDTH / 2} y={HEIGHT / 2} text-anchor="middle">
            No data in this period
          </text>
        ) : null}
      </svg>
      <ul class="legend" aria-hidden="true">
        {series.map((entry) => (
          <li key={entry.label}>
            <span class="swatch" style={{ background: entry.color }} />
            {entry.label}
          </li>
        ))}
      </ul>
    </figure>
  );
}
