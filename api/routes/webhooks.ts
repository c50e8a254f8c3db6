/** Webhook deliveries: the dead-letter list and re-drive (admin). */
import { type FastifyPluginAsyncTypebox, Type } from "@fastify/type-provider-typebox";
import { BaseError } from "../../foundation/errors.js";
import { callerOf } from "../auth.js";
import { idempotencyKeyOf, requestHash } from "../idempotency.js";
import { IdempotencyHeaders, Limit, pageLimit, problemResponses, Uuid } from "../schemas.js";
import { EVENT_TYPES, listDeliveries, redriveDeliveries } from "../webhooks/events.js";
import type { V1Deps } from "./deps.js";

const DeliveryOut = Type.Object({
  eventId: Type.String(),
  type: Type.String({ description: `the event's type: ${EVENT_TYPES.join(", ")}` }),
  endpoint: Type.String(),
  status: Type.String(),
  attempts: Type.Integer(),
  redrives: Type.Integer(),
  lastError: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

function deliveryOut(d: Awaited<ReturnType<typeof listDeliveries>>[number]) {
  return {
    ...d,
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

export function webhooksRoutes(deps: V1Deps): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get(
      "/webhooks/deliveries",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["webhooks"],
          summary: "Webhook deliveries; status=dead is the dead-letter list",
          querystring: Type.Object(
            {
              status: Type.Optional(
                Type.Union([
                  Type.Literal("pending"),
                  Type.Literal("delivered"),
                  Type.Literal("dead"),
                ]),
              ),
              limit: Limit,
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ deliveries: Type.Array(DeliveryOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const rows = await listDeliveries(deps.pool, {
          ...(request.query.status ? { status: request.query.status } : {}),
          limit: pageLimit(request.query.limit),
        });
        return { deliveries: rows.map(deliveryOut) };
      },
    );

    app.post(
      "/webhooks/dead-letters/:eventId/redrive",
      {
        config: { scopes: ["admin"] },
        schema: {
          tags: ["webhooks"],
          summary: "Re-drive a dead event (all its dead endpoints, or one)",
          headers: IdempotencyHeaders,
          params: Type.Object({ eventId: Uuid }),
          description:
            "Refused (409 WEBHOOK_REDRIVE_OUT_OF_ORDER, listing them) when a later event of the " +
            "same deposit or withdrawal was already delivered to the endpoint, or is being sent " +
            "to it (pending): the receiver would apply the older state last. `force: true` sends " +
            "it anyway; every event carries its " +
            "`subject` and `sequence` so a receiver can drop one older than what it applied.",
          body: Type.Optional(
            Type.Object(
              {
                endpoint: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
                force: Type.Optional(Type.Boolean()),
              },
              { additionalProperties: false },
            ),
          ),
          response: {
            200: Type.Object({ redriven: Type.Array(DeliveryOut) }),
            ...problemResponses,
          },
        },
      },
      async (request) => {
        const { redriven: rows, later } = await redriveDeliveries(
          deps.pool,
          request.params.eventId,
          {
            endpoint: request.body?.endpoint,
            force: request.body?.force,
            under: {
              caller: callerOf(request),
              key: idempotencyKeyOf(request),
              requestHash: requestHash(request),
            },
          },
        );
        if (later.length > 0)
          throw new BaseError(
            `Event ${request.params.eventId} is older than events of its subject delivered or being delivered; re-driven, the receiver would apply it last`,
            {
              code: "WEBHOOK_REDRIVE_OUT_OF_ORDER",
              details:
                "re-drive with force: true only if the receiver drops events older (by sequence) than what it applied",
              meta: { event_id: request.params.eventId, later },
            },
          );
        if (rows.length === 0)
          throw new BaseError(`No dead delivery for event ${request.params.eventId}`, {
            code: "DEAD_LETTER_NOT_FOUND",
            meta: { event_id: request.params.eventId },
          });
        await deps.ringWebhooks();
        return { redriven: rows.map(deliveryOut) };
      },
    );
  };
}
