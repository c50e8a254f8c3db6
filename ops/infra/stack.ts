/**
 * One custody-node environment on AWS: VPC, Aurora Postgres, ElastiCache (Valkey) with a hash-tag
 * prefix, one KMS key per hot wallet that only its chain's signer task role may use, secrets from
 * Secrets Manager and SSM, and an ECS Fargate service per role as planned in plan.ts.
 */
import {
  aws_applicationautoscaling as appscaling,
  CfnOutput,
  aws_cloudwatch as cloudwatch,
  Duration,
  aws_ec2 as ec2,
  aws_ecs as ecs,
  aws_elasticache as elasticache,
  aws_elasticloadbalancingv2 as elbv2,
  aws_events as events,
  aws_iam as iam,
  aws_kms as kms,
  aws_logs as logs,
  RemovalPolicy,
  aws_rds as rds,
  SecretValue,
  Stack,
  type StackProps,
  aws_secretsmanager as secretsmanager,
  aws_servicediscovery as servicediscovery,
  aws_ssm as ssm,
  aws_events_targets as targets,
} from "aws-cdk-lib";
import type { Construct } from "constructs";
import {
  type InfraPlan,
  planEnvironment,
  SERVICE_PORT,
  type ServicePlan,
  STOP_TIMEOUT_S,
} from "./plan.js";

/**
 * aws-cdk-lib's classes do not type-check against their own interfaces under this project's
 * `exactOptionalPropertyTypes` (optional fields typed `T | undefined`); this names the interface
 * without changing the value.
 */
function iface<T>(construct: unknown): T {
  return construct as T;
}

export type CustodyStackProps = StackProps & {
  /** Short environment name used in resource names: `prod`, `staging`. */
  envName: string;
  /** The custody config file (JSON object); validated, stored in SSM, read by every task. */
  config: unknown;
  /** The image every task runs (e.g. an ECR URI with a tag or digest). */
  image: string;
  /** Run in an existing VPC (private subnets with egress for RPC) instead of creating one. */
  vpcId?: string;
  /** Webhook secrets already in Secrets Manager, by env name (absent: the stack creates them). */
  webhookSecretArns?: Record<string, string>;
  /** ACM certificate for the internal ALB (HTTPS on 443); absent: HTTP on 80 inside the VPC. */
  certificateArn?: string;
  /** The OpenTelemetry collector image of the worker's sidecar (pin one your registry mirrors). */
  collectorImage?: string;
};

export const DEFAULT_COLLECTOR_IMAGE =
  "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3";

/** CloudWatch namespace the worker's collector sidecar publishes queue depth to (EMF). */
export const METRICS_NAMESPACE = "CustodyNode";
/** The Prometheus gauge the worker scales on (waiting jobs per queue, exported by the service). */
export const QUEUE_DEPTH_METRIC = "custody_queue_jobs";

/** Key policy actions for administrators: everything but using the key. */
const KEY_ADMIN_ACTIONS = [
  "kms:Create*",
  "kms:Describe*",
  "kms:Enable*",
  "kms:List*",
  "kms:Put*",
  "kms:Update*",
  "kms:Revoke*",
  "kms:Disable*",
  "kms:GetKeyPolicy",
  "kms:GetKeyRotationStatus",
  "kms:Delete*",
  "kms:TagResource",
  "kms:UntagResource",
  "kms:ScheduleKeyDeletion",
  "kms:CancelKeyDeletion",
];
const KEY_USE_ACTIONS = ["kms:Sign", "kms:GetPublicKey"];
/**
 * The signer's check of its keys' state while idle (signer/kmsKeyState.ts, KmsKeyNotEnabled): it
 * reads, never uses, so administrators keep it too and the Deny does not name it.
 */
const KEY_STATE_ACTIONS = ["kms:DescribeKey"];

export class CustodyStack extends Stack {
  readonly plan: InfraPlan;

