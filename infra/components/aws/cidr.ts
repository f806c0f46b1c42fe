// The VPC's address plan, as pure functions (docs/aws.md "Network"): nothing here looks anything up.

/** The three subnets of one availability zone. */
export interface ZoneSubnets {
  /** ALB and NAT gateways: a.b.N.0/24. */
  public: string;
  /** ECS tasks (web, gateways, AI nodes): a.b.(16·(N+1)).0/20, 4091 usable addresses each. */
  app: string;
  /** ElastiCache and MSK: a.b.(64+N).0/24, no route out of the VPC. */
  data: string;
}

/**
 * Most zones the plan has room for: the app /20s of zones 0, 1, 2 are a.b.16.0, a.b.32.0, a.b.48.0; a fourth would be
 * a.b.64.0/20, where the data subnets start. MSK takes at most 3 zones too.
 */
export const MAX_ZONES = 3;

const SLASH_16 = /^(\d{1,3})\.(\d{1,3})\.0\.0\/16$/;

/** The two leading octets of `a.b.0.0/16`; throws `<component>: <what> must be an IPv4 /16 …` otherwise. */
export function parseSlash16(component: string, what: string, cidr: string): [number, number] {
  const match = SLASH_16.exec(cidr);
  const a = Number(match?.[1]);
  const b = Number(match?.[2]);
  if (!match || a > 255 || b > 255) {
    throw new Error(`${component}: ${what} must be an IPv4 /16 written as a.b.0.0/16, got "${cidr}"`);
  }
  return [a, b];
}

/** The subnets of each zone, in zone order: zone N gets public a.b.N.0/24, app a.b.16(N+1).0/20, data a.b.(64+N).0/24. */
export function subnetPlan(cidrBlock: string, zones: number): ZoneSubnets[] {
  const [a, b] = parseSlash16("AwsNetwork", "cidrBlock", cidrBlock);
  if (!Number.isInteger(zones) || zones < 1 || zones > MAX_ZONES) {
    throw new Error(`AwsNetwork: the subnet plan has room for 1 to ${MAX_ZONES} zones, got ${zones}`);
  }
  return Array.from({ length: zones }, (_, n) => ({
    public: `${a}.${b}.${n}.0/24`,
    app: `${a}.${b}.${16 * (n + 1)}.0/20`,
    data: `${a}.${b}.${64 + n}.0/24`,
  }));
}

/**
 * The Amazon-provided DNS resolver of a VPC: the VPC's base address plus two (a.b.0.2 for a.b.0.0/16). Computed from
 * the CIDR, so nginx's `resolver` line and the security groups need no lookup.
 */
export function resolverAddress(component: string, what: string, cidrBlock: string): string {
  const [a, b] = parseSlash16(component, what, cidrBlock);
  return `${a}.${b}.0.2`;
}
