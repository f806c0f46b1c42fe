import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface AwsClusterArgs {
  /** CloudWatch Container Insights (per-task CPU, memory and network; billed as custom metrics). */
  containerInsights: boolean;
  tags: Record<string, string>;
}

/** The ECS cluster every chatgrid service runs in (Fargate only: no instances to patch). */
export class AwsCluster extends pulumi.ComponentResource {
  readonly cluster: aws.ecs.Cluster;
  readonly arn: pulumi.Output<string>;
  readonly name: pulumi.Output<string>;

  constructor(name: string, args: AwsClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chatgrid:aws:Cluster", name, {}, opts);
    this.cluster = new aws.ecs.Cluster(
      `${name}-cluster`,
      {
        settings: [{ name: "containerInsights", value: args.containerInsights ? "enabled" : "disabled" }],
        tags: args.tags,
      },
      { parent: this },
    );
    new aws.ecs.ClusterCapacityProviders(
      `${name}-capacity`,
      {
        clusterName: this.cluster.name,
        capacityProviders: ["FARGATE"],
        defaultCapacityProviderStrategies: [{ capacityProvider: "FARGATE", weight: 1 }],
      },
      { parent: this },
    );
    this.arn = this.cluster.arn;
    this.name = this.cluster.name;
    this.registerOutputs({ arn: this.arn });
  }
}