  constructor(scope: Construct, id: string, props: CustodyStackProps) {
    super(scope, id, props);
    const plan = planEnvironment(props.config);
    this.plan = plan;
    const name = (suffix: string) => `custody-${props.envName}-${suffix}`;

    const vpc: ec2.IVpc = props.vpcId
      ? ec2.Vpc.fromLookup(this, "Vpc", { vpcId: props.vpcId })
      : iface<ec2.IVpc>(
          new ec2.Vpc(this, "Vpc", {
            maxAzs: 2,
            natGateways: 2,
            subnetConfiguration: [
              { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
              { name: "app", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
              { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
            ],
          }),
        );
    const appSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    const dataSubnets: ec2.SubnetSelection = props.vpcId
      ? appSubnets
      : { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

    const tasksSg = new ec2.SecurityGroup(this, "TasksSg", {
      vpc,
      description: "custody-node tasks",
      allowAllOutbound: true,
    });

    // Postgres: the truth. Encrypted, private, credentials generated into Secrets Manager.
    const dbSg = new ec2.SecurityGroup(this, "DbSg", { vpc, allowAllOutbound: false });
    dbSg.addIngressRule(tasksSg, ec2.Port.tcp(5432), "custody-node tasks");
    const db = new rds.DatabaseCluster(this, "Db", {
      engine: rds.DatabaseClusterEngine.auroraPostgres({
        version: rds.AuroraPostgresEngineVersion.VER_16_6,
      }),
      writer: rds.ClusterInstance.serverlessV2("writer"),
      readers: [rds.ClusterInstance.serverlessV2("reader", { scaleWithWriter: true })],
      serverlessV2MinCapacity: 0.5,
      serverlessV2MaxCapacity: 16,
      vpc,
      vpcSubnets: dataSubnets,
      securityGroups: [dbSg],
      credentials: rds.Credentials.fromGeneratedSecret("custody", {
        secretName: name("db-credentials"),
      }),
      defaultDatabaseName: "custody",
      storageEncrypted: true,
      deletionProtection: true,
      backup: { retention: Duration.days(14) },
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    // The generated password excludes URL-reserved characters (RDS default exclusions).
    const dbSecret = iface<secretsmanager.ISecret>(db.secret);
    const databaseUrl = iface<secretsmanager.ISecret>(
      new secretsmanager.Secret(this, "DatabaseUrl", {
        secretName: name("database-url"),
        description: "DATABASE_URL for custody-node (composed from the generated credentials)",
        secretStringValue: SecretValue.unsafePlainText(
          `postgres://custody:${dbSecret.secretValueFromJson("password").unsafeUnwrap()}@${db.clusterEndpoint.hostname}:${db.clusterEndpoint.port}/custody?sslmode=no-verify`,
        ),
      }),
    );

    // Redis (Valkey), cluster mode with one shard: every key carries the `{custody}` hash tag, so
    // BullMQ's multi-key scripts stay in one slot. TLS and an auth token; encrypted at rest.
    const redisSg = new ec2.SecurityGroup(this, "RedisSg", { vpc, allowAllOutbound: false });
    redisSg.addIngressRule(tasksSg, ec2.Port.tcp(6379), "custody-node tasks");
    const redisSubnets = new elasticache.CfnSubnetGroup(this, "RedisSubnets", {
      description: "custody-node Redis",
      subnetIds: vpc.selectSubnets(dataSubnets).subnetIds,
    });
    const redisToken = new secretsmanager.Secret(this, "RedisToken", {
      secretName: name("redis-token"),
      generateSecretString: { excludePunctuation: true, passwordLength: 64 },
    });
    const redis = new elasticache.CfnReplicationGroup(this, "Redis", {
      replicationGroupDescription: "custody-node queues and doorbells",
      engine: "valkey",
      engineVersion: "8.0",
      cacheNodeType: "cache.t4g.medium",
      clusterMode: "enabled",
      numNodeGroups: 1,
      replicasPerNodeGroup: 1,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      atRestEncryptionEnabled: true,
      transitEncryptionEnabled: true,
      authToken: redisToken.secretValue.unsafeUnwrap(),
      cacheSubnetGroupName: redisSubnets.ref,
      securityGroupIds: [redisSg.securityGroupId],
    });
    const redisUrl = iface<secretsmanager.ISecret>(
      new secretsmanager.Secret(this, "RedisUrl", {
        secretName: name("redis-url"),
        description: "REDIS_URL for custody-node (TLS, auth token)",
        secretStringValue: SecretValue.unsafePlainText(
          `rediss://:${redisToken.secretValue.unsafeUnwrap()}@${redis.attrConfigurationEndPointAddress}:${redis.attrConfigurationEndPointPort}`,
        ),
      }),
    );

    // The config file: in SSM, injected as CUSTODY_CONFIG_JSON.
    const configJson = JSON.stringify(props.config);
    const configParam = new ssm.StringParameter(this, "Config", {
      parameterName: `/custody/${props.envName}/config`,
      description: "custody-node config file (chains, hot wallets, policies, webhooks)",
      stringValue: configJson,
      tier: configJson.length > 4096 ? ssm.ParameterTier.ADVANCED : ssm.ParameterTier.STANDARD,
    });

    const webhookSecrets = new Map<string, secretsmanager.ISecret>();
    for (const envName of new Set(plan.config.webhooks.map((w) => w.secretEnv))) {
      const arn = props.webhookSecretArns?.[envName];
      webhookSecrets.set(
        envName,
        arn
          ? secretsmanager.Secret.fromSecretCompleteArn(this, `Webhook${envName}`, arn)
          : iface<secretsmanager.ISecret>(
              new secretsmanager.Secret(this, `Webhook${envName}`, {
                secretName: name(`webhook-${envName.toLowerCase().replaceAll("_", "-")}`),
                description: `webhook signing secret ${envName}`,
                generateSecretString: { excludePunctuation: true, passwordLength: 48 },
              }),
            ),
      );
    }
    const containerSecrets: Record<string, ecs.Secret> = {
      DATABASE_URL: ecs.Secret.fromSecretsManager(databaseUrl),
      REDIS_URL: ecs.Secret.fromSecretsManager(redisUrl),
      CUSTODY_CONFIG_JSON: ecs.Secret.fromSsmParameter(configParam),
    };
    for (const [envName, secret] of webhookSecrets)
      containerSecrets[envName] = ecs.Secret.fromSecretsManager(secret);
    const environment = { ...plan.environment, AWS_REGION: this.region };

    const logGroup = new logs.LogGroup(this, "Logs", {
      logGroupName: `/custody/${props.envName}`,
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const cluster = iface<ecs.ICluster>(
      new ecs.Cluster(this, "Cluster", {
        vpc,
        clusterName: name("cluster"),
        containerInsightsV2: ecs.ContainerInsights.ENABLED,
      }),
    );
    const image = ecs.ContainerImage.fromRegistry(props.image);

    // Prometheus finds the tasks by DNS (one A record per task: `<service>.custody-<env>.internal`)
    // and scrapes :8080/metrics from the monitoring security group
    // (ops/observability/prometheus.yml).
    const discovery = new servicediscovery.PrivateDnsNamespace(this, "Discovery", {
      name: `custody-${props.envName}.internal`,
      vpc,
      description: "custody-node tasks, for Prometheus DNS service discovery",
    });
    const monitoringSg = new ec2.SecurityGroup(this, "MonitoringSg", {
      vpc,
      description: "Prometheus scraping custody-node /metrics",
      allowAllOutbound: true,
    });
    tasksSg.addIngressRule(monitoringSg, ec2.Port.tcp(SERVICE_PORT), "Prometheus scrape");
    new CfnOutput(this, "DiscoveryNamespace", { value: discovery.namespaceName });
    new CfnOutput(this, "MonitoringSecurityGroup", { value: monitoringSg.securityGroupId });

    const taskDefinition = (id: string, command: string[], cpu: number, memoryMiB: number) => {
      const def = new ecs.FargateTaskDefinition(this, `${id}Task`, {
        family: name(id),
        cpu,
        memoryLimitMiB: memoryMiB,
        runtimePlatform: {
          cpuArchitecture: ecs.CpuArchitecture.X86_64,
          operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        },
      });
      const common = {
        image,
        environment,
        secrets: containerSecrets,
        linuxParameters: new ecs.LinuxParameters(this, `${id}Linux`, {
          initProcessEnabled: true,
        }),
      };
      // Migrations (idempotent, safe from several processes) run before the role starts: a new
      // revision's tasks never serve on an old schema.
      const migrate = def.addContainer("migrate", {
        ...common,
        command: plan.migrateCommand,
        essential: false,
        logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: `${id}-migrate` }),
      });
      const app = def.addContainer("app", {
        ...common,
        command,
        essential: true,
        stopTimeout: Duration.seconds(STOP_TIMEOUT_S),
        portMappings: [{ containerPort: SERVICE_PORT }],
        logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: id }),
        // Liveness: the process answers at all (never Postgres/Redis/RPC, never lag).
        healthCheck: {
          command: [
            "CMD",
            "node",
            "-e",
            `fetch("http://127.0.0.1:${SERVICE_PORT}/healthz").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
          ],
          interval: Duration.seconds(15),
          timeout: Duration.seconds(5),
          retries: 3,
          startPeriod: Duration.seconds(30),
        },
      });
      app.addContainerDependencies({
        container: migrate,
        condition: ecs.ContainerDependencyCondition.SUCCESS,
      });
      return def;
    };

    const services = new Map<string, ecs.FargateService>();
    for (const svc of plan.services) {
      const def = taskDefinition(svc.id, svc.command, svc.cpu, svc.memoryMiB);
      const service = new ecs.FargateService(this, `${svc.id}Service`, {
        cluster,
        serviceName: name(svc.id),
        taskDefinition: def,
        desiredCount: svc.desiredCount,
        assignPublicIp: false,
        vpcSubnets: appSubnets,
        securityGroups: [tasksSg],
        circuitBreaker: { rollback: true },
        // Lease holders: never more than the planned tasks at once during a deployment.
        minHealthyPercent: svc.desiredCount > 1 ? 50 : 0,
        maxHealthyPercent: 200,
        enableExecuteCommand: false,
        cloudMapOptions: {
          cloudMapNamespace: discovery,
          name: svc.id,
          dnsRecordType: servicediscovery.DnsRecordType.A,
          dnsTtl: Duration.seconds(10),
        },
      });
      services.set(svc.id, service);
      this.addScaling(svc, service);
      if (svc.scaling?.on === "queue-depth")
        this.addQueueDepthCollector(
          def,
          logGroup,
          `/custody/${props.envName}/metrics`,
          props.collectorImage ?? DEFAULT_COLLECTOR_IMAGE,
        );
    }

    // Internal ALB in front of the api tasks, health-checked on readiness.
    const albSg = new ec2.SecurityGroup(this, "AlbSg", { vpc, allowAllOutbound: true });
    // HTTPS when a certificate is given (API keys travel in headers); plain HTTP only inside the VPC.
    const listenPort = props.certificateArn ? 443 : 80;
    albSg.addIngressRule(
      ec2.Peer.ipv4(vpc.vpcCidrBlock),
      ec2.Port.tcp(listenPort),
      "inside the VPC",
    );
    tasksSg.addIngressRule(albSg, ec2.Port.tcp(SERVICE_PORT), "ALB to api");
    const alb = new elbv2.ApplicationLoadBalancer(this, "Alb", {
      vpc,
      internetFacing: false,
      vpcSubnets: appSubnets,
      securityGroup: albSg,
    });
    const listener = props.certificateArn
      ? alb.addListener("Https", {
          port: 443,
          protocol: elbv2.ApplicationProtocol.HTTPS,
          certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn)],
          sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
          open: false,
        })
      : alb.addListener("Http", { port: 80, open: false });
    const api = plan.services.find((s) => s.loadBalanced);
    if (api) {
      listener.addTargets("Api", {
        port: SERVICE_PORT,
        protocol: elbv2.ApplicationProtocol.HTTP,
        targets: [
          (services.get(api.id) as ecs.FargateService).loadBalancerTarget({
            containerName: "app",
            containerPort: SERVICE_PORT,
          }),
        ],
        healthCheck: {
          path: "/readyz",
          healthyHttpCodes: "200",
          interval: Duration.seconds(10),
          healthyThresholdCount: 2,
          unhealthyThresholdCount: 3,
        },
        deregistrationDelay: Duration.seconds(20),
      });
    }

    // One KMS key per hot wallet; only its chain's signer task role may sign or read the key.
    for (const [chainKey, aliases] of plan.hotWalletAliases) {
      const signer = services.get(`signer-${chainKey}`) as ecs.FargateService;
      const signerRole = signer.taskDefinition.taskRole;
      aliases.forEach((alias, i) => {
        const key = new kms.Key(this, `HotWallet${chainKey}${i}`, {
          description: `custody-node hot wallet ${alias} (${chainKey})`,
          keySpec: kms.KeySpec.ECC_SECG_P256K1,
          keyUsage: kms.KeyUsage.SIGN_VERIFY,
          alias,
          removalPolicy: RemovalPolicy.RETAIN,
          policy: new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: "KeyAdministration",
                principals: [new iam.AccountRootPrincipal()],
                actions: KEY_ADMIN_ACTIONS,
                resources: ["*"],
              }),
              new iam.PolicyStatement({
                sid: "SignerSigns",
                principals: [new iam.ArnPrincipal(signerRole.roleArn)],
                actions: [...KEY_USE_ACTIONS, ...KEY_STATE_ACTIONS],
                resources: ["*"],
              }),
              new iam.PolicyStatement({
                sid: "NobodyElseSigns",
                effect: iam.Effect.DENY,
                principals: [new iam.AnyPrincipal()],
                actions: KEY_USE_ACTIONS,
                resources: ["*"],
                conditions: { ArnNotEquals: { "aws:PrincipalArn": signerRole.roleArn } },
              }),
            ],
          }),
        });
        key.node.addDependency(signerRole);
      });
    }

    // The scheduled one-shot: a full reconciliation report every night (the reconciler service
    // runs the incremental ones).
    const reconcileDef = taskDefinition(
      "reconcile-nightly",
      plan.scheduledReconcile.command,
      1024,
      2048,
    );
    new events.Rule(this, "ReconcileNightly", {
      schedule: events.Schedule.expression(plan.scheduledReconcile.schedule),
      targets: [
        new targets.EcsTask({
          cluster,
          taskDefinition: iface<ecs.ITaskDefinition>(reconcileDef),
          subnetSelection: appSubnets,
          securityGroups: [tasksSg],
          assignPublicIp: false,
        }),
      ],
    });
  }

  private addScaling(svc: ServicePlan, service: ecs.FargateService): void {
    if (!svc.scaling) return;
    const scaling = service.autoScaleTaskCount({
      minCapacity: svc.scaling.min,
      maxCapacity: svc.scaling.max,
    });
    if (svc.scaling.on === "cpu") {
      scaling.scaleOnCpuUtilization("Cpu", {
        targetUtilizationPercent: 60,
        scaleInCooldown: Duration.minutes(5),
        scaleOutCooldown: Duration.minutes(1),
      });
      return;
    }
    scaling.scaleOnMetric("QueueDepth", {
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: QUEUE_DEPTH_METRIC,
        dimensionsMap: { state: "waiting" },
        statistic: "Maximum",
        period: Duration.minutes(1),
      }),
      scalingSteps: [
        { upper: 10, change: -1 },
        { lower: 100, change: +1 },
        { lower: 1000, change: +3 },
      ],
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      cooldown: Duration.minutes(2),
    });
  }

  /**
   * The worker's queue depth reaches CloudWatch through an OpenTelemetry collector sidecar that
   * scrapes the task's own /metrics and writes the one gauge as EMF (the service stays Prometheus).
   * Every worker reports the same Redis-wide gauge per queue; the scaling alarm takes the Maximum,
   * i.e. the waiting jobs of the longest queue.
   */
  private addQueueDepthCollector(
    def: ecs.FargateTaskDefinition,
    logGroup: logs.LogGroup,
    emfLogGroup: string,
    collectorImage: string,
  ): void {
    const config = [
      "receivers:",
      "  prometheus:",
      "    config:",
      "      scrape_configs:",
      "        - job_name: custody-node",
      "          scrape_interval: 30s",
      `          static_configs: [{ targets: ["127.0.0.1:${SERVICE_PORT}"] }]`,
      "exporters:",
      "  awsemf:",
      `    namespace: ${METRICS_NAMESPACE}`,
      `    log_group_name: ${emfLogGroup}`,
      "    dimension_rollup_option: NoDimensionRollup",
      "    metric_declarations:",
      "      - dimensions: [[state]]",
      `        metric_name_selectors: ["^${QUEUE_DEPTH_METRIC}$"]`,
      "service:",
      "  pipelines:",
      "    metrics: { receivers: [prometheus], exporters: [awsemf] }",
    ].join("\n");
    def.addContainer("metrics-collector", {
      image: ecs.ContainerImage.fromRegistry(collectorImage),
      essential: false,
      environment: { AOT_CONFIG_CONTENT: config },
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: "worker-collector" }),
      memoryReservationMiB: 128,
    });
    def.addToTaskRolePolicy(
      new iam.PolicyStatement({
        actions: ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [
          `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:${emfLogGroup}`,
          `arn:${this.partition}:logs:${this.region}:${this.account}:log-group:${emfLogGroup}:*`,
        ],
      }),
    );
  }
}
