import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface AwsAppRolesArgs {
  /** The app kind: each has its own roles, so a gateway can never read the AI nodes' model key. */
  app: "gateway" | "ai" | "web";
  repositoryArn: pulumi.Input<string>;
  logGroupArns: pulumi.Input<string>[];
  /** Exactly the Secrets Manager secrets this app's tasks get (ECS reads them with the execution role). */
  secretArns: pulumi.Input<string>[];
  /** MSK IAM: the cluster and the events topic the app produces to (no task role without Kafka). */
  kafka?: { clusterArn: pulumi.Input<string>; topicArn: pulumi.Input<string> };
  tags: Record<string, string>;
}

/** The only action granted on every resource: ECR's token call has no resource type to scope it to. */
export const UNSCOPED_ACTIONS = ["ecr:GetAuthorizationToken"] as const;

const ecsTasksTrust = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "ecs-tasks.amazonaws.com" }, Action: "sts:AssumeRole" }],
});

/**
 * One app kind's IAM (docs/aws.md "IAM"): the execution role ECS uses to pull the image, write the logs and read the
 * task's secrets, each scoped to its exact ARNs; and, with Kafka, the task role the app itself uses for MSK IAM,
 * with only the producer's actions on the cluster and topic. No managed policies, no wildcard but UNSCOPED_ACTIONS.
 */
export class AwsAppRoles extends pulumi.ComponentResource {
  readonly executionRole: aws.iam.Role;
  readonly taskRole?: aws.iam.Role;

  constructor(name: string, args: AwsAppRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    if (args.logGroupArns.length === 0) throw new Error(`AwsAppRoles ${args.app}: needs the log groups it writes`);
    if (args.app === "web" && args.kafka) throw new Error("AwsAppRoles web: the web tasks produce no events");
    super("chatgrid:aws:AppRoles", name, {}, opts);

    this.executionRole = new aws.iam.Role(
      `${name}-execution`,
      {
        assumeRolePolicy: ecsTasksTrust,
        description: `ECS pulls, logs and secrets for chatgrid ${args.app}`,
        tags: args.tags,
      },
      { parent: this },
    );
    new aws.iam.RolePolicy(
      `${name}-execution`,
      {
        role: this.executionRole.id,
        policy: pulumi.jsonStringify({
          Version: "2012-10-17",
          Statement: [
            { Sid: "EcrToken", Effect: "Allow", Action: [...UNSCOPED_ACTIONS], Resource: "*" },
            {
              Sid: "PullImage",
              Effect: "Allow",
              Action: ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
              Resource: [args.repositoryArn],
            },
            {
              Sid: "WriteLogs",
              Effect: "Allow",
              Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
              Resource: args.logGroupArns.map((arn) => pulumi.interpolate`${arn}:*`),
            },
            ...(args.secretArns.length > 0
              ? [
                  {
                    Sid: "ReadSecrets",
                    Effect: "Allow",
                    Action: ["secretsmanager:GetSecretValue"],
                    Resource: args.secretArns,
                  },
                ]
              : []),
          ],
        }),
      },
      { parent: this },
    );

    if (args.kafka) {
      this.taskRole = new aws.iam.Role(
        `${name}-task`,
        { assumeRolePolicy: ecsTasksTrust, description: `chatgrid ${args.app}: MSK IAM producer`, tags: args.tags },
        { parent: this },
      );
      new aws.iam.RolePolicy(
        `${name}-task`,
        {
          role: this.taskRole.id,
          policy: pulumi.jsonStringify({
            Version: "2012-10-17",
            Statement: [
              {
                Sid: "Cluster",
                Effect: "Allow",
                Action: [
                  "kafka-cluster:Connect",
                  "kafka-cluster:DescribeCluster",
                  "kafka-cluster:WriteDataIdempotently",
                ],
                Resource: [args.kafka.clusterArn],
              },
              {
                Sid: "Topic",
                Effect: "Allow",
                Action: ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
                Resource: [args.kafka.topicArn],
              },
            ],
          }),
        },
        { parent: this },
      );
    }
    this.registerOutputs({});
  }
}
