import { loadGatewayConfig } from "./config";
import { startGatewayNode } from "./gateway-node";

/** Entry point: configuration from the environment, then run until SIGTERM/SIGINT (graceful: sockets get 1012). */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadGatewayConfig>;
  try {
    config = loadGatewayConfig();
  } catch (error) {
    console.error(`chatgrid gateway: ${(error as Error).message}`);
    process.exit(2);
  }
  const node = await startGatewayNode(config);
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
  console.error("chatgrid gateway failed to start:", error);
  process.exit(1);
});
