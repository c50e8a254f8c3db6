/**
 * The one way integration tests wait: `waitFor` (poll a condition until it holds, throw naming what
 * was awaited when a generous deadline passes) and `within`. They live in ops/devstack/wait.ts,
 * where the demo's production steps wait the same way.
 */
export { type WaitOptions, waitFor, within } from "../devstack/wait.js";
