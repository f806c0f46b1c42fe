import { startAiNode } from "./ai-node";
import { loadAiConfig } from "./config";

/** Entry point: configuration from the environment, then run until SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadAiConfig>;
  try {
    config = loadAiConfig();
  } catch (error) {
    console.error(`chatgrid AI node: ${(error as Error).message}`);
    process.exit(2);
  }
  const node = await startAiNode(config);
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    node.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

void main().catch((error: unknown) => {
  console.error("chatgrid AI node failed to start:", error);
  process.exit(1);
});
