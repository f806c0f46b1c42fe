import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { awsMockId } from "../../testing/aws-mock-state";
import { findUndefined, mockEngine, type RegisteredResource, resolved } from "../../testing/pulumi-mocks";
import { MAX_ZONES, resolverAddress, subnetPlan } from "./cidr";
import type { AwsNetworkArgs } from "./network";

// The component module is imported only after the mocks are installed (a static import would build nothing).

const T = {
  vpc: "aws:ec2/vpc:Vpc",
  subnet: "aws:ec2/subnet:Subnet",
  igw: "aws:ec2/internetGateway:InternetGateway",
  eip: "aws:ec2/eip:Eip",
  nat: "aws:ec2/natGateway:NatGateway",
  table: "aws:ec2/routeTable:RouteTable",
  route: "aws:ec2/route:Route",
  association: "aws:ec2/routeTableAssociation:RouteTableAssociation",
  endpoint: "aws:ec2/vpcEndpoint:VpcEndpoint",
  sg: "aws:ec2/securityGroup:SecurityGroup",
  ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
  egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
} as const;
/** The types above that take tags. */
const TAGGED = [T.vpc, T.subnet, T.igw, T.eip, T.nat, T.table, T.endpoint, T.sg, T.ingress];

const BASE: AwsNetworkArgs = {
  cidrBlock: "172.20.0.0/16",
  availabilityZones: ["us-east-1a", "us-east-1b"],
  region: "us-east-1",
  natGateways: "single",
  interfaceEndpoints: false,
  tags: { project: "chatgrid" },
};

interface Built {
  resources: RegisteredResource[];
  invokes: string[];
  of(type: string): RegisteredResource[];
  one(type: string, name: string): RegisteredResource;
  /** The resource the mocked engine gave this id. */
  byId(id: unknown): RegisteredResource;
  outputs: {
    vpcId: string;
    publicSubnetIds: string[];
    appSubnetIds: string[];
    dataSubnetIds: string[];
    endpointSecurityGroupId: string | undefined;
  };
  network: import("./network").AwsNetwork;
}

async function build(overrides: Partial<AwsNetworkArgs> = {}): Promise<Built> {
  const engine = await mockEngine("aws");
  const { AwsNetwork } = await import("./network");
  const network = new AwsNetwork("net", { ...BASE, ...overrides });
  const outputs = {
    vpcId: await resolved(network.vpcId),
    publicSubnetIds: await resolved(pulumi.all(network.publicSubnetIds)),
    appSubnetIds: await resolved(pulumi.all(network.appSubnetIds)),
    dataSubnetIds: await resolved(pulumi.all(network.dataSubnetIds)),
    endpointSecurityGroupId: network.endpointSecurityGroupId
      ? await resolved(network.endpointSecurityGroupId)
      : undefined,
  };
  await engine.settle();
  const of = (type: string) => engine.resources.filter((r) => r.type === type);
  const ids = new Map(engine.resources.map((r) => [awsMockId(r.type, r.name, r.inputs), r]));
  return {
    resources: engine.resources,
    invokes: engine.invokes,
    of,
    one(type, name) {
      const found = of(type).filter((r) => r.name === name);
      if (found.length !== 1) throw new Error(`${found.length} ${type} named ${name}`);
      return found[0]!;
    },
    byId(id) {
      const found = ids.get(id as string);
      if (!found) throw new Error(`no resource has id ${String(id)}`);
      return found;
    },
    outputs,
    network,
  };
}

