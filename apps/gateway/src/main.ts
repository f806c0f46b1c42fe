import { runNode } from "@chatgrid/broker";
import { loadGatewayConfig } from "./config";
import { startGatewayNode } from "./gateway-node";

/** Entry point: configuration from the environment, then run until SIGTERM/SIGINT (graceful: sockets get 1012). */
void runNode("gateway", () => loadGatewayConfig(), startGatewayNode);
