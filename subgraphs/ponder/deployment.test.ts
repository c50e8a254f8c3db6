import { describe, expect, it } from "vitest";
import { parseDeployment, readDeployment } from "./deployment.js";

const good = {
  chain: "local-a",
  chainId: 31337,
  rpcUrls: ["http://127.0.0.1:8545"],
  startBlock: 3,
  forwarderFactory: "0x4C5836cDBe9a7f742FeF5E12628d0Cd26dA53A3c",
  reservesAttestor: "0xac7d9020ac55aca7ffc15e12317a7709881ac075",
  attestorStartBlock: 9,
  hotWallets: ["0x0CC1fe39c713bD80a9F81AC1d33170339798Ab10"],
  coldWallets: [],
  tokens: ["0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35"],
};

describe("the Ponder app's deployment file", () => {
  it("accepts a deployment and lowercases its addresses", () => {
    const d = parseDeployment(good);
    expect(d.forwarderFactory).toBe("0x4c5836cdbe9a7f742fef5e12628d0cd26da53a3c");
    expect(d.hotWallets).toEqual(["0x0cc1fe39c713bd80a9f81ac1d33170339798ab10"]);
    expect(d.tokens).toEqual(["0x700b6a60ce7eaaea56f065753d8dcb9653dbad35"]);
    expect(d).not.toHaveProperty("pollingIntervalMs");
  });

  it("names every bad field at once", () => {
    expect(() =>
      parseDeployment({
        ...good,
        chainId: 0,
        rpcUrls: ["ftp://x"],
        startBlock: -1,
        forwarderFactory: "0x12",
        hotWallets: ["nope"],
        tokens: "0x700b6A60ce7EaaEA56F065753d8dcB9653dbAD35",
        pollingIntervalMs: 0,
      }),
    ).toThrow(
      "bad custody deployment: chainId: expected a positive integer; rpcUrls: expected a non-empty array of http(s)/ws(s) URLs; startBlock: expected a block number; forwarderFactory: expected a 0x address; hotWallets[0]: expected a 0x address; tokens: expected an array of addresses; pollingIntervalMs: expected a positive number of ms",
    );
  });

  it("refuses a missing file name with what to set", () => {
    expect(() => readDeployment({})).toThrow("CUSTODY_PONDER_DEPLOYMENT is not set");
  });
});
