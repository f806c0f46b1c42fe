import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";

// What AWS (and docker-build) would compute for the resources the aws stack creates, for the mocked engine
// (infra/testing/pulumi-mocks.ts): ids, ARNs, endpoints, URLs. Everything is derived from the resource's type, name
// and inputs, so it is stable from run to run, and the shapes are those of the real services (docs/aws.md
// "Testing"). The account is always MOCK_ACCOUNT; the region is the resource's `region` input, else the
// `aws:region` config the test set, else the module's region (setMockAwsRegion, default us-east-1).

export const MOCK_ACCOUNT = "123456789012";
export const DEFAULT_MOCK_REGION = "us-east-1";
/** The hosted zone of ALBs in us-east-1 (the mock gives it to every ALB). */
export const MOCK_ALB_ZONE_ID = "Z35SXDOTRQ7X7K";

let moduleRegion = DEFAULT_MOCK_REGION;

/** The region of resources that neither set `region` nor have `aws:region` in the config. */
export function setMockAwsRegion(region: string): void {
  moduleRegion = region;
}

type Inputs = Record<string, unknown>;
interface Fabricated {
  id: string;
  state: Record<string, unknown>;
}
interface Context {
  type: string;
  name: string;
  inputs: Inputs;
  region: string;
  account: string;
  /** `n` hex characters, stable for this type, name and salt. */
  hex(n: number, salt?: string): string;
}

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
const obj = (value: unknown): Inputs => (typeof value === "object" && value !== null ? (value as Inputs) : {});
/** A UUID-shaped string from a seed. */
const uuid = (seed: string) => {
  const h = sha(seed);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};
/** An IPv4 address in 3.x.x.x / 52.x.x.x-style public space, from a seed. */
const publicIp = (seed: string) => {
  const h = sha(seed);
  return `52.${parseInt(h.slice(0, 2), 16)}.${parseInt(h.slice(2, 4), 16)}.${parseInt(h.slice(4, 6), 16)}`;
};
/** ElastiCache's short region in endpoint names: us-east-1 → use1, eu-west-2 → euw2. */
export const shortRegion = (region: string) =>
  region
    .split("-")
    .map((part, i, all) => (i === 0 || i === all.length - 1 ? part : part[0]))
    .join("");

/** What the mock derives the digest of a docker-build Image from: its resource name. */
export const fakeBuildDigest = (name: string): string => `sha256:${sha(`docker-build:${name}`)}`;

function region(inputs: Inputs): string {
  return str(inputs.region) ?? pulumi.runtime.getConfig("aws:region") ?? moduleRegion;
}

const ec2 =
  (kind: string, prefix: string, extra: (c: Context, id: string) => Record<string, unknown> = () => ({})) =>
  (c: Context): Fabricated => {
    const id = `${prefix}-0${c.hex(16)}`;
    return {
      id,
      state: { arn: `arn:aws:ec2:${c.region}:${c.account}:${kind}/${id}`, ownerId: c.account, ...extra(c, id) },
    };
  };

const securityGroupRule = (c: Context): Fabricated => {
  const id = `sgr-0${c.hex(16)}`;
  return {
    id,
    state: { arn: `arn:aws:ec2:${c.region}:${c.account}:security-group-rule/${id}`, securityGroupRuleId: id },
  };
};

const elasticacheNamed =
  (kind: string) =>
  (c: Context): Fabricated => {
    const name = (str(c.inputs.name) ?? c.name).toLowerCase();
    return { id: name, state: { name, arn: `arn:aws:elasticache:${c.region}:${c.account}:${kind}:${name}` } };
  };

/** ARN + id of any Cloud Map resource (namespace, service, instance). */
const cloudMap = (c: Context): Fabricated => {
  const kind = c.type.split(":").pop() ?? "";
  if (kind === "Instance") return { id: str(c.inputs.instanceId) ?? c.name, state: {} };
  const [prefix, path] = /Namespace$/.test(kind) ? ["ns", "namespace"] : ["srv", "service"];
  const id = `${prefix}-${c.hex(16)}`;
  return {
    id,
    state: {
      arn: `arn:aws:servicediscovery:${c.region}:${c.account}:${path}/${id}`,
      ...(prefix === "ns" ? { hostedZone: `Z${c.hex(20, "zone").toUpperCase()}` } : {}),
    },
  };
};

