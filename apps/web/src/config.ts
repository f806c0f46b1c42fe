import { timeoutSignal } from "./timeout-signal";

/**
 * Where the API and WebSocket are. By default the page's own origin (nginx on the web port proxies /api/ and /ws/).
 * A deployment that serves the page elsewhere puts `/config.json` = `{"apiBase": "https://chat.example.com"}` next
 * to index.html.
 */
export interface Endpoints {
  /** Prefix for REST paths: "" (same origin) or an absolute origin without a trailing slash. */
  apiBase: string;
  /** The WebSocket URL. */
  wsUrl: string;
}

export function resolveEndpoints(config: unknown, location: { protocol: string; host: string }): Endpoints {
  const apiBase =
    typeof config === "object" && config !== null && "apiBase" in config && typeof config.apiBase === "string"
      ? config.apiBase.trim().replace(/\/+$/, "")
      : "";
  if (apiBase && /^https?:\/\//.test(apiBase)) {
    return { apiBase, wsUrl: `${apiBase.replace(/^http/, "ws")}/ws/chat` };
  }
  const wsProtocol = location.protocol === "https:" ? "wss:" : "ws:";
  return { apiBase: "", wsUrl: `${wsProtocol}//${location.host}/ws/chat` };
}

/** Fetches /config.json; absent, not JSON (the SPA fallback answers index.html) or slow: same origin. */
export async function loadEndpoints(fetchFn: typeof fetch, location: Location, timeoutMs = 3_000): Promise<Endpoints> {
  let config: unknown;
  try {
    const response = await fetchFn("/config.json", {
      cache: "no-store",
      signal: timeoutSignal(timeoutMs),
      headers: { accept: "application/json" },
    });
    if (response.ok && (response.headers.get("content-type") ?? "").includes("json")) config = await response.json();
  } catch {
    config = undefined;
  }
  return resolveEndpoints(config, location);
}
