import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { requireDnsName } from "./common";

export interface ChatgridNetworkArgs {
  /** The Docker network's name. */
  name: string;
  /** An IPv4 /16, e.g. `172.20.0.0/16`. */
  subnet: string;
}

/** A service with one container, or a node of a group (index from 0). */
export type AddressSlot = { role: "redis" | "kafka" | "nginx" | "web" } | { role: "gateway" | "ai"; index: number };

/** Most nodes a group can have on the address plan (one /24 each). */
export const MAX_NODES_PER_GROUP = 250;

const SUBNET = /^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/;

/**
 * The fixed address plan of a /16: services in x.y.0.10–21, gateways in x.y.1.N, AI nodes in x.y.2.N. Docker hands
 * out addresses for anything else from x.y.128.0/17 only, so the two never meet. Fixed addresses matter because nginx
 * resolves its upstream names once, when it starts: a gateway replaced by `pulumi up` comes back at the same address.
 */
export function addressPlan(subnet: string): {
  gateway: string;
  dynamicRange: string;
  address(slot: AddressSlot): string;
} {
  const match = SUBNET.exec(subnet);
  const [a, b] = [Number(match?.[1]), Number(match?.[2])];
  if (!match || a > 255 || b > 255) {
    throw new Error(`ChatgridNetwork: subnet must be an IPv4 /16 written as a.b.0.0/16, got "${subnet}"`);
  }
  const prefix = `${a}.${b}`;
  const services = { redis: 10, kafka: 11, nginx: 20, web: 21 } as const;
  return {
    gateway: `${prefix}.0.1`,
    dynamicRange: `${prefix}.128.0/17`,
    address(slot) {
      if (slot.role === "gateway" || slot.role === "ai") {
        if (!Number.isInteger(slot.index) || slot.index < 0 || slot.index >= MAX_NODES_PER_GROUP) {
          throw new Error(`ChatgridNetwork: ${slot.role} index ${slot.index} is outside 0..${MAX_NODES_PER_GROUP - 1}`);
        }
        return `${prefix}.${slot.role === "gateway" ? 1 : 2}.${slot.index + 1}`;
      }
      return `${prefix}.0.${services[slot.role]}`;
    },
  };
}

/** The stack's bridge network: every container joins it with a fixed address and its topology host name. */
export class ChatgridNetwork extends pulumi.ComponentResource {
  readonly network: docker.Network;
  /** The network's name, for containers to join (known once it exists, so they are created after it). */
  readonly networkName: pulumi.Output<string>;
  readonly subnet: string;
  private readonly plan: ReturnType<typeof addressPlan>;

  constructor(name: string, args: ChatgridNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:docker:Network", name, {}, opts);
    requireDnsName("ChatgridNetwork", "name", args.name);
    this.plan = addressPlan(args.subnet);
    this.subnet = args.subnet;
    this.network = new docker.Network(
      args.name,
      {
        name: args.name,
        driver: "bridge",
        ipamConfigs: [{ subnet: args.subnet, gateway: this.plan.gateway, ipRange: this.plan.dynamicRange }],
        labels: [{ label: "chatgrid.stack", value: pulumi.getStack() }],
      },
      { parent: this },
    );
    this.networkName = this.network.name;
    this.registerOutputs({ networkName: this.networkName, subnet: this.subnet });
  }

  /** The fixed address of a service or node on this network. */
  address(slot: AddressSlot): string {
    return this.plan.address(slot);
  }
}
