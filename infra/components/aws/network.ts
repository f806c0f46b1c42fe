import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { MAX_ZONES, parseSlash16, resolverAddress, subnetPlan } from "./cidr";

// The VPC of the aws stack (docs/aws.md "Network"): raw aws.ec2 resources, because awsx's Vpc is a remote component
// that creates nothing under the mocked engine. Zones and region come from the arguments: no invoke anywhere.

/** The tag that names the component a resource belongs to (docs/aws.md "Tags"). */
export const COMPONENT_TAG = "chatgrid:component";
/** Tags the components set themselves; a caller's tag of the same name is refused. */
const OWN_TAGS = ["Name", COMPONENT_TAG, "chatgrid:tier"];
/** AWS allows 50 tags per resource; the components add up to three. */
const MAX_CALLER_TAGS = 47;

/** Throws unless every tag is one AWS accepts and none is one the components set. */
export function requireTags(component: string, tags: Record<string, string> | undefined): void {
  const entries = Object.entries(tags ?? {});
  if (entries.length > MAX_CALLER_TAGS) {
    throw new Error(`${component}: at most ${MAX_CALLER_TAGS} tags, got ${entries.length}`);
  }
  for (const [key, value] of entries) {
    if (/^aws:/i.test(key)) throw new Error(`${component}: tag "${key}" uses the prefix "aws:", which AWS reserves`);
    if (OWN_TAGS.includes(key)) throw new Error(`${component}: tag "${key}" is set by the component`);
    if (key.length === 0 || key.length > 128) {
      throw new Error(`${component}: tag key "${key}" must have 1 to 128 characters`);
    }
    if (typeof value !== "string" || value.length > 256) {
      throw new Error(`${component}: tag "${key}" must be a string of at most 256 characters`);
    }
  }
}

/**
 * The tags of one resource: the caller's, then `Name` (the resource's name, what the console lists) and
 * `chatgrid:component` (the component's type, e.g. `chatgrid:aws:Network`), plus any extra ones (`chatgrid:tier`).
 */
export function awsTags(
  component: string,
  tags: Record<string, string> | undefined,
  resourceName: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { ...tags, ...extra, Name: resourceName, [COMPONENT_TAG]: component };
}

/** The interface endpoints `interfaceEndpoints: true` adds, so tasks reach these services without the NAT. */
export const INTERFACE_ENDPOINT_SERVICES = ["ecr.api", "ecr.dkr", "logs", "secretsmanager"] as const;

export type NatGatewayMode = "single" | "perAz";

export interface AwsNetworkArgs {
  /** The VPC's IPv4 /16, written a.b.0.0/16 (the stack uses 172.20.0.0/16, like the Docker network). */
  cidrBlock: string;
  /** 2 or 3 zones of `region`, e.g. ["us-east-1a", "us-east-1b"]; subnets are created in this order. */
  availabilityZones: string[];
  /** The region the zones are in, e.g. "us-east-1" (for endpoint service names). */
  region: string;
  /** One NAT gateway in the first zone (cheaper), or one per zone (a zone outage keeps the others' egress). */
  natGateways: NatGatewayMode;
  /** Interface endpoints for ECR (api, dkr), CloudWatch Logs and Secrets Manager in the app subnets. */
  interfaceEndpoints: boolean;
  /** Tags for every resource, besides the component's own (see `awsTags`). */
  tags?: Record<string, string>;
}

const TYPE = "chatgrid:aws:Network";
const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$/;

/** Every check on the arguments, before anything is registered. Returns each zone's letter (us-east-1a → "a"). */
function validate(args: AwsNetworkArgs): string[] {
  parseSlash16("AwsNetwork", "cidrBlock", args.cidrBlock);
  if (typeof args.region !== "string" || !REGION.test(args.region)) {
    throw new Error(`AwsNetwork: region must be a region name like us-east-1, got "${args.region}"`);
  }
  const zones = args.availabilityZones ?? [];
  if (zones.length < 2) throw new Error(`AwsNetwork: availabilityZones needs at least 2 zones, got ${zones.length}`);
  if (zones.length > MAX_ZONES) {
    throw new Error(`AwsNetwork: availabilityZones has room for at most ${MAX_ZONES} zones, got ${zones.length}`);
  }
  const seen = new Set<string>();
  for (const zone of zones) {
    if (seen.has(zone)) throw new Error(`AwsNetwork: availabilityZones lists ${zone} twice`);
    seen.add(zone);
    if (!zone.startsWith(args.region) || !/^[a-z]$/.test(zone.slice(args.region.length))) {
      throw new Error(`AwsNetwork: availability zone "${zone}" is not a zone of ${args.region} (${args.region}a, …)`);
    }
  }
  if (args.natGateways !== "single" && args.natGateways !== "perAz") {
    throw new Error(`AwsNetwork: natGateways must be "single" or "perAz", got "${args.natGateways}"`);
  }
  if (typeof args.interfaceEndpoints !== "boolean") {
    throw new Error(`AwsNetwork: interfaceEndpoints must be true or false, got "${args.interfaceEndpoints}"`);
  }
  requireTags("AwsNetwork", args.tags);
  return zones.map((zone) => zone.slice(args.region.length));
}

