/**
 * The CDK app synthesizes offline, and its template says what the issue asks: only each chain's
 * signer task role may sign, and only with that chain's hot wallet keys; no public IPs; storage
 * encrypted; every role runs the planned command with the planned environment names.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exampleInfraConfigPath } from "./app.js";
import { planEnvironment, SERVICE_PORT, STOP_TIMEOUT_S } from "./plan.js";
import {
  containerNamed,
  resourcesOfType,
  scheduledTasks,
  serviceTasks,
  synthTemplate,
  type Template,
} from "./template.js";

const plan = planEnvironment(JSON.parse(readFileSync(exampleInfraConfigPath, "utf8")));
const outdir = mkdtempSync(path.join(tmpdir(), "custody-cdk-"));
let template: Template;

beforeAll(() => {
  template = synthTemplate({ CUSTODY_ENV: "staging", CDK_DEFAULT_REGION: "eu-west-1" }, outdir);
}, 180_000);
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

type Statement = {
  Effect: string;
  Action: string | string[];
  Principal?: unknown;
  Condition?: unknown;
};
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const usesKey = (s: Statement) =>
  actionsOf(s).some((a) => ["kms:Sign", "kms:GetPublicKey", "kms:*", "*"].includes(a));

/** The task role (logical id) of the service whose name ends with `-<planId>`. */
function taskRoleOf(planId: string): string {
  const task = serviceTasks(template).find((t) => t.name === `custody-staging-${planId}`);
  if (!task) throw new Error(`no service ${planId}`);
  const def = template.Resources[task.taskDefinitionId]?.Properties;
  return def.TaskRoleArn["Fn::GetAtt"][0];
}

