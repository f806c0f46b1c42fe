/** Reading the apps' own /metrics (Prometheus text exposition) in the benchmark's scenarios. */

/**
 * The value of the first sample whose name ends with `suffix` (a role's prefix differs: `chatgrid_gateway_process_`
 * and `chatgrid_ai_process_` for the default metrics), or undefined when there is none or it is not a number.
 */
export function sampleValue(text: string, suffix: string): number | undefined {
  const line = text.split("\n").find((l) => !l.startsWith("#") && l.split(" ")[0]!.endsWith(suffix));
  const value = line === undefined ? Number.NaN : Number(line.split(" ")[1]);
  return Number.isFinite(value) ? value : undefined;
}
