/**
 * The one error base class. Every error we raise on purpose has a stable `code`
 * (documented in docs/errors.md) and says whether the caller may retry.
 */
export type BaseErrorOptions = {
  code: string;
  details?: string | undefined;
  cause?: unknown;
  retryable?: boolean;
  /** Extra machine-readable facts (field names, ids) for logs and problem+json. */
  meta?: Record<string, unknown>;
};

export class BaseError extends Error {
  override name = "BaseError";
  readonly code: string;
  readonly shortMessage: string;
  readonly details: string | undefined;
  readonly retryable: boolean;
  readonly meta: Record<string, unknown>;

  constructor(shortMessage: string, options: BaseErrorOptions) {
    const message = options.details
      ? `${shortMessage}\n\nDetails: ${options.details}`
      : shortMessage;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.shortMessage = shortMessage;
    this.details = options.details;
    this.retryable = options.retryable ?? false;
    this.meta = options.meta ?? {};
  }
}

export type FieldIssue = { field: string; message: string };

/** Bad configuration: lists every bad field at once. */
export class ConfigError extends BaseError {
  override name = "ConfigError";
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[]) {
    super(
      `Invalid configuration (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n${issues
        .map((i) => `  - ${i.field}: ${i.message}`)
        .join("\n")}`,
      { code: "CONFIG_INVALID", meta: { issues } },
    );
    this.issues = issues;
  }
}
