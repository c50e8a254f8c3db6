/**
 * A webhook endpoint's `events` name event types the service sends. A misspelt name matched no
 * event, so the endpoint silently never heard of it (a backend configured with
 * "withdrawal.reorg" was never told a confirmed withdrawal was taken back by a reorg).
 */
import { describe, expect, it } from "vitest";
import { chainSchema } from "../chains/index.js";
import { configIssuesOf, minimalChain, writeConfigFile } from "../ops/testing/configFile.js";
import { loadConfig } from "./config.js";

const load = (events: string[]) => {
  const file = writeConfigFile({
    chains: [minimalChain],
    webhooks: [{ url: "http://127.0.0.1:9/hook", secretEnv: "HOOK_SECRET", events }],
  });
  return () => loadConfig(chainSchema, { CUSTODY_CONFIG: file, HOOK_SECRET: "s3cret" });
};

describe("webhook endpoint events", () => {
  it("refuses event names the service never sends, naming each", () => {
    const issues = configIssuesOf(
      load(["deposit.confirmed", "withdrawal.reorg", "deposits.*", "deposit.credted"]),
    );
    expect(issues.map((i) => i.field.replace(/^.*\.json\./, ""))).toEqual([
      "webhooks.0.events.1",
      "webhooks.0.events.2",
      "webhooks.0.events.3",
    ]);
    expect(issues[0]!.message).toMatch(/withdrawal\.reorged/);
  });

  it("accepts every event type, a group's wildcard and *", () => {
    expect(
      load(["*", "deposit.*", "withdrawal.*", "withdrawal.reorged", "deposit.orphaned"])()
        .webhooks[0]!.events,
    ).toHaveLength(5);
  });

  it("refuses an endpoint told deposit.credited but not the reorg events that take a credit back", () => {
    // Its backend would credit the customer and never hear that a reorg held or reversed it.
    const issues = configIssuesOf(load(["deposit.credited", "withdrawal.*"]));
    expect(issues.map((i) => i.field.replace(/^.*\.json\./, ""))).toEqual(["webhooks.0.events"]);
    expect(issues[0]!.message).toMatch(
      /deposit\.reorg_held, deposit\.reorg_restored, deposit\.reorg_reversed/,
    );
    expect(configIssuesOf(load(["deposit.credited", "deposit.reorg_held"]))[0]!.message).toMatch(
      /deposit\.reorg_restored, deposit\.reorg_reversed/,
    );
  });

  it("accepts deposit.credited with the reorg events, and endpoints not told credits", () => {
    const told = ["deposit.credited", "deposit.reorg_held", "deposit.reorg_restored"];
    expect(load([...told, "deposit.reorg_reversed"])().webhooks[0]!.events).toHaveLength(4);
    expect(load(["deposit.detected", "deposit.confirmed", "inflow.*"])().webhooks).toHaveLength(1);
    expect(load(["deposit.*"])().webhooks).toHaveLength(1);
  });

  it("refuses an endpoint told withdrawal.confirmed but not the events that undo or end it after a reorg", () => {
    // Its backend would mark the withdrawal paid and never hear that a reorg took it back to
    // broadcast (withdrawal.reorged), nor that it then failed (withdrawal.failed) and the customer
    // has the money again. Old code: "Error: expected a ConfigError" (the config was accepted).
    const issues = configIssuesOf(load(["withdrawal.confirmed", "deposit.*"]));
    expect(issues.map((i) => i.field.replace(/^.*\.json\./, ""))).toEqual(["webhooks.0.events"]);
    expect(issues[0]!.message).toMatch(
      /withdrawal\.confirmed without the events that undo it: add withdrawal\.reorged, withdrawal\.failed/,
    );
    expect(configIssuesOf(load(["withdrawal.confirmed", "withdrawal.failed"]))[0]!.message).toMatch(
      /add withdrawal\.reorged \(or withdrawal\.\*\)/,
    );
  });

  it("refuses an endpoint told withdrawal.failed but not withdrawal.failure_undone", () => {
    // Its backend would keep the customer refunded and never hear that a deep reorg undid the
    // failure (held again, maybe paid). Old code: "Error: expected a ConfigError".
    const issues = configIssuesOf(load(["withdrawal.failed"]));
    expect(issues.map((i) => i.field.replace(/^.*\.json\./, ""))).toEqual(["webhooks.0.events"]);
    expect(issues[0]!.message).toMatch(
      /withdrawal\.failed without the event that undoes it: add withdrawal\.failure_undone/,
    );
  });

  it("accepts withdrawal.confirmed with reorged, failed and failure_undone, and endpoints not told confirmations", () => {
    const told = [
      "withdrawal.confirmed",
      "withdrawal.reorged",
      "withdrawal.failed",
      "withdrawal.failure_undone",
    ];
    expect(load(told)().webhooks[0]!.events).toHaveLength(4);
    expect(load(["withdrawal.*"])().webhooks).toHaveLength(1);
    expect(load(["withdrawal.approved", "withdrawal.broadcast"])().webhooks).toHaveLength(1);
  });
});
