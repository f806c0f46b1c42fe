/**
 * The WebSocket Origin check: browsers always send Origin, so a page of another site cannot open a socket with
 * our users' cookies or tokens. Allowed: no Origin (not a browser), an allow-listed origin, or same-origin.
 */
export function isOriginAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[],
): boolean {
  if (!origin) return true;
  if (allowed.includes(origin) || allowed.includes("*")) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}