/** The brokers' bootstrap strings, as MSK reports them for the cluster's encryption and auth settings. */
function mskBootstrap(c: Context, clusterName: string): Record<string, string> {
  const brokers = typeof c.inputs.numberOfBrokerNodes === "number" ? c.inputs.numberOfBrokerNodes : 3;
  const host = `${clusterName.toLowerCase()}.${c.hex(6, "host")}.c2.kafka.${c.region}.amazonaws.com`;
  const list = (port: number) => Array.from({ length: brokers }, (_, i) => `b-${i + 1}.${host}:${port}`).join(",");
  const clientBroker = str(obj(obj(c.inputs.encryptionInfo).encryptionInTransit).clientBroker) ?? "TLS";
  const auth = obj(c.inputs.clientAuthentication);
  const sasl = obj(auth.sasl);
  const tls = clientBroker === "TLS" || clientBroker === "TLS_PLAINTEXT";
  const plain = clientBroker === "PLAINTEXT" || clientBroker === "TLS_PLAINTEXT";
  return {
    bootstrapBrokers: plain ? list(9092) : "",
    bootstrapBrokersTls: tls ? list(9094) : "",
    bootstrapBrokersSaslScram: tls && sasl.scram === true ? list(9096) : "",
    bootstrapBrokersSaslIam: tls && sasl.iam === true ? list(9098) : "",
    bootstrapBrokersPublicTls: "",
    bootstrapBrokersPublicSaslIam: "",
    bootstrapBrokersPublicSaslScram: "",
    // None: the program must never read a ZooKeeper string (docs/aws.md "Testing").
    zookeeperConnectString: "",
    zookeeperConnectStringTls: "",
  };
}

const lbArn = (c: Context, rest: string) => `arn:aws:elasticloadbalancing:${c.region}:${c.account}:${rest}`;

