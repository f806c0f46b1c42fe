/**
 * `node --import tsx scripts/screenshots.ts`: the README's screenshots of the web client (docs/screenshots/), taken
 * in Chromium against a real 3+3 cluster behind nginx. The AI nodes run the real OpenAI provider against a local
 * fake Chat Completions server that streams a fixed Markdown answer (headings, a list, a TypeScript block, a
 * table), because the demo model writes plain prose and the screenshots should show Markdown and code.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Page } from "playwright-core";
import { chunk, startFakeOpenAi } from "../apps/ai/src/providers/fake-openai-server";
import { ClusterRunner, REPO_ROOT } from "../infra/runner";
import { TEST_ENV } from "../test/support/cluster";
import { ensureWebBuilt, launchChromium } from "../test/support/web";

const OUT = join(REPO_ROOT, "docs", "screenshots");

const RECONNECT_ANSWER = `## Reconnecting without losing a word

A client that loses its socket does three things:

1. **Backs off** exponentially, with jitter, so a crowd does not come back in lockstep.
2. **Resumes** every unfinished stream from the last \`seq\` it applied.
3. **Ignores** any event whose \`seq\` is not above the last one seen.

\`\`\`ts
export function backoffDelay(attempt: number, random = Math.random): number {
  const ceiling = Math.min(10_000, 250 * 2 ** attempt);
  // "Equal jitter": somewhere in the upper half of the ceiling.
  return ceiling / 2 + random() * (ceiling / 2);
}
\`\`\`

| attempt | delay |
| --- | --- |
| 0 | 125–250 ms |
| 3 | 1–2 s |
| 6 and later | 5–10 s |

The gateways and Redis do the rest: any gateway can replay the stream from Redis.`;

const SHORT_ANSWERS: Record<string, string> = {
  ip_hash:
    "nginx hashes the first three octets of the client's IPv4 address to pick a gateway, so one browser keeps " +
    "landing on the same node. When that node is down, nginx tries the **next** one and the client resumes there.",
  roles:
    "| node | does |\n| --- | --- |\n| nginx | TLS, static files, sticky routing |\n| gateway | WebSocket, REST, resume |\n" +
    "| AI node | runs the model, writes chunks to Redis |\n| Redis | history, pub/sub, leases |",
};

const LONG_ANSWER = Array.from(
  { length: 12 },
  (_, i) =>
    `Part ${i + 1}. The gateway forwards every chunk in order while the AI node keeps a lease on its stream, and ` +
    "Redis keeps a bounded history, so a client that loses its socket resumes on any other node with nothing lost " +
    "and nothing repeated.",
).join("\n\n");

function answerFor(prompt: string): { text: string; wordsPerSecond: number } {
  if (/long story/i.test(prompt)) return { text: LONG_ANSWER, wordsPerSecond: 12 };
  if (/ip_hash/i.test(prompt)) return { text: SHORT_ANSWERS.ip_hash!, wordsPerSecond: 80 };
  if (/roles/i.test(prompt)) return { text: SHORT_ANSWERS.roles!, wordsPerSecond: 80 };
  return { text: RECONNECT_ANSWER, wordsPerSecond: 60 };
}

async function waitConnected(page: Page): Promise<void> {
  await page.locator("[data-testid=connection-badge]:is([data-state=connected],[data-state=resumed])").waitFor();
}

async function ask(page: Page, prompt: string, status = "complete"): Promise<void> {
  await page.getByTestId("new-chat").click();
  await page.locator("#composer-input").fill(prompt);
  await page.locator("#composer-input").press("Enter");
  await page.locator(`[data-testid=assistant-message][data-status=${status}]`).last().waitFor({ timeout: 30_000 });
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const webRoot = ensureWebBuilt();
  const fake = await startFakeOpenAi(async (exchange) => {
    const messages = (exchange.body.messages ?? []) as { role: string; content: string }[];
    const prompt = messages.at(-1)?.content ?? "";
    const { text, wordsPerSecond } = answerFor(prompt);
    exchange.startEvents();
    for (const piece of text.match(/\S+\s*|\s+/g) ?? []) {
      if (exchange.closed) return;
      exchange.data(chunk(piece));
      await sleep(1000 / wordsPerSecond);
    }
    exchange.data(chunk(null, "stop"));
    exchange.done();
    exchange.res.end();
  });
  const stateDir = mkdtempSync(join(tmpdir(), "chatgrid-shots-"));
  const { DEMO_TOKENS_PER_SECOND: _tps, DEMO_MAX_TOKENS: _max, ...nodeEnv } = TEST_ENV;
  const runner = await ClusterRunner.start({
    stateDir,
    nginx: true,
    restart: false,
    publicPortsMayBeFree: true,
    webRoot,
    topology: {
      gatewayNodes: 3,
      aiNodes: 3,
      provider: { kind: "openai", openaiBaseUrl: fake.baseUrl, openaiModel: "fake-model" },
      nodeEnv,
    },
    aiEnv: { OPENAI_API_KEY: "sk-local-fake" },
  });
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
    const page = await context.newPage();
    await page.goto(runner.urls.web);
    await waitConnected(page);
    await ask(page, "What does ip_hash do in front of the gateways?");
    await ask(page, "Which node roles are there?");
    await ask(page, "How should a chat client reconnect after losing its gateway?");
    await page.getByTestId("panel-toggle").click();
    await page.mouse.move(0, 0);
    await page.screenshot({ path: join(OUT, "light.png") });

    await page.getByTestId("panel-toggle").click();
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(OUT, "dark.png") });

    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.emulateMedia({ colorScheme: "light" });
    await phone.goto(runner.urls.web);
    await waitConnected(phone);
    await phone.locator("[data-testid=assistant-message][data-status=complete]").last().waitFor();
    await phone.locator(".code-block").scrollIntoViewIfNeeded();
    await phone.screenshot({ path: join(OUT, "phone.png") });
    await phone.close();

    // Reconnecting: a long answer mid-stream, then every gateway goes away (so the state lasts long enough to
    // photograph); the badge counts down to the next attempt, the panel shows the close and the backoff.
    await page.emulateMedia({ colorScheme: "light" });
    await page.getByTestId("new-chat").click();
    await page.locator("#composer-input").fill("Tell me a long story about resilient systems");
    await page.locator("#composer-input").press("Enter");
    await page.waitForFunction(
      () =>
        Number(
          document.querySelector("[data-testid=assistant-message][data-status=streaming]")?.getAttribute("data-seq"),
        ) >= 40,
      undefined,
      { timeout: 30_000 },
    );
    await page.getByTestId("panel-toggle").click();
    await Promise.all(runner.topology.gateways.map((g) => runner.node(g.name).kill("SIGKILL")));
    await page.locator(".connection-retry").waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(OUT, "reconnecting.png") });

    // And back: the gateways return, the answer resumes and completes.
    await Promise.all(runner.topology.gateways.map((g) => runner.node(g.name).start()));
    await page.getByRole("button", { name: "Retry now" }).click();
    await page.locator("[data-testid=assistant-message][data-status=complete]").last().waitFor({ timeout: 60_000 });
    console.log(`screenshots written to ${OUT}`);
  } finally {
    await browser.close();
    await runner.stop();
    await fake.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
