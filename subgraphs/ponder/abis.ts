/**
 * The events the app indexes, as const ABIs for Ponder's types. They are the subgraph's ABIs
 * (../custody/abis, extracted from chains/contracts/artifacts.json); abis.test.ts checks both.
 */
export const forwarderFactoryAbi = [
  {
    type: "event",
    name: "Swept",
    anonymous: false,
    inputs: [
      { indexed: true, name: "salt", type: "bytes32", internalType: "bytes32" },
      { indexed: true, name: "depositAddress", type: "address", internalType: "address" },
      { indexed: true, name: "token", type: "address", internalType: "address" },
      { indexed: false, name: "amount", type: "uint256", internalType: "uint256" },
    ],
  },
] as const;

export const reservesAttestorAbi = [
  {
    type: "event",
    name: "Attested",
    anonymous: false,
    inputs: [
      { indexed: true, name: "asset", type: "address", internalType: "address" },
      { indexed: true, name: "block", type: "uint256", internalType: "uint256" },
      { indexed: false, name: "reserves", type: "uint256", internalType: "uint256" },
      { indexed: false, name: "liabilities", type: "uint256", internalType: "uint256" },
      { indexed: false, name: "liabilitiesRoot", type: "bytes32", internalType: "bytes32" },
      { indexed: false, name: "addressesRoot", type: "bytes32", internalType: "bytes32" },
      { indexed: false, name: "reportHash", type: "bytes32", internalType: "bytes32" },
    ],
  },
] as const;

export const erc20TransferAbi = [
  {
    type: "event",
    name: "Transfer",
    anonymous: false,
    inputs: [
      { indexed: true, name: "from", type: "address", internalType: "address" },
      { indexed: true, name: "to", type: "address", internalType: "address" },
      { indexed: false, name: "value", type: "uint256", internalType: "uint256" },
    ],
  },
] as const;