const MAKERS: Record<string, (c: Context) => Fabricated> = {
  // --- EC2 / VPC
  "aws:ec2/vpc:Vpc": ec2("vpc", "vpc", (c) => ({
    enableDnsSupport: c.inputs.enableDnsSupport ?? true,
    enableDnsHostnames: c.inputs.enableDnsHostnames ?? false,
    instanceTenancy: c.inputs.instanceTenancy ?? "default",
    defaultRouteTableId: `rtb-0${c.hex(16, "main")}`,
    mainRouteTableId: `rtb-0${c.hex(16, "main")}`,
    defaultSecurityGroupId: `sg-0${c.hex(16, "default")}`,
    defaultNetworkAclId: `acl-0${c.hex(16, "acl")}`,
    dhcpOptionsId: `dopt-0${c.hex(16, "dhcp")}`,
  })),
  "aws:ec2/subnet:Subnet": ec2("subnet", "subnet", (c) => {
    const zone = str(c.inputs.availabilityZone) ?? `${c.region}a`;
    return {
      availabilityZoneId: `${shortRegion(c.region)}-az${zone.charCodeAt(zone.length - 1) - 96}`,
      mapPublicIpOnLaunch: c.inputs.mapPublicIpOnLaunch ?? false,
    };
  }),
  "aws:ec2/internetGateway:InternetGateway": ec2("internet-gateway", "igw"),
  "aws:ec2/eip:Eip": ec2("elastic-ip", "eipalloc", (c, id) => {
    const ip = publicIp(c.name);
    return {
      allocationId: id,
      domain: c.inputs.domain ?? "vpc",
      publicIp: ip,
      publicDns: `ec2-${ip.replaceAll(".", "-")}.compute-1.amazonaws.com`,
    };
  }),
  "aws:ec2/natGateway:NatGateway": ec2("natgateway", "nat", (c) => ({
    connectivityType: c.inputs.connectivityType ?? "public",
    networkInterfaceId: `eni-0${c.hex(16, "eni")}`,
    publicIp: publicIp(`${c.name}-nat`),
  })),
  "aws:ec2/routeTable:RouteTable": ec2("route-table", "rtb"),
  "aws:ec2/route:Route": (c) => ({
    id: `r-${str(c.inputs.routeTableId) ?? "rtb"}${parseInt(c.hex(8), 16)}`,
    state: { origin: "CreateRoute", state: "active" },
  }),
  "aws:ec2/routeTableAssociation:RouteTableAssociation": (c) => ({ id: `rtbassoc-0${c.hex(16)}`, state: {} }),
  "aws:ec2/vpcEndpoint:VpcEndpoint": ec2("vpc-endpoint", "vpce", (c, id) => {
    const service = str(c.inputs.serviceName) ?? "";
    if (c.inputs.vpcEndpointType === "Interface") {
      const subnets = Array.isArray(c.inputs.subnetIds) ? c.inputs.subnetIds : [];
      const short = service.replace(`com.amazonaws.${c.region}.`, "");
      return {
        state: "available",
        dnsEntries: [
          {
            dnsName: `${id}-${c.hex(8, "dns")}.${short}.${c.region}.vpce.amazonaws.com`,
            hostedZoneId: "Z7HUB22UULQXV",
          },
        ],
        networkInterfaceIds: subnets.map((_, i) => `eni-0${c.hex(16, `eni${i}`)}`),
        requesterManaged: false,
      };
    }
    return { state: "available", prefixListId: `pl-${c.hex(8, "pl")}`, requesterManaged: false };
  }),
  "aws:ec2/securityGroup:SecurityGroup": ec2("security-group", "sg", (c) => ({ name: str(c.inputs.name) ?? c.name })),
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": securityGroupRule,
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": securityGroupRule,

  // --- ElastiCache
  "aws:elasticache/subnetGroup:SubnetGroup": elasticacheNamed("subnetgroup"),
  "aws:elasticache/parameterGroup:ParameterGroup": elasticacheNamed("parametergroup"),
  "aws:elasticache/replicationGroup:ReplicationGroup": (c) => {
    const id = (str(c.inputs.replicationGroupId) ?? c.name).toLowerCase();
    const domain = `${id}.${c.hex(6, "endpoint")}.${shortRegion(c.region)}.cache.amazonaws.com`;
    const clusters = typeof c.inputs.numCacheClusters === "number" ? c.inputs.numCacheClusters : 1;
    const clusterMode = c.inputs.clusterMode === "enabled";
    return {
      id,
      state: {
        replicationGroupId: id,
        arn: `arn:aws:elasticache:${c.region}:${c.account}:replicationgroup:${id}`,
        clusterEnabled: clusterMode,
        memberClusters: Array.from({ length: clusters }, (_, i) => `${id}-${String(i + 1).padStart(3, "0")}`),
        engineVersionActual: `${str(c.inputs.engineVersion) ?? "7.1"}.0`,
        ...(clusterMode
          ? { configurationEndpointAddress: `clustercfg.${domain}` }
          : { primaryEndpointAddress: `master.${domain}`, readerEndpointAddress: `replica.${domain}` }),
      },
    };
  },

  // --- Secrets Manager
  "aws:secretsmanager/secret:Secret": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    // AWS appends "-" and six random characters to a secret's name in its ARN.
    const arn = `arn:aws:secretsmanager:${c.region}:${c.account}:secret:${name}-${c.hex(6, "suffix")}`;
    return { id: arn, state: { arn, name } };
  },
  "aws:secretsmanager/secretVersion:SecretVersion": (c) => {
    const versionId = uuid(`${c.type}:${c.name}`);
    const secretId = str(c.inputs.secretId) ?? "";
    return {
      id: `${secretId}|${versionId}`,
      state: { arn: secretId, secretArn: secretId, versionId, versionStages: ["AWSCURRENT"] },
    };
  },

  // --- MSK
  "aws:msk/cluster:Cluster": (c) => {
    const clusterName = str(c.inputs.clusterName) ?? c.name;
    const clusterUuid = `${uuid(`${c.type}:${c.name}`)}-2`;
    const arn = `arn:aws:kafka:${c.region}:${c.account}:cluster/${clusterName}/${clusterUuid}`;
    return {
      id: arn,
      state: {
        arn,
        clusterName,
        clusterUuid,
        currentVersion: `K${c.hex(13, "version").toUpperCase()}`,
        storageMode: "LOCAL",
        ...mskBootstrap(c, clusterName),
      },
    };
  },
  "aws:msk/serverlessCluster:ServerlessCluster": (c) => {
    const clusterName = str(c.inputs.clusterName) ?? c.name;
    const clusterUuid = `${uuid(`${c.type}:${c.name}`)}-s2`;
    const arn = `arn:aws:kafka:${c.region}:${c.account}:cluster/${clusterName}/${clusterUuid}`;
    return {
      id: arn,
      state: {
        arn,
        clusterName,
        clusterUuid,
        bootstrapBrokersSaslIam: `boot-${c.hex(8, "host")}.c2.kafka-serverless.${c.region}.amazonaws.com:9098`,
      },
    };
  },
  "aws:msk/configuration:Configuration": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const arn = `arn:aws:kafka:${c.region}:${c.account}:configuration/${name}/${uuid(`${c.type}:${c.name}`)}-2`;
    return { id: arn, state: { arn, name, latestRevision: 1 } };
  },
  "aws:msk/topic:Topic": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const clusterArn = str(c.inputs.clusterArn) ?? "";
    // Written independently of infra/components/aws/kafka.ts, so its derivation is checked against this one.
    const arn = clusterArn.includes(":cluster/") ? `${clusterArn.replace(":cluster/", ":topic/")}/${name}` : "";
    return { id: `${clusterArn},${name}`, state: { arn, name, configsActual: c.inputs.configs ?? "{}" } };
  },

  // --- ECR and images
  "aws:ecr/repository:Repository": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    return {
      id: name,
      state: {
        name,
        arn: `arn:aws:ecr:${c.region}:${c.account}:repository/${name}`,
        registryId: c.account,
        repositoryUrl: `${c.account}.dkr.ecr.${c.region}.amazonaws.com/${name}`,
      },
    };
  },
  "aws:ecr/lifecyclePolicy:LifecyclePolicy": (c) => ({
    id: str(c.inputs.repository) ?? c.name,
    state: { registryId: c.account },
  }),
  "docker-build:index:Image": (c) => {
    const digest = fakeBuildDigest(c.name);
    const tags = Array.isArray(c.inputs.tags) ? c.inputs.tags.filter((t): t is string => typeof t === "string") : [];
    // The first tag without its `:tag` (a colon after the last "/"), pinned by the digest.
    const repository = tags[0]?.replace(/:[^/:]*$/, "");
    return { id: digest, state: { digest, ref: repository ? `${repository}@${digest}` : "", contextHash: c.hex(64) } };
  },

  // --- ECS
  "aws:ecs/cluster:Cluster": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const arn = `arn:aws:ecs:${c.region}:${c.account}:cluster/${name}`;
    return { id: arn, state: { arn, name } };
  },
  "aws:ecs/taskDefinition:TaskDefinition": (c) => {
    const family = str(c.inputs.family) ?? c.name;
    const base = `arn:aws:ecs:${c.region}:${c.account}:task-definition/${family}`;
    return { id: family, state: { arn: `${base}:1`, arnWithoutRevision: base, family, revision: 1 } };
  },
  "aws:ecs/service:Service": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const cluster = (str(c.inputs.cluster) ?? "default").split("/").pop();
    const arn = `arn:aws:ecs:${c.region}:${c.account}:service/${cluster}/${name}`;
    return { id: arn, state: { arn, name } };
  },

  // --- IAM
  "aws:iam/role:Role": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const path = str(c.inputs.path) ?? "/";
    return {
      id: name,
      state: {
        name,
        path,
        arn: `arn:aws:iam::${c.account}:role${path}${name}`,
        uniqueId: `AROA${c.hex(17).toUpperCase()}`,
      },
    };
  },
  "aws:iam/rolePolicy:RolePolicy": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    return { id: `${str(c.inputs.role) ?? ""}:${name}`, state: { name } };
  },
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (c) => ({
    id: `${str(c.inputs.role) ?? ""}-${c.hex(20)}`,
    state: {},
  }),
  "aws:iam/policy:Policy": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const arn = `arn:aws:iam::${c.account}:policy${str(c.inputs.path) ?? "/"}${name}`;
    return { id: arn, state: { arn, name, policyId: `ANPA${c.hex(17).toUpperCase()}` } };
  },

  // --- CloudWatch Logs
  "aws:cloudwatch/logGroup:LogGroup": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    return { id: name, state: { name, arn: `arn:aws:logs:${c.region}:${c.account}:log-group:${name}` } };
  },

  // --- Load balancing
  "aws:lb/loadBalancer:LoadBalancer": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const kind = c.inputs.loadBalancerType === "network" ? "net" : "app";
    const arnSuffix = `${kind}/${name}/${c.hex(16)}`;
    const arn = lbArn(c, `loadbalancer/${arnSuffix}`);
    const internal = c.inputs.internal === true ? "internal-" : "";
    return {
      id: arn,
      state: {
        arn,
        arnSuffix,
        name,
        dnsName: `${internal}${name}-123456789.${c.region}.elb.amazonaws.com`,
        zoneId: MOCK_ALB_ZONE_ID,
      },
    };
  },
  "aws:lb/targetGroup:TargetGroup": (c) => {
    const name = str(c.inputs.name) ?? c.name;
    const arnSuffix = `targetgroup/${name}/${c.hex(16)}`;
    const arn = lbArn(c, arnSuffix);
    return { id: arn, state: { arn, arnSuffix, name } };
  },
  "aws:lb/listener:Listener": (c) => {
    const lb =
      /:loadbalancer\/(.+)$/.exec(str(c.inputs.loadBalancerArn) ?? "")?.[1] ?? `app/unknown/${c.hex(16, "lb")}`;
    const arn = lbArn(c, `listener/${lb}/${c.hex(16)}`);
    return { id: arn, state: { arn } };
  },
  "aws:lb/listenerRule:ListenerRule": (c) => {
    const listener = /:listener\/(.+)$/.exec(str(c.inputs.listenerArn) ?? "")?.[1] ?? `app/unknown/${c.hex(16, "l")}`;
    const arn = lbArn(c, `listener-rule/${listener}/${c.hex(16)}`);
    return { id: arn, state: { arn } };
  },
};

