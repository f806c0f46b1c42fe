import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { resolverAddress } from "./cidr";
import { awsTags, requireTags } from "./network";

// One security group per tier, no inline rules (docs/aws.md "Security groups"): every rule is its own resource, so a
// rule change never rewrites a whole group, and each one says why it exists.

export type SecurityTier = "alb" | "web" | "gateway" | "ai" | "redis" | "kafka";

export interface TierPorts {
  /** nginx in the web tasks (3000). */
  web: number;
  /** The gateways' HTTP/WebSocket port (8081). */
  gateway: number;
  /** The AI nodes' port (7001). */
  ai: number;
  /** Redis (6379). */
  redis: number;
  /** MSK with IAM auth (9098). */
  kafka: number;
}

export interface AwsSecurityGroupsArgs {
  vpcId: pulumi.Input<string>;
  /** The VPC's /16 (AwsNetwork.vpcCidr): the DNS rules go to its resolver, base + 2. */
  vpcCidr: string;
  ports: TierPorts;
  /** Whether the kafka group (and the rules to it) exist. */
  kafka: boolean;
  /** Whether the ALB has an HTTPS listener: 443 is open only then; 80 always (it redirects with a certificate). */
  certificate: boolean;
  tags?: Record<string, string>;
}

/** One rule: traffic into or out of `tier`'s group, from/to another tier's group or a CIDR. */
export interface RuleSpec {
  /** The rule's resource name suffix: `<component>-<tier>-<in|out>-<what>`. */
  name: string;
  tier: SecurityTier;
  direction: "ingress" | "egress";
  protocol: "tcp" | "udp";
  port: number;
  peer: { tier: SecurityTier } | { cidr: string };
  description: string;
}

const WORLD = "0.0.0.0/0";
const TYPE = "chatgrid:aws:SecurityGroups";

const GROUP_DESCRIPTIONS: Record<SecurityTier, string> = {
  alb: "chatgrid ALB: HTTP(S) from the internet, to nginx",
  web: "chatgrid web (nginx): from the ALB, to the gateways",
  gateway: "chatgrid gateways: from nginx, to the AI nodes, Redis and Kafka",
  ai: "chatgrid AI nodes: from the gateways, to Redis, Kafka and the LLM provider",
  redis: "chatgrid Redis (ElastiCache): from the gateways and AI nodes only",
  kafka: "chatgrid Kafka (MSK, IAM auth): from the gateways and AI nodes only",
};

const LABEL: Record<SecurityTier, string> = {
  alb: "the ALB",
  web: "nginx (web)",
  gateway: "the gateways",
  ai: "the AI nodes",
  redis: "Redis",
  kafka: "Kafka (MSK IAM)",
};

/**
 * Every rule of the groups, as data. The chain: internet → alb (80; 443 with a certificate) → web → gateway → ai;
 * redis and kafka only from gateway and ai. Egress is explicit (the provider removes AWS's allow-all default):
 * each hop to the next, the task tiers 443 anywhere (ECR, CloudWatch Logs, Secrets Manager, the LLM provider, via
 * the NAT) and DNS to the VPC resolver; redis and kafka have none.
 */
export function securityRules(
  ports: TierPorts,
  options: { kafka: boolean; certificate: boolean; resolver: string },
): RuleSpec[] {
  const rules: RuleSpec[] = [];
  const link = (from: SecurityTier, to: SecurityTier, port: number) => {
    rules.push({
      name: `${to}-in-${from}`,
      tier: to,
      direction: "ingress",
      protocol: "tcp",
      port,
      peer: { tier: from },
      description: `${LABEL[to]} port ${port} from ${LABEL[from]}`,
    });
    rules.push({
      name: `${from}-out-${to}`,
      tier: from,
      direction: "egress",
      protocol: "tcp",
      port,
      peer: { tier: to },
      description: `To ${LABEL[to]} port ${port}`,
    });
  };
  rules.push({
    name: "alb-in-http",
    tier: "alb",
    direction: "ingress",
    protocol: "tcp",
    port: 80,
    peer: { cidr: WORLD },
    description: options.certificate ? "HTTP from the internet (redirected to HTTPS)" : "HTTP from the internet",
  });
  if (options.certificate) {
    rules.push({
      name: "alb-in-https",
      tier: "alb",
      direction: "ingress",
      protocol: "tcp",
      port: 443,
      peer: { cidr: WORLD },
      description: "HTTPS from the internet",
    });
  }
  link("alb", "web", ports.web);
  link("web", "gateway", ports.gateway);
  link("gateway", "ai", ports.ai);
  for (const client of ["gateway", "ai"] as const) {
    link(client, "redis", ports.redis);
    if (options.kafka) link(client, "kafka", ports.kafka);
  }
  for (const task of ["web", "gateway", "ai"] as const) {
    rules.push({
      name: `${task}-out-https`,
      tier: task,
      direction: "egress",
      protocol: "tcp",
      port: 443,
      peer: { cidr: WORLD },
      description: "HTTPS out: ECR, CloudWatch Logs, Secrets Manager, the LLM provider (via the NAT)",
    });
    for (const protocol of ["udp", "tcp"] as const) {
      rules.push({
        name: `${task}-out-dns-${protocol}`,
        tier: task,
        direction: "egress",
        protocol,
        port: 53,
        peer: { cidr: `${options.resolver}/32` },
        description: `DNS (${protocol.toUpperCase()}) to the VPC resolver, for the Cloud Map names`,
      });
    }
  }
  return rules;
}

