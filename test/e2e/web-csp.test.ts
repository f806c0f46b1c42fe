import type { Browser, BrowserContext, Page, Response } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECURITY_HEADERS } from "../../infra/nginx/render";
import { TestCluster } from "../support/cluster";
import { ensureWebBuilt, launchChromium, requireChromium } from "../support/web";

/**
 * The web client (apps/web, built) in real Chromium behind the rendered nginx, under the Content-Security-Policy and
 * the other security headers nginx adds: the app loads, connects its WebSocket and streams an answer with the
 * browser reporting no violation, while an injected inline script, eval and framing by another origin are refused.
 */

const BADGE = "[data-testid=connection-badge]";
const ANSWER = "[data-testid=assistant-message]";
const STEP_MS = 20_000;

interface Violation {
  directive: string;
  blockedURI: string;
  sample: string;
  /** Where the page did it: file and line, to find what needs more than the policy allows. */
  source: string;
}

/** Every `securitypolicyviolation` the page reports, from before its first script runs (init scripts bypass CSP). */
function recordViolations(): void {
  const seen: Violation[] = [];
  (window as unknown as { __cspViolations: Violation[] }).__cspViolations = seen;
  document.addEventListener("securitypolicyviolation", (event) => {
    seen.push({
      directive: event.effectiveDirective,
      blockedURI: event.blockedURI,
      sample: event.sample,
      source: `${event.sourceFile}:${event.lineNumber}:${event.columnNumber}`,
    });
  });
}

const violations = (page: Page) =>
  page.evaluate(() => (window as unknown as { __cspViolations: Violation[] }).__cspViolations);

function expectSecurityHeaders(response: Response, what: string): void {
  const headers = response.headers();
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    expect(headers[name.toLowerCase()], `${name} on ${what}`).toBe(value);
  }
}

describe("the web client under its Content-Security-Policy, in Chromium, behind nginx", () => {
  let cluster: TestCluster;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const refusals: string[] = [];
  const responses: Response[] = [];
  let pageResponse: Response | null;

  beforeAll(async () => {
    requireChromium();
    const webRoot = ensureWebBuilt();
    [cluster, browser] = await Promise.all([
      TestCluster.start({ gateways: 2, aiNodes: 1, nginx: true, webRoot }),
      launchChromium(),
    ]);
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    await page.addInitScript(recordViolations);
    page.on("pageerror", (error) => pageErrors.push(error.message));
    // Chromium also writes each refusal to the console ("Refused to execute inline script …").
    page.on("console", (message) => {
      if (message.text().includes("Refused to")) refusals.push(message.text());
    });
    page.on("response", (response) => responses.push(response));
    pageResponse = await page.goto(cluster.runner.urls.web);
    await page.locator(`${BADGE}[data-state=connected]`).waitFor({ timeout: STEP_MS });
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  it("the page, its scripts and styles, and the API carry the security headers", async () => {
    expect(pageResponse?.status()).toBe(200);
    expectSecurityHeaders(pageResponse!, "the page");
    const assets = responses.filter((r) => new URL(r.url()).pathname.startsWith("/assets/"));
    expect(assets.some((r) => r.url().endsWith(".js"))).toBe(true);
    expect(assets.some((r) => r.url().endsWith(".css"))).toBe(true);
    for (const asset of assets) expectSecurityHeaders(asset, asset.url());
    // The app's own API calls (the conversation list) pass through nginx with them too.
    // The conversation list is loaded after the socket's welcome: it may still be on its way.
    const isApi = (r: Response) => new URL(r.url()).pathname.startsWith("/api/");
    const api =
      responses.find(isApi) ?? (await page.waitForResponse(isApi, { timeout: STEP_MS }).catch(() => undefined));
    expect(api, "the page made no API call").toBeDefined();
    expectSecurityHeaders(api!, api!.url());
    // The API's own error bodies too (a JSON 401 from a gateway, passed through nginx).
    const unauthorized = await page.request.get(`${cluster.runner.urls.web}/api/conversations`);
    expect(unauthorized.status()).toBe(401);
    expect(unauthorized.headers()["x-content-type-options"]).toBe("nosniff");
  });

  it("the app works under the policy: connected over WebSocket, an answer streams to completion, no violation", async () => {
    await page.locator("#composer-input").fill("Hello under a strict CSP [demo:tokens=30]");
    await page.locator("#composer-input").press("Enter");
    const answer = page.locator(`${ANSWER}[data-stream-id]:not([data-stream-id=""])`).last();
    await answer.waitFor({ timeout: STEP_MS });
    await answer.and(page.locator("[data-status=complete]")).waitFor({ timeout: STEP_MS });
    const raw = (await answer.getAttribute("data-raw")) ?? "";
    expect(raw.split(" ").length).toBeGreaterThanOrEqual(30);
    // Any entry here is something the app does that the policy forbids: fix the app, not the policy.
    expect(await violations(page)).toEqual([]);
    expect(refusals).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it("an inline script injected into the page does not run, nor an inline handler, nor code from a string", async () => {
    const before = (await violations(page)).length;
    // Run by the page itself (code that DevTools evaluates is exempt from CSP's eval rule, not the page's timers).
    await page.evaluate(() => {
      const script = document.createElement("script");
      script.textContent = "window.__injected = true;";
      document.body.appendChild(script);
      const image = document.createElement("img");
      image.setAttribute("onerror", "window.__handler = true;");
      image.src = "data:,not-an-image";
      document.body.appendChild(image);
      // Code from a string, eval's twin: allowed only with 'unsafe-eval'.
      (setTimeout as (code: string, ms: number) => number)("window.__fromString = true;", 0);
    });
    await page.waitForFunction(
      (count) => (window as unknown as { __cspViolations: unknown[] }).__cspViolations.length >= count + 3,
      before,
      { timeout: STEP_MS },
    );
    const flags = await page.evaluate(() => {
      const w = window as unknown as { __injected?: boolean; __handler?: boolean; __fromString?: boolean };
      return { injected: w.__injected ?? false, handler: w.__handler ?? false, fromString: w.__fromString ?? false };
    });
    expect(flags).toEqual({ injected: false, handler: false, fromString: false });
    const refused = (await violations(page)).slice(before).map((v) => v.directive);
    expect(refused).toEqual(expect.arrayContaining(["script-src-elem", "script-src-attr", "script-src"]));
  });

  it("another origin cannot frame the app (frame-ancestors 'none')", async () => {
    const framer = await context.newPage();
    try {
      const refused = framer.waitForEvent("console", {
        predicate: (message) => message.text().includes("frame-ancestors"),
        timeout: STEP_MS,
      });
      // A page of no origin of ours (and without a policy of its own) frames the app.
      await framer.setContent(`<iframe src="${cluster.runner.urls.web}"></iframe>`);
      expect((await refused).text()).toContain("frame-ancestors 'none'");
      const child = framer.frames().find((f) => f !== framer.mainFrame());
      expect(
        await child
          ?.locator(BADGE)
          .count()
          .catch(() => 0),
      ).toBe(0);
    } finally {
      await framer.close();
    }
  });
});