/**
 * The VPC: per zone a public, a private-app and a private-data subnet (plan in ./cidr.ts); an internet gateway and
 * one public route table (0.0.0.0/0 → IGW); NAT gateway(s) with an Elastic IP in the public subnets; one app route
 * table per zone (0.0.0.0/0 → its zone's NAT, or the single NAT); one data route table with only the VPC's local
 * route; a free S3 gateway endpoint on the app route tables (ECR image layers come from S3); optionally the interface
 * endpoints with their own security group (443 from the app subnets).
 *
 * Children: `<name>` (VPC, internet gateway, S3 endpoint is `<name>-s3`), `<name>-{public,app,data}-<zone letter>`
 * (subnets, their route table associations), `<name>-public`, `<name>-app-<letter>`, `<name>-data` (route tables),
 * `<name>-nat-<letter>` (EIP and NAT gateway), `<name>-endpoints` (security group), `<name>-<service>` (endpoints).
 */
export class AwsNetwork extends pulumi.ComponentResource {
  readonly vpc: aws.ec2.Vpc;
  readonly vpcId: pulumi.Output<string>;
  /** The VPC's CIDR block, as given. */
  readonly vpcCidr: string;
  /** Amazon's DNS resolver in this VPC (base + 2): what nginx resolves Cloud Map names with. */
  readonly resolverAddress: string;
  /** The zones, in the order of the subnet lists. */
  readonly availabilityZones: string[];
  readonly publicSubnetIds: pulumi.Output<string>[];
  readonly appSubnetIds: pulumi.Output<string>[];
  readonly dataSubnetIds: pulumi.Output<string>[];
  readonly natGatewayIds: pulumi.Output<string>[];
  /** The interface endpoints' security group (only with `interfaceEndpoints`). */
  readonly endpointSecurityGroupId: pulumi.Output<string> | undefined;

