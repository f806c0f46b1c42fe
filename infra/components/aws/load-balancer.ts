import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface AwsLoadBalancerArgs {
  vpcId: pulumi.Input<string>;
  publicSubnetIds: pulumi.Input<string>[];
  securityGroupId: pulumi.Input<string>;
  /** The port nginx listens on in the web tasks. */
  targetPort: number;
  /** An ACM certificate in the stack's region: HTTPS on 443, and port 80 only redirects. */
  certificateArn?: string;
  deletionProtection: boolean;
  tags: Record<string, string>;
}

/** Longer than any quiet WebSocket should sit idle; nginx's keepalive_timeout is above it (docs/aws.md "Entry"). */
export const ALB_IDLE_TIMEOUT_SECONDS = 3600;
/** TLS 1.3 and 1.2 only. */
export const ALB_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/**
 * The public entry (docs/aws.md "Entry"): an application load balancer in the public subnets in front of nginx (the
 * web tasks, by IP), which keeps ip_hash and the per-address limits by taking the client address from the
 * X-Forwarded-For the ALB appends. Invalid header fields are dropped, the Host header is passed on (the gateways'
 * same-origin check), and a deregistered task gets 30 s to finish instead of the default 300.
 */
export class AwsLoadBalancer extends pulumi.ComponentResource {
  readonly loadBalancer: aws.lb.LoadBalancer;
  readonly targetGroup: aws.lb.TargetGroup;
  readonly listeners: aws.lb.Listener[];
  /** `http(s)://<dns name>` */
  readonly url: pulumi.Output<string>;

  constructor(name: string, args: AwsLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    if (args.publicSubnetIds.length < 2) {
      throw new Error(`AwsLoadBalancer: needs public subnets in at least 2 zones, got ${args.publicSubnetIds.length}`);
    }
    if (args.certificateArn !== undefined && !args.certificateArn.startsWith("arn:")) {
      throw new Error(`AwsLoadBalancer: certificateArn must be an ACM ARN, got "${args.certificateArn}"`);
    }
    super("chatgrid:aws:LoadBalancer", name, {}, opts);
    this.loadBalancer = new aws.lb.LoadBalancer(
      `${name}-alb`,
      {
        loadBalancerType: "application",
        internal: false,
        subnets: args.publicSubnetIds,
        securityGroups: [args.securityGroupId],
        idleTimeout: ALB_IDLE_TIMEOUT_SECONDS,
        dropInvalidHeaderFields: true,
        preserveHostHeader: true,
        xffHeaderProcessingMode: "append",
        enableDeletionProtection: args.deletionProtection,
        tags: args.tags,
      },
      { parent: this },
    );
    this.targetGroup = new aws.lb.TargetGroup(
      `${name}-web`,
      {
        vpcId: args.vpcId,
        targetType: "ip",
        protocol: "HTTP",
        port: args.targetPort,
        deregistrationDelay: 30,
        healthCheck: {
          path: "/healthz",
          matcher: "200",
          interval: 10,
          timeout: 5,
          healthyThreshold: 2,
          unhealthyThreshold: 3,
        },
        tags: args.tags,
      },
      { parent: this },
    );
    const forward = [{ type: "forward", targetGroupArn: this.targetGroup.arn }];
    this.listeners = args.certificateArn
      ? [
          new aws.lb.Listener(
            `${name}-https`,
            {
              loadBalancerArn: this.loadBalancer.arn,
              port: 443,
              protocol: "HTTPS",
              sslPolicy: ALB_SSL_POLICY,
              certificateArn: args.certificateArn,
              defaultActions: forward,
              tags: args.tags,
            },
            { parent: this },
          ),
          new aws.lb.Listener(
            `${name}-http`,
            {
              loadBalancerArn: this.loadBalancer.arn,
              port: 80,
              protocol: "HTTP",
              defaultActions: [
                { type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } },
              ],
              tags: args.tags,
            },
            { parent: this },
          ),
        ]
      : [
          new aws.lb.Listener(
            `${name}-http`,
            {
              loadBalancerArn: this.loadBalancer.arn,
              port: 80,
              protocol: "HTTP",
              defaultActions: forward,
              tags: args.tags,
            },
            { parent: this },
          ),
        ];
    this.url = pulumi.interpolate`${args.certificateArn ? "https" : "http"}://${this.loadBalancer.dnsName}`;
    this.registerOutputs({ url: this.url });
  }
}
