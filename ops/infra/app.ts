/**
 * The CDK app: `npx tsx ops/infra/app.ts` synthesizes one environment into cdk.out (or `cdk deploy
 * --app "npx tsx ops/infra/app.ts"`). Inputs from the environment:
 *   CUSTODY_ENV           environment name (default `staging`)
 *   CUSTODY_INFRA_CONFIG  the custody config file for that environment (default: ops/infra/example.config.json)
 *   CUSTODY_IMAGE         the image URI every task runs (required to deploy; a placeholder for synth)
 *   CUSTODY_VPC_ID        an existing VPC to run in (optional; needs AWS credentials for the lookup)
 *   CUSTODY_CERTIFICATE_ARN  ACM certificate for the internal ALB (optional: HTTPS on 443, else HTTP on 80)
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { CustodyStack } from "./stack.js";

export const exampleInfraConfigPath = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "example.config.json",
);

export function buildApp(env: NodeJS.ProcessEnv = process.env, outdir?: string): App {
  const app = new App(outdir ? { outdir } : {});
  const envName = env.CUSTODY_ENV ?? "staging";
  const configPath = env.CUSTODY_INFRA_CONFIG ?? exampleInfraConfigPath;
  new CustodyStack(app, `Custody-${envName}`, {
    envName,
    config: JSON.parse(readFileSync(configPath, "utf8")),
    image: env.CUSTODY_IMAGE ?? "custody-node:synth-placeholder",
    ...(env.CUSTODY_VPC_ID ? { vpcId: env.CUSTODY_VPC_ID } : {}),
    ...(env.CUSTODY_CERTIFICATE_ARN ? { certificateArn: env.CUSTODY_CERTIFICATE_ARN } : {}),
    env: {
      ...(env.CDK_DEFAULT_ACCOUNT ? { account: env.CDK_DEFAULT_ACCOUNT } : {}),
      region: env.CDK_DEFAULT_REGION ?? "us-east-1",
    },
  });
  return app;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const assembly = buildApp().synth();
  for (const stack of assembly.stacks) console.log(`${stack.stackName}: ${stack.templateFullPath}`);
}