describe("the CIDR plan", () => {
  it("gives zone N public a.b.N.0/24, app a.b.16(N+1).0/20, data a.b.(64+N).0/24", () => {
    expect(subnetPlan("172.20.0.0/16", 3)).toEqual([
      { public: "172.20.0.0/24", app: "172.20.16.0/20", data: "172.20.64.0/24" },
      { public: "172.20.1.0/24", app: "172.20.32.0/20", data: "172.20.65.0/24" },
      { public: "172.20.2.0/24", app: "172.20.48.0/20", data: "172.20.66.0/24" },
    ]);
    expect(subnetPlan("10.7.0.0/16", 2)[1]).toEqual({
      public: "10.7.1.0/24",
      app: "10.7.32.0/20",
      data: "10.7.65.0/24",
    });
  });

  it("never overlaps, for any number of zones it allows", () => {
    const range = (cidr: string): [number, number] => {
      const [ip, bits] = cidr.split("/");
      const n = ip!.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
      return [n, n + 2 ** (32 - Number(bits)) - 1];
    };
    for (let zones = 1; zones <= MAX_ZONES; zones++) {
      const all = subnetPlan("172.20.0.0/16", zones).flatMap((z) => [z.public, z.app, z.data].map(range));
      for (const [i, a] of all.entries()) {
        for (const b of all.slice(i + 1)) expect(a[1] < b[0] || b[1] < a[0]).toBe(true);
      }
    }
    expect(MAX_ZONES).toBe(3);
  });

  it("puts the resolver at the VPC's base + 2", () => {
    expect(resolverAddress("X", "vpcCidr", "172.20.0.0/16")).toBe("172.20.0.2");
    expect(resolverAddress("X", "vpcCidr", "10.0.0.0/16")).toBe("10.0.0.2");
  });

  it.each([
    ["172.20.0.0/24", 'AwsNetwork: cidrBlock must be an IPv4 /16 written as a.b.0.0/16, got "172.20.0.0/24"'],
    ["172.20.1.0/16", 'AwsNetwork: cidrBlock must be an IPv4 /16 written as a.b.0.0/16, got "172.20.1.0/16"'],
    ["300.20.0.0/16", 'AwsNetwork: cidrBlock must be an IPv4 /16 written as a.b.0.0/16, got "300.20.0.0/16"'],
  ])("refuses %s", (cidr, message) => {
    expect(() => subnetPlan(cidr, 2)).toThrow(message);
  });

  it("refuses zone counts outside 1..3", () => {
    expect(() => subnetPlan("172.20.0.0/16", 4)).toThrow(
      "AwsNetwork: the subnet plan has room for 1 to 3 zones, got 4",
    );
    expect(() => subnetPlan("172.20.0.0/16", 0)).toThrow(
      "AwsNetwork: the subnet plan has room for 1 to 3 zones, got 0",
    );
  });
});

