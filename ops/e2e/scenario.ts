/**
 * The custody story the end-to-end tests run lives in production code, ops/devstack/scenario.ts
 * (`npm run demo` runs it too); tests outside ops/ import it from here.
 */
export { demoPolicies, EXTERNAL, runScenario, type ScenarioResult } from "../devstack/scenario.js";
