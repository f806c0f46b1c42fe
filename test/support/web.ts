import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { ensureBinaries, REPO_ROOT } from "../../infra/runner";

/** The Debian Chromium the browser tests drive (playwright-core never downloads a browser here). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const WEB_DIR = join(REPO_ROOT, "apps", "web");
export const WEB_DIST = join(WEB_DIR, "dist");

/** Fails (never skips) when Chromium is missing, saying how to install it. */
export function requireChromium(): string {
  // As root on Debian the same install step as npm start's: apt-get, once (a no-op when it is there).
  if (!process.env.CHROMIUM_PATH && !existsSync(CHROMIUM)) {
    try {
      ensureBinaries(["chromium"]);
    } catch {
      // Reported below with the test's own message.
    }
  }
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: the web client's browser tests need it. Install it with ` +
        "`apt-get install -y chromium` (or set CHROMIUM_PATH).",
    );
  }
  return CHROMIUM;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: requireChromium(),
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) {
    if (entry === "node_modules" || entry === "dist") continue;
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

/**
 * Builds apps/web (vite build) when dist is missing or older than its sources or the protocol package, so
 * `npm test` on a fresh checkout tests the current client. Returns the directory nginx serves.
 */
export function ensureWebBuilt(): string {
  const built = existsSync(join(WEB_DIST, "index.html")) ? statSync(join(WEB_DIST, "index.html")).mtimeMs : 0;
  const sources = Math.max(
    newestMtime(join(WEB_DIR, "src")),
    newestMtime(join(WEB_DIR, "public")),
    newestMtime(join(WEB_DIR, "index.html")),
    newestMtime(join(WEB_DIR, "vite.config.ts")),
    newestMtime(join(REPO_ROOT, "packages", "protocol", "src")),
  );
  if (built < sources) {
    try {
      execFileSync(
        process.execPath,
        [join(REPO_ROOT, "node_modules", "vite", "bin", "vite.js"), "build", "--logLevel", "warn"],
        {
          cwd: WEB_DIR,
          stdio: "pipe",
          timeout: 110_000,
        },
      );
    } catch (error) {
      const output = (error as { stderr?: Buffer; stdout?: Buffer }).stderr?.toString() ?? "";
      throw new Error(`building the web client failed (run npm run build to see why):\n${output.slice(-2000)}`);
    }
  }
  return WEB_DIST;
}

/**
 * Records every value an element attribute takes, from now on, in the page (a MutationObserver): a state that
 * lasts a few hundred milliseconds is seen without polling.
 */
export async function recordAttribute(page: Page, selector: string, attribute: string): Promise<void> {
  await page.evaluate(
    ({ selector, attribute }) => {
      const element = document.querySelector(selector);
      if (!element) throw new Error(`no ${selector}`);
      const seen: string[] = [element.getAttribute(attribute) ?? ""];
      (window as unknown as { __seen: Record<string, string[]> }).__seen ??= {};
      (window as unknown as { __seen: Record<string, string[]> }).__seen[`${selector}@${attribute}`] = seen;
      new MutationObserver(() => {
        const value = element.getAttribute(attribute) ?? "";
        if (seen[seen.length - 1] !== value) seen.push(value);
      }).observe(element, { attributes: true, attributeFilter: [attribute] });
    },
    { selector, attribute },
  );
}

/** The values recorded by recordAttribute, in order. */
export function recordedAttribute(page: Page, selector: string, attribute: string): Promise<string[]> {
  return page.evaluate(
    (key) => (window as unknown as { __seen?: Record<string, string[]> }).__seen?.[key] ?? [],
    `${selector}@${attribute}`,
  );
}