describe("AwsNetwork", () => {
  it("creates a VPC with DNS support and hostnames (private DNS for endpoints, Cloud Map names)", async () => {
    const net = await build();
    const [vpc, ...others] = net.of(T.vpc);
    expect(others).toEqual([]);
    expect(vpc!.name).toBe("net");
    expect(vpc!.inputs).toMatchObject({ cidrBlock: "172.20.0.0/16", enableDnsSupport: true, enableDnsHostnames: true });
    expect(net.outputs.vpcId).toMatch(/^vpc-0[0-9a-f]{16}$/);
    expect(net.byId(net.outputs.vpcId)).toBe(vpc);
    expect(net.network.vpcCidr).toBe("172.20.0.0/16");
    expect(net.network.resolverAddress).toBe("172.20.0.2");
    expect(vpc!.urn).toBe("urn:pulumi:aws::chatgrid::chatgrid:aws:Network$aws:ec2/vpc:Vpc::net");
  });

  it("creates the three tiers of subnets per zone, in zone order, none with public IPs on launch", async () => {
    const net = await build({ availabilityZones: ["us-east-1a", "us-east-1c", "us-east-1d"] });
    const subnets = net.of(T.subnet);
    expect(subnets).toHaveLength(9);
    const expected = [
      ["public", "a", "us-east-1a", "172.20.0.0/24"],
      ["public", "c", "us-east-1c", "172.20.1.0/24"],
      ["public", "d", "us-east-1d", "172.20.2.0/24"],
      ["app", "a", "us-east-1a", "172.20.16.0/20"],
      ["app", "c", "us-east-1c", "172.20.32.0/20"],
      ["app", "d", "us-east-1d", "172.20.48.0/20"],
      ["data", "a", "us-east-1a", "172.20.64.0/24"],
      ["data", "c", "us-east-1c", "172.20.65.0/24"],
      ["data", "d", "us-east-1d", "172.20.66.0/24"],
    ];
    for (const [tier, letter, zone, cidr] of expected) {
      const subnet = net.one(T.subnet, `net-${tier}-${letter}`);
      expect(subnet.inputs).toMatchObject({
        vpcId: net.outputs.vpcId,
        availabilityZone: zone,
        cidrBlock: cidr,
        mapPublicIpOnLaunch: false,
      });
      expect((subnet.inputs.tags as Record<string, string>)["chatgrid:tier"]).toBe(tier);
    }
    const names = (ids: string[]) => ids.map((id) => net.byId(id).name);
    expect(names(net.outputs.publicSubnetIds)).toEqual(["net-public-a", "net-public-c", "net-public-d"]);
    expect(names(net.outputs.appSubnetIds)).toEqual(["net-app-a", "net-app-c", "net-app-d"]);
    expect(names(net.outputs.dataSubnetIds)).toEqual(["net-data-a", "net-data-c", "net-data-d"]);
    expect(net.network.availabilityZones).toEqual(["us-east-1a", "us-east-1c", "us-east-1d"]);
  });

  it("routes public → internet gateway, app → the single NAT, data → nowhere (local route only)", async () => {
    const net = await build();
    const [igw, ...moreIgws] = net.of(T.igw);
    expect(moreIgws).toEqual([]);
    expect(igw!.inputs.vpcId).toBe(net.outputs.vpcId);

    const tables = net.of(T.table);
    expect(tables.map((t) => t.name).sort()).toEqual(["net-app-a", "net-app-b", "net-data", "net-public"]);
    for (const table of tables) expect(table.inputs.vpcId).toBe(net.outputs.vpcId);
    // Routes live in aws.ec2.Route resources only, never inline.
    for (const table of tables) expect(table.inputs.routes).toBeUndefined();

    const tableId = (name: string) => awsMockId(T.table, name, {});
    const routes = net.of(T.route);
    expect(routes).toHaveLength(3);
    const [publicRoute] = routes.filter((r) => r.inputs.routeTableId === tableId("net-public"));
    expect(publicRoute!.inputs).toEqual({
      routeTableId: tableId("net-public"),
      destinationCidrBlock: "0.0.0.0/0",
      gatewayId: awsMockId(T.igw, "net", {}),
    });
    const nats = net.of(T.nat);
    expect(nats.map((n) => n.name)).toEqual(["net-nat-a"]);
    for (const letter of ["a", "b"]) {
      const [route, ...more] = routes.filter((r) => r.inputs.routeTableId === tableId(`net-app-${letter}`));
      expect(more).toEqual([]);
      expect(route!.inputs).toEqual({
        routeTableId: tableId(`net-app-${letter}`),
        destinationCidrBlock: "0.0.0.0/0",
        natGatewayId: awsMockId(T.nat, "net-nat-a", {}),
      });
    }
    expect(routes.filter((r) => r.inputs.routeTableId === tableId("net-data"))).toEqual([]);

    // Every subnet is associated with its tier's table, exactly once.
    const associations = net.of(T.association);
    expect(associations).toHaveLength(6);
    const tableOfSubnet = new Map(
      associations.map((a) => [net.byId(a.inputs.subnetId).name, net.byId(a.inputs.routeTableId).name]),
    );
    expect(Object.fromEntries(tableOfSubnet)).toEqual({
      "net-public-a": "net-public",
      "net-public-b": "net-public",
      "net-app-a": "net-app-a",
      "net-app-b": "net-app-b",
      "net-data-a": "net-data",
      "net-data-b": "net-data",
    });
  });

  it("single: one EIP and one NAT gateway, in the first public subnet, after the internet gateway", async () => {
    const net = await build();
    const [eip, ...moreEips] = net.of(T.eip);
    expect(moreEips).toEqual([]);
    expect(eip!.name).toBe("net-nat-a");
    expect(eip!.inputs.domain).toBe("vpc");
    const [nat] = net.of(T.nat);
    expect(nat!.inputs).toMatchObject({
      allocationId: awsMockId(T.eip, "net-nat-a", {}),
      subnetId: net.outputs.publicSubnetIds[0],
      connectivityType: "public",
    });
    expect(await resolved(pulumi.all(net.network.natGatewayIds))).toEqual([awsMockId(T.nat, "net-nat-a", {})]);
  });

  it("perAz: one EIP and NAT gateway per zone, each app table routes to its own zone's NAT", async () => {
    const net = await build({ natGateways: "perAz", availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c"] });
    expect(net.of(T.eip).map((e) => e.name)).toEqual(["net-nat-a", "net-nat-b", "net-nat-c"]);
    const nats = net.of(T.nat);
    expect(nats).toHaveLength(3);
    for (const [i, letter] of ["a", "b", "c"].entries()) {
      const nat = net.one(T.nat, `net-nat-${letter}`);
      expect(nat.inputs.subnetId).toBe(net.outputs.publicSubnetIds[i]);
      expect(nat.inputs.allocationId).toBe(awsMockId(T.eip, `net-nat-${letter}`, {}));
      const route = net.of(T.route).find((r) => r.inputs.routeTableId === awsMockId(T.table, `net-app-${letter}`, {}));
      expect(route!.inputs.natGatewayId).toBe(awsMockId(T.nat, `net-nat-${letter}`, {}));
    }
    // The route tables are the same set as with a single NAT: switching only retargets routes.
    expect(
      net
        .of(T.table)
        .map((t) => t.name)
        .sort(),
    ).toEqual(["net-app-a", "net-app-b", "net-app-c", "net-data", "net-public"]);
  });

  it("adds the free S3 gateway endpoint on the app route tables only", async () => {
    const net = await build();
    const [s3, ...others] = net.of(T.endpoint);
    expect(others).toEqual([]);
    expect(s3!.name).toBe("net-s3");
    expect(s3!.inputs).toMatchObject({
      vpcId: net.outputs.vpcId,
      vpcEndpointType: "Gateway",
      serviceName: "com.amazonaws.us-east-1.s3",
      routeTableIds: [awsMockId(T.table, "net-app-a", {}), awsMockId(T.table, "net-app-b", {})],
    });
    expect(net.of(T.sg)).toEqual([]);
    expect(net.network.endpointSecurityGroupId).toBeUndefined();
  });

  it("interfaceEndpoints: ecr.api, ecr.dkr, logs, secretsmanager in the app subnets, private DNS, own SG (443 from the app subnets)", async () => {
    const net = await build({
      interfaceEndpoints: true,
      region: "eu-west-1",
      availabilityZones: ["eu-west-1a", "eu-west-1b"],
    });
    const interfaces = net.of(T.endpoint).filter((e) => e.inputs.vpcEndpointType === "Interface");
    expect(interfaces.map((e) => e.name)).toEqual(["net-ecr-api", "net-ecr-dkr", "net-logs", "net-secretsmanager"]);
    const [sg, ...moreGroups] = net.of(T.sg);
    expect(moreGroups).toEqual([]);
    expect(sg!.name).toBe("net-endpoints");
    expect(sg!.inputs.vpcId).toBe(net.outputs.vpcId);
    expect(sg!.inputs.ingress).toBeUndefined();
    expect(sg!.inputs.egress).toBeUndefined();
    expect(net.outputs.endpointSecurityGroupId).toBe(awsMockId(T.sg, "net-endpoints", {}));
    for (const endpoint of interfaces) {
      const service = endpoint.name.replace("net-", "").replace("-", ".");
      expect(endpoint.inputs).toMatchObject({
        vpcId: net.outputs.vpcId,
        serviceName: `com.amazonaws.eu-west-1.${service}`,
        privateDnsEnabled: true,
        subnetIds: net.outputs.appSubnetIds,
        securityGroupIds: [net.outputs.endpointSecurityGroupId],
      });
    }
    expect(net.one(T.endpoint, "net-s3").inputs.serviceName).toBe("com.amazonaws.eu-west-1.s3");
    const rules = net.of(T.ingress);
    expect(rules.map((r) => r.inputs)).toEqual([
      expect.objectContaining({
        securityGroupId: net.outputs.endpointSecurityGroupId,
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        cidrIpv4: "172.20.16.0/20",
        description: "HTTPS from the app subnet in eu-west-1a",
      }),
      expect.objectContaining({ cidrIpv4: "172.20.32.0/20", description: "HTTPS from the app subnet in eu-west-1b" }),
    ]);
    for (const rule of rules) expect(rule.inputs.referencedSecurityGroupId).toBeUndefined();
    expect(net.of(T.egress)).toEqual([]);
  });

  it("tags every taggable resource: the caller's tags, Name and chatgrid:component", async () => {
    const net = await build({ interfaceEndpoints: true, natGateways: "perAz" });
    const tagged = net.resources.filter((r) => TAGGED.includes(r.type as (typeof TAGGED)[number]));
    // VPC, 6 subnets, IGW, 2 EIPs, 2 NATs, 4 route tables, 5 endpoints, the endpoints SG and its 2 rules.
    expect(tagged).toHaveLength(24);
    for (const resource of tagged) {
      expect(resource.inputs.tags, `${resource.type} ${resource.name}`).toMatchObject({
        project: "chatgrid",
        Name: resource.name,
        "chatgrid:component": "chatgrid:aws:Network",
      });
    }
    // Route tables' routes and associations take no tags; nothing else is untagged.
    for (const resource of net.resources) {
      if (resource.custom && !TAGGED.includes(resource.type as (typeof TAGGED)[number])) {
        expect([T.route, T.association]).toContain(resource.type);
      }
    }
  });

  it("every child is parented to the component; no invoke; no string input contains 'undefined'", async () => {
    const net = await build({ interfaceEndpoints: true, natGateways: "perAz" });
    for (const resource of net.resources.filter((r) => r.custom)) {
      expect(resource.urn, resource.name).toContain("::chatgrid:aws:Network$");
    }
    expect(net.invokes).toEqual([]);
    expect(findUndefined(net.resources)).toEqual([]);
  });

  it("registers exactly what the plan says (2 zones, single NAT, no endpoints)", async () => {
    const net = await build();
    const counts: Record<string, number> = {};
    for (const r of net.resources) counts[r.type] = (counts[r.type] ?? 0) + 1;
    expect(counts).toEqual({
      "chatgrid:aws:Network": 1,
      [T.vpc]: 1,
      [T.subnet]: 6,
      [T.igw]: 1,
      [T.table]: 4,
      [T.route]: 3,
      [T.association]: 6,
      [T.eip]: 1,
      [T.nat]: 1,
      [T.endpoint]: 1,
    });
  });

  it.each<[Partial<AwsNetworkArgs>, string]>([
    [
      { cidrBlock: "172.20.0.0/20" },
      'AwsNetwork: cidrBlock must be an IPv4 /16 written as a.b.0.0/16, got "172.20.0.0/20"',
    ],
    [{ region: "useast1" }, 'AwsNetwork: region must be a region name like us-east-1, got "useast1"'],
    [{ availabilityZones: ["us-east-1a"] }, "AwsNetwork: availabilityZones needs at least 2 zones, got 1"],
    [{ availabilityZones: [] }, "AwsNetwork: availabilityZones needs at least 2 zones, got 0"],
    [
      { availabilityZones: ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"] },
      "AwsNetwork: availabilityZones has room for at most 3 zones, got 4",
    ],
    [{ availabilityZones: ["us-east-1a", "us-east-1a"] }, "AwsNetwork: availabilityZones lists us-east-1a twice"],
    [
      { availabilityZones: ["us-east-1a", "us-west-2b"] },
      'AwsNetwork: availability zone "us-west-2b" is not a zone of us-east-1 (us-east-1a, …)',
    ],
    [
      { availabilityZones: ["us-east-1a", "us-east-1-bos-1a"] },
      'AwsNetwork: availability zone "us-east-1-bos-1a" is not a zone of us-east-1 (us-east-1a, …)',
    ],
    [{ natGateways: "none" as "single" }, 'AwsNetwork: natGateways must be "single" or "perAz", got "none"'],
    [
      { interfaceEndpoints: "yes" as unknown as boolean },
      'AwsNetwork: interfaceEndpoints must be true or false, got "yes"',
    ],
    [{ tags: { "aws:owner": "x" } }, 'AwsNetwork: tag "aws:owner" uses the prefix "aws:", which AWS reserves'],
    [{ tags: { Name: "x" } }, 'AwsNetwork: tag "Name" is set by the component'],
    [{ tags: { "chatgrid:component": "x" } }, 'AwsNetwork: tag "chatgrid:component" is set by the component'],
    [{ tags: { k: "v".repeat(257) } }, 'AwsNetwork: tag "k" must be a string of at most 256 characters'],
  ])("refuses %j before registering anything", async (overrides, message) => {
    const engine = await mockEngine("aws");
    const { AwsNetwork } = await import("./network");
    expect(() => new AwsNetwork("net", { ...BASE, ...overrides })).toThrow(message);
    await engine.settle();
    expect(engine.resources).toEqual([]);
  });
});
