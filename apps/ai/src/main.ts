import { runNode } from "@chatgrid/broker";
import { startAiNode } from "./ai-node";
import { loadAiConfig } from "./config";

/** Entry point: configuration from the environment, then run until SIGTERM (running streams finish or move). */
void runNode(
  "AI node",
  () => loadAiConfig(),
  (config) => startAiNode(config),
);
