import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestCluster } from "../support/cluster";
import { ensureWebBuilt, launchChromium, recordAttribute, recordedAttribute, requireChromium } from "../support/web";

/**
 * The web client (apps/web, built by vite, served by nginx on the web port) in real Chromium against a real 3+3
 * cluster: streaming, gateway SIGKILL mid-answer, reload mid-answer, stop, provider error and retry, reopening an
 * old conversation. Answers are compared with GET /api/history byte for byte (the raw text is on `data-raw`).
 */

const BADGE = "[data-testid=connection-badge]";
const ANSWER = "[data-testid=assistant-message]";
const STEP_MS = 20_000;

interface StoredMessage {
  role: string;
  content: string;
  status: string;
  streamId?: string;
}

/** GET /api/history from inside the page, with the page's own token. */
async function history(page: Page, conversationId: string): Promise<StoredMessage[]> {
  return page.evaluate(async (id) => {
    const token = JSON.parse(localStorage.getItem("chatgrid.v1.token") ?? "null") as string;
    const response = await fetch(`/api/history?conversationId=${encodeURIComponent(id)}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!response.ok) throw new Error(`history: ${response.status}`);
    return ((await response.json()) as { messages: StoredMessage[] }).messages;
  }, conversationId);
}

async function storedAnswer(page: Page, conversationId: string, streamId: string): Promise<StoredMessage> {
  const message = (await history(page, conversationId)).find((m) => m.streamId === streamId);
  if (!message) throw new Error(`stream ${streamId} is not in the history of ${conversationId}`);
  return message;
}

function answerOf(page: Page, streamId: string): Locator {
  return page.locator(`${ANSWER}[data-stream-id="${streamId}"]`);
}

async function waitForStatus(answer: Locator, status: string, timeout = STEP_MS): Promise<void> {
  await answer.and(answer.page().locator(`[data-status="${status}"]`)).waitFor({ timeout });
}

/** Waits until the answer's last applied seq reaches `seq` (the answer is visibly streaming). */
async function waitForSeq(page: Page, streamId: string, seq: number): Promise<void> {
  await page.waitForFunction(
    ({ streamId, seq }) => {
      const el = document.querySelector(`[data-testid=assistant-message][data-stream-id="${streamId}"]`);
      return el !== null && Number(el.getAttribute("data-seq")) >= seq;
    },
    { streamId, seq },
    { timeout: STEP_MS },
  );
}

/** New chat, type the message, press Enter; resolves with the answer's stream id once it exists. */
async function ask(page: Page, message: string, newChat = true): Promise<{ streamId: string; answer: Locator }> {
  if (newChat) await page.getByTestId("new-chat").click();
  const before = await page.locator(`${ANSWER}[data-stream-id]:not([data-stream-id=""])`).count();
  await page.locator("#composer-input").fill(message);
  await page.locator("#composer-input").press("Enter");
  const answer = page.locator(`${ANSWER}[data-stream-id]:not([data-stream-id=""])`).nth(before);
  await answer.waitFor({ timeout: STEP_MS });
  const streamId = (await answer.getAttribute("data-stream-id"))!;
  return { streamId, answer: answerOf(page, streamId) };
}

async function conversationId(page: Page): Promise<string> {
  return (await page.getByTestId("messages").getAttribute("data-conversation-id"))!;
}

/** The answer as rendered (raw text) equals the stored answer exactly, with the same final status. */
async function expectSameAsHistory(page: Page, streamId: string, status: string): Promise<string> {
  const answer = answerOf(page, streamId);
  const raw = (await answer.getAttribute("data-raw")) ?? "";
  const stored = await storedAnswer(page, await conversationId(page), streamId);
  expect(raw).toBe(stored.content);
  expect(stored.status).toBe(status);
  return raw;
}

describe("web client in Chromium against a 3+3 cluster behind nginx", () => {
  let cluster: TestCluster;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    requireChromium();
    const webRoot = ensureWebBuilt();
    [cluster, browser] = await Promise.all([
      TestCluster.start({
        gateways: 3,
        aiNodes: 3,
        nginx: true,
        restart: true,
        webRoot,
        // Slow enough to interrupt: 120 tokens take 8 s.
        env: { DEMO_TOKENS_PER_SECOND: "15" },
      }),
      launchChromium(),
    ]);
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(cluster.runner.urls.web);
    await page.locator(`${BADGE}[data-state=connected]`).waitFor({ timeout: STEP_MS });
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  it("sends with Enter and renders the answer as it streams, with its gateway and AI node", async () => {
    await expect(page.getByTestId("empty-state").isVisible()).resolves.toBe(true);
    const { streamId, answer } = await ask(page, "Hello from Chromium\nsecond line [demo:tokens=45]");
    await waitForSeq(page, streamId, 3);
    const partial = (await answer.getAttribute("data-raw")) ?? "";
    expect(partial.length).toBeGreaterThan(0);
    expect(await answer.getAttribute("data-status")).toBe("streaming");
    await waitForStatus(answer, "complete");
    const raw = await expectSameAsHistory(page, streamId, "complete");
    expect(raw.length).toBeGreaterThan(partial.length);
    expect(raw.startsWith(partial)).toBe(true);
    // The multi-node view: which gateway delivered it and which AI node wrote it.
    const node = await page.locator(BADGE).getAttribute("data-node");
    expect(node).toMatch(/^gateway-\d$/);
    expect(await answer.getAttribute("data-via")).toBe(node);
    expect(await answer.getAttribute("data-ai-node")).toMatch(/^ai-\d$/);
    await expect(answer.locator(".route").textContent()).resolves.toContain(node!);
    // The title is the first line of the first message; the list is newest first.
    await expect(page.locator(".conversation").first().textContent()).resolves.toContain("Hello from Chromium");
    // The user message kept its line break.
    await expect(page.getByTestId("user-message").last().textContent()).resolves.toContain("second line");
  });

  it("SIGKILL of the gateway serving the page mid-answer: reconnecting, then the answer completes equal to history", async () => {
    const { streamId } = await ask(page, "[demo:tokens=120] a long answer to survive a gateway kill");
    await waitForSeq(page, streamId, 10);
    const victim = (await page.locator(BADGE).getAttribute("data-node"))!;
    expect(victim).toMatch(/^gateway-\d$/);
    await recordAttribute(page, BADGE, "data-state");
    await recordAttribute(page, BADGE, "data-node");

    await cluster.runner.node(victim).kill("SIGKILL");

    await page.waitForFunction(
      () =>
        (window as unknown as { __seen: Record<string, string[]> }).__seen[
          "[data-testid=connection-badge]@data-state"
        ]?.includes("reconnecting"),
      undefined,
      { timeout: STEP_MS },
    );
    await page.locator(`${BADGE}:is([data-state=resumed],[data-state=connected])`).waitFor({ timeout: STEP_MS });
    const answer = answerOf(page, streamId);
    await waitForStatus(answer, "complete", 30_000);
    const raw = await expectSameAsHistory(page, streamId, "complete");
    expect(raw.split(" ").length).toBeGreaterThanOrEqual(120);

    const states = await recordedAttribute(page, BADGE, "data-state");
    expect(states.slice(0, 2)).toEqual(["connected", "reconnecting"]);
    expect(states).toContain("resumed");
    // The socket moved to another gateway, and the answer shows both.
    const nodes = (await recordedAttribute(page, BADGE, "data-node")).filter(Boolean);
    const survivor = nodes.at(-1)!;
    expect(survivor).not.toBe(victim);
    expect((await answer.getAttribute("data-via"))?.split(",")).toEqual([victim, survivor]);
    // The node panel tells the story.
    await page.getByTestId("panel-toggle").click();
    const log = await page.getByTestId("node-log").textContent();
    expect(log).toContain(`welcome from ${survivor}`);
    expect(log).toMatch(/socket closed: 1006/);
    await page.getByTestId("panel-toggle").click();
  });

  it("a reload mid-answer continues the answer from the saved text and seq", async () => {
    const { streamId } = await ask(page, "[demo:tokens=120] an answer that outlives a page reload");
    await waitForSeq(page, streamId, 10);
    await page.reload();
    const answer = answerOf(page, streamId);
    await answer.waitFor({ timeout: STEP_MS });
    // Right after the reload it shows the saved text (not an empty answer) and keeps streaming.
    expect(((await answer.getAttribute("data-raw")) ?? "").length).toBeGreaterThan(0);
    await waitForStatus(answer, "complete", 30_000);
    await expectSameAsHistory(page, streamId, "complete");
    // The new page resumed it in its hello, from the text and seq it had saved (not from the beginning).
    await page.getByTestId("panel-toggle").click();
    await expect(page.getByTestId("node-log").textContent()).resolves.toContain(
      "hello with token, resuming 1 stream(s)",
    );
    await page.getByTestId("panel-toggle").click();
    // Nothing of it is left in storage as unfinished, once the store's throttled save (250 ms) has run: awaited,
    // since "complete" is on screen before that save.
    await page
      .waitForFunction((id) => !(localStorage.getItem("chatgrid.v1.openStreams") ?? "[]").includes(id), streamId, {
        timeout: STEP_MS,
      })
      .catch(() => undefined);
    const saved = await page.evaluate(() => localStorage.getItem("chatgrid.v1.openStreams"));
    expect(saved ?? "[]").not.toContain(streamId);
  });

  it("Stop (button, and Esc) cancels: the answer shows as stopped, as history has it", async () => {
    const first = await ask(page, "[demo:tokens=200] stop me with the button");
    await waitForSeq(page, first.streamId, 5);
    await page.getByTestId("stop-button").click();
    await waitForStatus(first.answer, "cancelled");
    await expect(first.answer.getByTestId("message-status").textContent()).resolves.toContain("Stopped");
    await expectSameAsHistory(page, first.streamId, "cancelled");

    const second = await ask(page, "[demo:tokens=200] stop me with Escape", false);
    await waitForSeq(page, second.streamId, 3);
    await page.keyboard.press("Escape");
    await waitForStatus(second.answer, "cancelled");
    await expectSameAsHistory(page, second.streamId, "cancelled");
    await page.getByTestId("send-button").waitFor({ timeout: STEP_MS });
  });

  it("a provider error is shown with a Retry button that asks again", async () => {
    const { streamId, answer } = await ask(page, "[demo:error] this one fails on purpose");
    await waitForStatus(answer, "error");
    await expect(answer.locator(".msg-banner.error").textContent()).resolves.toContain("provider_error");
    await expectSameAsHistory(page, streamId, "error");
    await answer.getByTestId("retry-button").click();
    const retried = page.locator(`${ANSWER}[data-stream-id]:not([data-stream-id=""])`).last();
    await page.waitForFunction(
      (first) => {
        const all = document.querySelectorAll("[data-testid=assistant-message]");
        const last = all[all.length - 1];
        return last && last.getAttribute("data-stream-id") !== first && last.getAttribute("data-status") === "error";
      },
      streamId,
      { timeout: STEP_MS },
    );
    expect(await page.getByTestId("user-message").count()).toBe(2);
    expect(await retried.getAttribute("data-status")).toBe("error");
  });

  it("phone width, keyboard only: skip link, Enter and Shift+Enter, the drawer by keyboard, no sideways scroll", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
    try {
      const p = await phone.newPage();
      p.on("pageerror", (error) => pageErrors.push(error.message));
      await p.goto(cluster.runner.urls.web);
      await p.locator(`${BADGE}[data-state=connected]`).waitFor({ timeout: STEP_MS });
      const focused = () => p.evaluate(() => document.activeElement?.id || document.activeElement?.className || "");
      await p.keyboard.press("Tab");
      expect(await focused()).toBe("skip-link");
      await p.keyboard.press("Enter");
      expect(await focused()).toBe("composer-input");
      await p.keyboard.type("Hi from a phone [demo:tokens=8]");
      await p.keyboard.press("Enter");
      await p.locator(`${ANSWER}[data-status=complete]`).waitFor({ timeout: STEP_MS });
      // Shift+Enter is a new line, not a send.
      await p.keyboard.type("line one");
      await p.keyboard.press("Shift+Enter");
      await p.keyboard.type("line two");
      expect(await p.locator("#composer-input").inputValue()).toBe("line one\nline two");
      expect(await p.getByTestId("user-message").count()).toBe(1);
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      // The conversation list is a drawer: the menu button opens it with the focus inside, Esc closes it.
      await expect(p.locator("#sidebar").isVisible()).resolves.toBe(false);
      await p.locator(".menu-button").focus();
      await p.keyboard.press("Enter");
      await p.locator("#sidebar").waitFor({ state: "visible", timeout: STEP_MS });
      expect(await focused()).toContain("new-chat");
      await expect(p.locator(".conversation-title").first().textContent()).resolves.toBe(
        "Hi from a phone [demo:tokens=8]",
      );
      await p.keyboard.press("Escape");
      await p.locator("#sidebar").waitFor({ state: "hidden", timeout: STEP_MS });
      expect(await focused()).toContain("menu-button");
    } finally {
      await phone.close();
    }
  });

  it("after a reload, the conversation list is there (newest first) and an old conversation reopens", async () => {
    await page.reload();
    await page.locator(`${BADGE}[data-state=connected]`).waitFor({ timeout: STEP_MS });
    const titles = await page.locator(".conversation-title").allTextContents();
    expect(titles).toEqual([
      "[demo:error] this one fails on purpose",
      "[demo:tokens=200] stop me with the button",
      "[demo:tokens=120] an answer that outlives a page reload",
      "[demo:tokens=120] a long answer to survive a gateway kill",
      "Hello from Chromium",
    ]);
    // The open conversation came back too.
    expect(await page.locator(".conversation[aria-current=page] .conversation-title").textContent()).toBe(titles[0]);
    await page.locator(".conversation", { hasText: "Hello from Chromium" }).click();
    const answer = page.locator(ANSWER).first();
    await waitForStatus(answer, "complete");
    const streamId = (await answer.getAttribute("data-stream-id"))!;
    await expectSameAsHistory(page, streamId, "complete");
    expect(pageErrors).toEqual([]);
  });
});