describe("CDK app (synthesized offline)", () => {
  it("has one ECS service per planned role and chain, lease holders with two tasks", () => {
    const services = resourcesOfType(template, "AWS::ECS::Service").map((s) => [
      s.properties.ServiceName,
      s.properties.DesiredCount,
    ]);
    expect(services.sort()).toEqual(
      [
        ["custody-staging-indexer-ethereum", 2],
        ["custody-staging-indexer-base", 2],
        ["custody-staging-signer-ethereum", 2],
        ["custody-staging-signer-base", 2],
        ["custody-staging-worker", 2],
        ["custody-staging-api", 2],
        ["custody-staging-reconciler", 1],
      ].sort(),
    );
    expect(scheduledTasks(template).map((t) => t.name)).toEqual([
      "custody-staging-reconcile-nightly",
    ]);
  });

  it("only each chain's signer task role may sign or read the public key, only with its chain's keys", () => {
    const keys = resourcesOfType(template, "AWS::KMS::Key");
    expect(keys).toHaveLength(2);
    const aliases = resourcesOfType(template, "AWS::KMS::Alias");
    for (const key of keys) {
      expect(key.properties.KeySpec).toBe("ECC_SECG_P256K1");
      expect(key.properties.KeyUsage).toBe("SIGN_VERIFY");
      const alias = aliases.find((a) => a.properties.TargetKeyId["Fn::GetAtt"][0] === key.id);
      const chain = /^alias\/custody-staging-([a-z]+)-hot$/.exec(alias?.properties.AliasName)?.[1];
      expect(chain, key.id).toBeDefined();
      const signerRole = taskRoleOf(`signer-${chain}`);
      const statements = key.properties.KeyPolicy.Statement as Statement[];
      const allows = statements.filter((s) => s.Effect === "Allow" && usesKey(s));
      expect(allows).toHaveLength(1);
      expect(allows[0]?.Principal).toEqual({ AWS: { "Fn::GetAtt": [signerRole, "Arn"] } });
      // DescribeKey: the signer's check of the key's state while idle (KmsKeyNotEnabled).
      expect(actionsOf(allows[0] as Statement).sort()).toEqual([
        "kms:DescribeKey",
        "kms:GetPublicKey",
        "kms:Sign",
      ]);
      // Administrators (the account) cannot use the key, and a Deny covers every other principal
      // (including IAM policies granted later outside this stack).
      const deny = statements.find((s) => s.Effect === "Deny");
      expect(deny?.Principal).toEqual({ AWS: "*" });
      expect(actionsOf(deny as Statement).sort()).toEqual(["kms:GetPublicKey", "kms:Sign"]);
      expect(deny?.Condition).toEqual({
        ArnNotEquals: { "aws:PrincipalArn": { "Fn::GetAtt": [signerRole, "Arn"] } },
      });
    }
    // No IAM policy in the stack grants signing to anyone.
    for (const policy of resourcesOfType(template, "AWS::IAM::Policy")) {
      const statements = policy.properties.PolicyDocument.Statement as Statement[];
      expect(statements.filter(usesKey), policy.id).toEqual([]);
    }
    // The two chains' signers are different roles, and no other service uses either.
    expect(taskRoleOf("signer-ethereum")).not.toBe(taskRoleOf("signer-base"));
  });

  it("gives nothing a public IP: services, scheduled task, ALB, database", () => {
    for (const s of resourcesOfType(template, "AWS::ECS::Service"))
      expect(s.properties.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp).toBe("DISABLED");
    for (const rule of resourcesOfType(template, "AWS::Events::Rule"))
      for (const target of rule.properties.Targets)
        expect(target.EcsParameters.NetworkConfiguration.AwsVpcConfiguration.AssignPublicIp).toBe(
          "DISABLED",
        );
    const [alb] = resourcesOfType(template, "AWS::ElasticLoadBalancingV2::LoadBalancer");
    expect(alb?.properties.Scheme).toBe("internal");
    for (const db of resourcesOfType(template, "AWS::RDS::DBInstance"))
      expect(db.properties.PubliclyAccessible).toBe(false);
    // Services run in subnets that do not map public IPs.
    const subnets = new Map(
      resourcesOfType(template, "AWS::EC2::Subnet").map((s) => [s.id, s.properties]),
    );
    for (const s of resourcesOfType(template, "AWS::ECS::Service"))
      for (const ref of s.properties.NetworkConfiguration.AwsvpcConfiguration.Subnets)
        expect(subnets.get(ref.Ref)?.MapPublicIpOnLaunch, ref.Ref).toBe(false);
  });

  it("registers every service's tasks in Cloud Map for Prometheus, reachable only from the monitoring group", () => {
    const [ns] = resourcesOfType(template, "AWS::ServiceDiscovery::PrivateDnsNamespace");
    expect(ns?.properties.Name).toBe("custody-staging.internal");
    const discovery = resourcesOfType(template, "AWS::ServiceDiscovery::Service");
    expect(discovery.map((d) => d.properties.Name).sort()).toEqual(
      plan.services.map((s) => s.id).sort(),
    );
    for (const s of resourcesOfType(template, "AWS::ECS::Service"))
      expect(s.properties.ServiceRegistries, s.properties.ServiceName).toHaveLength(1);
    // Port 8080 on the tasks: from the ALB and from the monitoring group, nothing else.
    const ingress = resourcesOfType(template, "AWS::EC2::SecurityGroupIngress").filter(
      (i) => i.properties.FromPort === 8080,
    );
    expect(ingress.map((i) => i.properties.SourceSecurityGroupId["Fn::GetAtt"][0]).sort()).toEqual(
      [expect.stringMatching(/^AlbSg/), expect.stringMatching(/^MonitoringSg/)].sort(),
    );
  });

  it("encrypts storage: Aurora, Redis at rest and in transit, logs kept", () => {
    const [cluster] = resourcesOfType(template, "AWS::RDS::DBCluster");
    expect(cluster?.properties.StorageEncrypted).toBe(true);
    expect(cluster?.properties.DeletionProtection).toBe(true);
    const [redis] = resourcesOfType(template, "AWS::ElastiCache::ReplicationGroup");
    expect(redis?.properties).toMatchObject({
      AtRestEncryptionEnabled: true,
      TransitEncryptionEnabled: true,
      ClusterMode: "enabled",
    });
    // Credentials reach the template only as Secrets Manager references, never as values.
    expect(JSON.stringify(redis?.properties.AuthToken)).toContain("{{resolve:secretsmanager:");
    const urls = resourcesOfType(template, "AWS::SecretsManager::Secret").filter((s) =>
      /database-url|redis-url/.test(s.properties.Name),
    );
    expect(urls).toHaveLength(2);
    for (const u of urls)
      expect(JSON.stringify(u.properties.SecretString)).toContain("{{resolve:secretsmanager:");
    const [logs] = Object.values(template.Resources).filter(
      (r) => r.Type === "AWS::Logs::LogGroup",
    );
    expect(logs).toMatchObject({
      DeletionPolicy: "Retain",
      Properties: { LogGroupName: "/custody/staging", RetentionInDays: 90 },
    });
  });

  it("runs each role with its command, the planned env names, migrations first, liveness and readiness checks", () => {
    const tasks = serviceTasks(template);
    const expectedEnv = [...Object.keys(plan.environment), "AWS_REGION"].sort();
    expect(plan.environment.REDIS_PREFIX).toBe("{custody}");
    for (const svc of plan.services) {
      const task = tasks.find((t) => t.name === `custody-staging-${svc.id}`);
      if (!task) throw new Error(`no task for ${svc.id}`);
      const app = containerNamed(task, "app");
      expect(app.Command, svc.id).toEqual(svc.command);
      expect(app.Environment?.map((e) => e.Name).sort(), svc.id).toEqual(expectedEnv);
      expect(app.Secrets?.map((e) => e.Name).sort(), svc.id).toEqual([...plan.secretNames].sort());
      expect(app.Environment?.some((e) => e.Name === "AWS_ENDPOINT_URL_KMS")).toBe(false);
      expect(app.StopTimeout).toBe(STOP_TIMEOUT_S);
      expect(app.HealthCheck?.Command.join(" ")).toContain(`127.0.0.1:${SERVICE_PORT}/healthz`);
      expect(app.DependsOn).toEqual([{ ContainerName: "migrate", Condition: "SUCCESS" }]);
      const migrate = containerNamed(task, "migrate");
      expect(migrate.Command).toEqual(["migrate"]);
      expect(migrate.Essential).toBe(false);
    }
    expect(plan.services.find((s) => s.role === "indexer")?.command).toEqual([
      "start",
      "--roles",
      "indexer",
      "--chains",
      "ethereum",
    ]);
    const [nightly] = scheduledTasks(template);
    expect(containerNamed(nightly!, "app").Command).toEqual(plan.scheduledReconcile.command);
    // The ALB checks readiness, on the api tasks only.
    const groups = resourcesOfType(template, "AWS::ElasticLoadBalancingV2::TargetGroup");
    expect(groups.map((g) => g.properties.HealthCheckPath)).toEqual(["/readyz"]);
    const lbServices = resourcesOfType(template, "AWS::ECS::Service").filter(
      (s) => s.properties.LoadBalancers,
    );
    expect(lbServices.map((s) => s.properties.ServiceName)).toEqual(["custody-staging-api"]);
  });

  it("scales the api on CPU and the worker on queue depth", () => {
    const policies = resourcesOfType(template, "AWS::ApplicationAutoScaling::ScalingPolicy");
    expect(
      policies.some(
        (p) =>
          p.properties.TargetTrackingScalingPolicyConfiguration?.PredefinedMetricSpecification
            ?.PredefinedMetricType === "ECSServiceAverageCPUUtilization",
      ),
    ).toBe(true);
    const alarms = resourcesOfType(template, "AWS::CloudWatch::Alarm");
    expect(alarms.map((a) => a.properties.MetricName)).toContain("custody_queue_jobs");
  });

  it("serves HTTPS on the internal ALB when given a certificate, HTTP inside the VPC otherwise", () => {
    const listeners = (t: Template) =>
      resourcesOfType(t, "AWS::ElasticLoadBalancingV2::Listener").map((l) => [
        l.properties.Port,
        l.properties.Protocol,
        l.properties.Certificates,
      ]);
    expect(listeners(template)).toEqual([[80, "HTTP", undefined]]);
    const certificateArn = "arn:aws:acm:eu-west-1:111111111111:certificate/abc";
    const tls = synthTemplate(
      {
        CUSTODY_ENV: "staging",
        CDK_DEFAULT_REGION: "eu-west-1",
        CUSTODY_CERTIFICATE_ARN: certificateArn,
      },
      path.join(outdir, "tls"),
    );
    expect(listeners(tls)).toEqual([[443, "HTTPS", [{ CertificateArn: certificateArn }]]]);
  }, 120_000);

  it("refuses a hot wallet whose key is not an alias the stack can create", () => {
    const raw = JSON.parse(readFileSync(exampleInfraConfigPath, "utf8"));
    raw.hotWallets[0].kmsKeyId = "1234abcd-12ab-34cd-56ef-1234567890ab";
    expect(() => planEnvironment(raw)).toThrow(/hotWallets\.0\.kmsKeyId: must be a KMS alias/);
  });
});