function fabricate(type: string, name: string, inputs: Inputs): Fabricated | undefined {
  const make = MAKERS[type] ?? (type.startsWith("aws:servicediscovery/") ? cloudMap : undefined);
  if (!make) return undefined;
  const context: Context = {
    type,
    name,
    inputs,
    region: region(inputs),
    account: MOCK_ACCOUNT,
    hex: (n, salt = "") => {
      let out = "";
      for (let i = 0; out.length < n; i++) out += sha(`${type}::${name}::${salt}::${i}`);
      return out.slice(0, n);
    },
  };
  const made = make(context);
  // Provider default tags are not applied by the mocks: tagsAll is just the resource's own tags.
  if ("tags" in inputs) made.state.tagsAll = inputs.tags;
  return made;
}

/** Whether the mock fabricates outputs for this type (every other type just echoes its inputs). */
export function isAwsMocked(type: string): boolean {
  return type in MAKERS || type.startsWith("aws:servicediscovery/");
}

/** The types with fabricated outputs (plus every `aws:servicediscovery/*`). */
export const AWS_MOCKED_TYPES: readonly string[] = Object.keys(MAKERS);

/** The outputs AWS would compute for the resource, or undefined for a type this module does not know. */
export function awsMockState(type: string, name: string, inputs: Inputs): Record<string, unknown> | undefined {
  return fabricate(type, name, inputs)?.state;
}

/** The id AWS would give the resource (`vpc-0…`, `sg-0…`, an ARN, …), or undefined for a type this module does not know. */
export function awsMockId(type: string, name: string, inputs: Inputs): string | undefined {
  return fabricate(type, name, inputs)?.id;
}
