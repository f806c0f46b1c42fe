import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { appHealthCheck } from "../images";
import type { NodeSpec } from "../topology";
import { requireNodeGroup, serviceContainer } from "./common";

export interface GatewayGroupArgs {
  /** The topology's gateways: name, host (the network alias), ports and whole environment (AI node list included). */
  nodes: NodeSpec[];
  /** The gateway image (built from apps/gateway/Dockerfile). */
  image: pulumi.Input<string>;
  networkName: pulumi.Input<string>;
  /** The fixed address of each gateway, in the order of `nodes`. */
  addresses: string[];
  /** Prepended to each node name to name its container (`chatgrid` → `chatgrid-gateway-1`). */
  containerPrefix: string;
  /** Environment the topology does not carry: REDIS_PASSWORD and CLUSTER_SECRET (secrets). */
  secretEnv?: Record<string, pulumi.Input<string>>;
}

/**
 * N gateways, one container each. Nothing is published: browsers reach them through nginx (ip_hash), operators
 * reach /metrics inside the network.
 */
export class GatewayGroup extends pulumi.ComponentResource {
  readonly containers: docker.Container[];
  readonly nodeNames: string[];

  constructor(name: string, args: GatewayGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:GatewayGroup", name, {}, opts);
    requireNodeGroup("GatewayGroup", "gateway", "gateway", args.nodes, args.addresses);
    for (const node of args.nodes) {
      if (!node.env.AI_SERVICE_URLS && node.env.AI_DISCOVERY !== "true") {
        throw new Error(`GatewayGroup: ${node.name} has neither AI_SERVICE_URLS nor AI_DISCOVERY=true`);
      }
      if (node.env.PORT !== String(node.port) || node.env.METRICS_PORT !== String(node.metricsPort)) {
        throw new Error(`GatewayGroup: ${node.name}'s PORT/METRICS_PORT differ from the topology's ports`);
      }
    }

    this.nodeNames = args.nodes.map((node) => node.name);
    this.containers = args.nodes.map((node, index) => {
      const containerName = `${args.containerPrefix}-${node.name}`;
      return serviceContainer(
        containerName,
        {
          containerName,
          image: args.image,
          network: { networkName: args.networkName, ipv4Address: args.addresses[index]!, aliases: [node.host] },
          env: { ...node.env, ...args.secretEnv },
          healthCheck: { tests: ["CMD", ...appHealthCheck.gateway], startPeriod: "15s" },
          labels: { "chatgrid.role": "gateway", "chatgrid.node": node.name },
          // SHUTDOWN_GRACE_MS (10 s by default): sockets get 1012, in-flight REST calls finish.
          stopTimeout: 15,
        },
        { parent: this },
      );
    });
    this.registerOutputs({ nodeNames: this.nodeNames });
  }
}
