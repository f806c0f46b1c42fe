/**
 * The entry point shared by gateway and AI node processes: configuration from the environment (a bad value ends
 * the process with exit code 2 and the message), start, then a graceful stop on SIGTERM/SIGINT.
 */
export async function runNode<C>(
  what: string,
  loadConfig: () => C,
  start: (config: C) => Promise<{ stop(): Promise<void> }>,
): Promise<void> {
  let config: C;
  try {
    config = loadConfig();
  } catch (error) {
    console.error(`chatgrid ${what}: ${(error as Error).message}`);
    process.exit(2);
  }
  try {
    const node = await start(config);
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
  } catch (error) {
    console.error(`chatgrid ${what} failed to start:`, error);
    process.exit(1);
  }
}
