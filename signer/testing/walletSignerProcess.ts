/**
 * A signer process for kill -9 tests: runs the broadcaster for the first hot wallet of the config
 * (CUSTODY_CONFIG, DATABASE_URL, REDIS_URL, REDIS_PREFIX, AWS_ENDPOINT_URL_KMS as usual), until
 * SIGTERM or a SIGKILL. SIGNER_CRASH_AT=<point>:<n> kills itself at the n-th pass of a point.
 * SIGNER_PROCESS_TAG names its Postgres connections so a test can see who holds the lease.
 */

import { chainSchema } from "../../chains/index.js";
import { createCommon } from "../../foundation/common.js";
import { chainByKey, loadConfig } from "../../foundation/config.js";
import { createPool } from "../../foundation/db.js";
import { createQueueFactory } from "../../foundation/queues.js";
import { createRedis } from "../../foundation/redis.js";
import { parseCrashAt } from "../broadcaster/crashPoints.js";
import { createKmsAccount, createKmsClient } from "../kmsAccount.js";
import { startWalletSigner } from "../walletSigner.js";

const config = loadConfig(chainSchema);
const common = createCommon(config);
const wallet = config.hotWallets[0];
if (!wallet) throw new Error("the config has no hot wallet");
const chain = chainByKey(config, wallet.chain);
const pool = createPool(config.env.DATABASE_URL, { max: 4 });
const redis = createRedis(config.env.REDIS_URL);
const queues = createQueueFactory({ redis, prefix: config.env.REDIS_PREFIX, common });
const kms = createKmsClient({
  region: config.env.AWS_REGION,
  endpoint: config.env.AWS_ENDPOINT_URL_KMS,
  emulator: config.env.KMS_EMULATOR,
});
const tag = process.env.SIGNER_PROCESS_TAG ?? `pid-${process.pid}`;
const signer = startWalletSigner({
  common,
  pool,
  queues,
  chain,
  databaseUrl: config.env.DATABASE_URL,
  account: () => createKmsAccount({ kms, keyId: wallet.kmsKeyId }),
  pollMs: 50,
  batchSize: Number(process.env.SIGNER_BATCH_SIZE ?? 25),
  crashAt: parseCrashAt(process.env.SIGNER_CRASH_AT),
  applicationName: `signer-${tag}`,
});
console.log(`signer process ${tag} started`);

process.once("SIGTERM", async () => {
  await signer.stop();
  await queues.close();
  await redis.quit().catch(() => {});
  await pool.end();
  kms.destroy();
  process.exit(0);
});