  constructor(name: string, args: AwsNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    const letters = validate(args);
    super(TYPE, name, {}, opts);
    const parent = { parent: this };
    const tags = (resourceName: string, extra?: Record<string, string>) =>
      awsTags(TYPE, args.tags, resourceName, extra);
    const plan = subnetPlan(args.cidrBlock, letters.length);
    const zones = args.availabilityZones;

    this.vpcCidr = args.cidrBlock;
    this.resolverAddress = resolverAddress("AwsNetwork", "cidrBlock", args.cidrBlock);
    this.availabilityZones = [...zones];
    this.vpc = new aws.ec2.Vpc(
      name,
      { cidrBlock: args.cidrBlock, enableDnsSupport: true, enableDnsHostnames: true, tags: tags(name) },
      parent,
    );
    this.vpcId = this.vpc.id;
    const vpcId = this.vpc.id;

    const subnet = (tier: "public" | "app" | "data", i: number) => {
      const subnetName = `${name}-${tier}-${letters[i]}`;
      return new aws.ec2.Subnet(
        subnetName,
        {
          vpcId,
          cidrBlock: plan[i]![tier],
          availabilityZone: zones[i],
          mapPublicIpOnLaunch: false,
          tags: tags(subnetName, { "chatgrid:tier": tier }),
        },
        parent,
      );
    };
    const publicSubnets = zones.map((_, i) => subnet("public", i));
    const appSubnets = zones.map((_, i) => subnet("app", i));
    const dataSubnets = zones.map((_, i) => subnet("data", i));
    const associate = (subnets: aws.ec2.Subnet[], tier: string, tableOf: (i: number) => aws.ec2.RouteTable) =>
      subnets.forEach((s, i) => {
        new aws.ec2.RouteTableAssociation(
          `${name}-${tier}-${letters[i]}`,
          { subnetId: s.id, routeTableId: tableOf(i).id },
          parent,
        );
      });

    // Public: the internet gateway is the default route.
    const igw = new aws.ec2.InternetGateway(name, { vpcId, tags: tags(name) }, parent);
    const publicTable = new aws.ec2.RouteTable(`${name}-public`, { vpcId, tags: tags(`${name}-public`) }, parent);
    new aws.ec2.Route(
      `${name}-public-internet`,
      { routeTableId: publicTable.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: igw.id },
      parent,
    );
    associate(publicSubnets, "public", () => publicTable);

    // NAT: in the first zone only, or in every zone.
    const natZones = args.natGateways === "perAz" ? zones.map((_, i) => i) : [0];
    const nats = natZones.map((i) => {
      const natName = `${name}-nat-${letters[i]}`;
      const eip = new aws.ec2.Eip(natName, { domain: "vpc", tags: tags(natName) }, parent);
      return new aws.ec2.NatGateway(
        natName,
        {
          allocationId: eip.allocationId,
          subnetId: publicSubnets[i]!.id,
          connectivityType: "public",
          tags: tags(natName),
        },
        // The NAT gateway needs the internet gateway attached to be of any use.
        { parent: this, dependsOn: [igw] },
      );
    });
    this.natGatewayIds = nats.map((nat) => nat.id);

    // App: one table per zone either way, so switching single ↔ perAz only retargets routes.
    const appTables = zones.map((_, i) => {
      const tableName = `${name}-app-${letters[i]}`;
      const table = new aws.ec2.RouteTable(tableName, { vpcId, tags: tags(tableName) }, parent);
      const nat = args.natGateways === "perAz" ? nats[i]! : nats[0]!;
      new aws.ec2.Route(
        `${tableName}-nat`,
        { routeTableId: table.id, destinationCidrBlock: "0.0.0.0/0", natGatewayId: nat.id },
        parent,
      );
      return table;
    });
    associate(appSubnets, "app", (i) => appTables[i]!);

    // Data: the VPC's local route only, nothing leaves the VPC.
    const dataTable = new aws.ec2.RouteTable(`${name}-data`, { vpcId, tags: tags(`${name}-data`) }, parent);
    associate(dataSubnets, "data", () => dataTable);

    new aws.ec2.VpcEndpoint(
      `${name}-s3`,
      {
        vpcId,
        vpcEndpointType: "Gateway",
        serviceName: `com.amazonaws.${args.region}.s3`,
        routeTableIds: appTables.map((t) => t.id),
        tags: tags(`${name}-s3`),
      },
      parent,
    );

    if (args.interfaceEndpoints) {
      // The endpoints' group lives here (not in AwsSecurityGroups, which needs this VPC first): HTTPS from the app
      // subnets only, no egress (the provider removes AWS's default allow-all egress; replies need none).
      const sgName = `${name}-endpoints`;
      const sg = new aws.ec2.SecurityGroup(
        sgName,
        { vpcId, description: "chatgrid VPC interface endpoints: HTTPS from the app subnets", tags: tags(sgName) },
        parent,
      );
      zones.forEach((_, i) => {
        const ruleName = `${sgName}-in-app-${letters[i]}`;
        new aws.vpc.SecurityGroupIngressRule(
          ruleName,
          {
            securityGroupId: sg.id,
            ipProtocol: "tcp",
            fromPort: 443,
            toPort: 443,
            cidrIpv4: plan[i]!.app,
            description: `HTTPS from the app subnet in ${zones[i]}`,
            tags: tags(ruleName),
          },
          parent,
        );
      });
      for (const service of INTERFACE_ENDPOINT_SERVICES) {
        const endpointName = `${name}-${service.replace(".", "-")}`;
        new aws.ec2.VpcEndpoint(
          endpointName,
          {
            vpcId,
            vpcEndpointType: "Interface",
            serviceName: `com.amazonaws.${args.region}.${service}`,
            privateDnsEnabled: true,
            subnetIds: appSubnets.map((s) => s.id),
            securityGroupIds: [sg.id],
            tags: tags(endpointName),
          },
          parent,
        );
      }
      this.endpointSecurityGroupId = sg.id;
    } else {
      this.endpointSecurityGroupId = undefined;
    }

    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.appSubnetIds = appSubnets.map((s) => s.id);
    this.dataSubnetIds = dataSubnets.map((s) => s.id);
    this.registerOutputs({
      vpcId: this.vpcId,
      vpcCidr: this.vpcCidr,
      resolverAddress: this.resolverAddress,
      publicSubnetIds: this.publicSubnetIds,
      appSubnetIds: this.appSubnetIds,
      dataSubnetIds: this.dataSubnetIds,
    });
  }
}
