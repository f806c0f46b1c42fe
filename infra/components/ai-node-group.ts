import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { appHealthCheck } from "../images";
import type { NodeSpec } from "../topology";
import { requireNodeGroup, serviceContainer } from "./common";

export interface AiNodeGroupArgs {
  /** The topology's AI nodes: name, host (the network alias), port and whole environment. */
  nodes: NodeSpec[];
  /** The AI node image (built from apps/ai/Dockerfile). */
  image: pulumi.Input<string>;
  networkName: pulumi.Input<string>;
  /** The fixed address of each node, in the order of `nodes`. */
  addresses: string[];
  /** Prepended to each node name to name its container (`chatgrid` → `chatgrid-ai-1`). */
  containerPrefix: string;
  /** Environment the topology does not carry, e.g. the provider's API key (a secret). */
  secretEnv?: Record<string, pulumi.Input<string>>;
}

/** M AI nodes, one container each, reachable only inside the network (nothing published). */
export class AiNodeGroup extends pulumi.ComponentResource {
  readonly containers: docker.Container[];
  readonly nodeNames: string[];

  constructor(name: string, args: AiNodeGroupArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:AiNodeGroup", name, {}, opts);
    requireNodeGroup("AiNodeGroup", "ai", "AI node", args.nodes, args.addresses);
    for (const node of args.nodes) {
      if (node.env.PORT !== String(node.port)) {
        throw new Error(
          `AiNodeGroup: ${node.name} listens on PORT=${node.env.PORT} but the topology says ${node.port}`,
        );
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
          healthCheck: { tests: ["CMD", ...appHealthCheck.ai], startPeriod: "15s" },
          labels: { "chatgrid.role": "ai", "chatgrid.node": node.name },
          // SHUTDOWN_GRACE_MS (10 s by default) to finish or hand over running streams, then exit.
          stopTimeout: 15,
        },
        { parent: this },
      );
    });
    this.registerOutputs({ nodeNames: this.nodeNames });
  }
}