function validate(args: AwsSecurityGroupsArgs): string {
  const resolver = resolverAddress("AwsSecurityGroups", "vpcCidr", args.vpcCidr);
  for (const tier of ["web", "gateway", "ai", "redis", "kafka"] as const) {
    const port = args.ports?.[tier];
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`AwsSecurityGroups: ports.${tier} must be a port number from 1 to 65535, got ${port}`);
    }
  }
  for (const flag of ["kafka", "certificate"] as const) {
    if (typeof args[flag] !== "boolean") {
      throw new Error(`AwsSecurityGroups: ${flag} must be true or false, got "${args[flag]}"`);
    }
  }
  requireTags("AwsSecurityGroups", args.tags);
  return resolver;
}

export interface SecurityGroupIds {
  alb: pulumi.Output<string>;
  web: pulumi.Output<string>;
  gateway: pulumi.Output<string>;
  ai: pulumi.Output<string>;
  redis: pulumi.Output<string>;
  /** Only with `kafka: true`. */
  kafka: pulumi.Output<string> | undefined;
}

/**
 * The tiers' security groups (`<name>-<tier>`) and their rules (`<name>-<rule name>`, see `securityRules`):
 * `aws.vpc.SecurityGroupIngressRule` / `SecurityGroupEgressRule`, referencing the peer tier's group.
 */
export class AwsSecurityGroups extends pulumi.ComponentResource {
  readonly ids: SecurityGroupIds;
  readonly groups: Partial<Record<SecurityTier, aws.ec2.SecurityGroup>>;
  /** The rules as created, for the docs and the tests. */
  readonly rules: RuleSpec[];

  constructor(name: string, args: AwsSecurityGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
    const resolver = validate(args);
    super(TYPE, name, {}, opts);
    const parent = { parent: this };
    const tiers: SecurityTier[] = ["alb", "web", "gateway", "ai", "redis", ...(args.kafka ? ["kafka" as const] : [])];
    const groups: Partial<Record<SecurityTier, aws.ec2.SecurityGroup>> = {};
    for (const tier of tiers) {
      const groupName = `${name}-${tier}`;
      groups[tier] = new aws.ec2.SecurityGroup(
        groupName,
        {
          vpcId: args.vpcId,
          description: GROUP_DESCRIPTIONS[tier],
          tags: awsTags(TYPE, args.tags, groupName, { "chatgrid:tier": tier }),
        },
        parent,
      );
    }
    this.groups = groups;
    this.rules = securityRules(args.ports, { kafka: args.kafka, certificate: args.certificate, resolver });
    for (const rule of this.rules) {
      const ruleName = `${name}-${rule.name}`;
      const ruleArgs = {
        securityGroupId: groups[rule.tier]!.id,
        ipProtocol: rule.protocol,
        fromPort: rule.port,
        toPort: rule.port,
        ...("tier" in rule.peer
          ? { referencedSecurityGroupId: groups[rule.peer.tier]!.id }
          : { cidrIpv4: rule.peer.cidr }),
        description: rule.description,
        tags: awsTags(TYPE, args.tags, ruleName),
      };
      if (rule.direction === "ingress") new aws.vpc.SecurityGroupIngressRule(ruleName, ruleArgs, parent);
      else new aws.vpc.SecurityGroupEgressRule(ruleName, ruleArgs, parent);
    }
    this.ids = {
      alb: groups.alb!.id,
      web: groups.web!.id,
      gateway: groups.gateway!.id,
      ai: groups.ai!.id,
      redis: groups.redis!.id,
      kafka: groups.kafka?.id,
    };
    this.registerOutputs({ ...this.ids });
  }
}
