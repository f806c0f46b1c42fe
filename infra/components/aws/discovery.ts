import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { requireDnsName } from "../common";
import { awsTags, requireTags } from "./network";

// Cloud Map names for the nodes (docs/aws.md "Discovery"): one A record per node, TTL 10 s, so nginx (resolve) and
// the gateways follow a replaced task within seconds, and a new AI node needs no change to any gateway.

export const DEFAULT_NAMESPACE = "chatgrid.internal";
/** Seconds resolvers cache a node's address. */
export const DEFAULT_DNS_TTL = 10;

export interface AwsDiscoveryArgs {
  vpcId: pulumi.Input<string>;
  /** The private DNS namespace (a Route 53 private zone of the VPC), default "chatgrid.internal". */
  namespace?: string;
  /** One Cloud Map service per node: gateway-1…, ai-1…; DNS labels, unique. */
  nodeNames: string[];
  /** TTL of the A records, 1–300 s (default 10). */
  dnsTtl?: number;
  tags?: Record<string, string>;
}

const TYPE = "chatgrid:aws:Discovery";

function validate(args: AwsDiscoveryArgs): { namespace: string; ttl: number } {
  const namespace = args.namespace ?? DEFAULT_NAMESPACE;
  const labels = namespace.split(".");
  if (labels.length < 2 || namespace.length > 253) {
    throw new Error(
      `AwsDiscovery: namespace must be a DNS name of at least two labels (e.g. chatgrid.internal), got "${namespace}"`,
    );
  }
  for (const label of labels) requireDnsName("AwsDiscovery", "namespace label", label);
  const nodes = args.nodeNames ?? [];
  if (nodes.length === 0) throw new Error("AwsDiscovery: nodeNames needs at least one node");
  const seen = new Set<string>();
  for (const node of nodes) {
    requireDnsName("AwsDiscovery", "node name", node);
    if (seen.has(node)) throw new Error(`AwsDiscovery: node name ${node} is listed twice`);
    seen.add(node);
  }
  const ttl = args.dnsTtl ?? DEFAULT_DNS_TTL;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 300) {
    throw new Error(`AwsDiscovery: dnsTtl must be a whole number of seconds from 1 to 300, got ${ttl}`);
  }
  requireTags("AwsDiscovery", args.tags);
  return { namespace, ttl };
}

/**
 * A private DNS namespace in the VPC (`<name>`) and one Cloud Map service per node (`<name>-<node>`), each
 * `MULTIVALUE` with one A record (the task's address, registered by ECS through the service's `serviceRegistries`).
 * No health check config: ECS deregisters stopped tasks itself, and the custom-config threshold is deprecated.
 */
export class AwsDiscovery extends pulumi.ComponentResource {
  readonly namespace: aws.servicediscovery.PrivateDnsNamespace;
  readonly namespaceId: pulumi.Output<string>;
  /** The namespace's DNS name, e.g. "chatgrid.internal". */
  readonly namespaceName: string;
  readonly services: Readonly<Record<string, aws.servicediscovery.Service>>;
  readonly nodeNames: string[];

  constructor(name: string, args: AwsDiscoveryArgs, opts?: pulumi.ComponentResourceOptions) {
    const { namespace, ttl } = validate(args);
    super(TYPE, name, {}, opts);
    this.namespaceName = namespace;
    this.nodeNames = [...args.nodeNames];
    this.namespace = new aws.servicediscovery.PrivateDnsNamespace(
      name,
      {
        name: namespace,
        vpc: args.vpcId,
        description: "chatgrid node names (one A record per node)",
        tags: awsTags(TYPE, args.tags, name),
      },
      { parent: this },
    );
    this.namespaceId = this.namespace.id;
    const services: Record<string, aws.servicediscovery.Service> = {};
    for (const node of this.nodeNames) {
      const serviceName = `${name}-${node}`;
      services[node] = new aws.servicediscovery.Service(
        serviceName,
        {
          name: node,
          description: `chatgrid node ${node}`,
          dnsConfig: {
            namespaceId: this.namespace.id,
            routingPolicy: "MULTIVALUE",
            dnsRecords: [{ type: "A", ttl }],
          },
          // `pulumi destroy` deletes instances ECS has not deregistered yet instead of failing on them.
          forceDestroy: true,
          tags: awsTags(TYPE, args.tags, serviceName),
        },
        { parent: this },
      );
    }
    this.services = services;
    this.registerOutputs({
      namespaceId: this.namespaceId,
      namespaceName: this.namespaceName,
      serviceArns: Object.fromEntries(this.nodeNames.map((n) => [n, services[n]!.arn])),
    });
  }

  private require(node: string): aws.servicediscovery.Service {
    const service = this.services[node];
    if (!service) {
      throw new Error(`AwsDiscovery: no service for node "${node}" (known: ${this.nodeNames.join(", ")})`);
    }
    return service;
  }

  /** The ARN of a node's Cloud Map service, for its ECS service's `serviceRegistries.registryArn`. */
  serviceArn(node: string): pulumi.Output<string> {
    return this.require(node).arn;
  }

  /** The node's DNS name, `<node>.<namespace>`. */
  hostOf(node: string): string {
    this.require(node);
    return `${node}.${this.namespaceName}`;
  }
}
