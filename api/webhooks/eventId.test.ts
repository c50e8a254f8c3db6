import { describe, expect, it } from "vitest";
import { eventIdOf, uuidV5 } from "./eventId.js";

describe("uuidV5", () => {
  it("matches the RFC 4122 test vector (python uuid.uuid5(NAMESPACE_DNS, 'python.org'))", () => {
    expect(uuidV5("python.org", "6ba7b810-9dad-11d1-80b4-00c04fd430c8")).toBe(
      "886313e1-3b8a-5372-9b90-0c9aee199e5d",
    );
  });
  it("is deterministic and distinct per name", () => {
    expect(eventIdOf("withdrawal:1:approved")).toBe(eventIdOf("withdrawal:1:approved"));
    expect(eventIdOf("withdrawal:1:approved")).not.toBe(eventIdOf("withdrawal:1:failed"));
  });
});
