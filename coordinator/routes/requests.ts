/**
 * Approval requests (issue "Nodes decide"): list and read them (bearer tokens may: they change
 * nothing), and approve one with a principal's signed `POST /v1/requests/{id}/approvals` whose body
 * names the request digest (policy/approvals.ts). When the quorum is in, the operation runs and the
 * request carries its result (`Executed`) or error (`Failed`); after its expiry, `ApprovalExpired`.
 */
import { KmsError } from '../../protocol/errors.ts';
import { APPROVAL_STATES, type ApprovalState, approvalView } from '../approval-requests.ts';
import { canSeeKey } from '../auth.ts';
import { type AppContext, type KmsApp, callerOf } from './context.ts';
import { approve } from './operations.ts';
import { bearer, responses, signed } from './schemas.ts';

const requestId = {
  type: 'object',
  additionalProperties: false,
  required: ['requestId'],
  properties: { requestId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' } },
};

const requestObject = {
  type: 'object',
  additionalProperties: true,
  required: [
    'requestId',
    'operation',
    'keyId',
    'digest',
    'state',
    'initiator',
    'approvals',
    'needed',
    'createdAt',
    'expiresAt',
  ],
  properties: {
    requestId: { type: 'string' },
    operation: { type: 'string' },
    keyId: { type: ['string', 'null'] },
    digest: { type: 'string', description: 'requestDigest of the signed request: what approvers sign' },
    state: { type: 'string', enum: [...APPROVAL_STATES] },
    initiator: { type: 'string' },
    approvals: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['principal', 'approvedAt', 'counts'],
        properties: {
          principal: { type: 'string' },
          approvedAt: { type: 'string' },
          counts: { type: 'boolean', description: 'whether the policy counts it (never the initiator)' },
        },
      },
    },
    needed: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['group', 'needed', 'have'],
        properties: {
          group: { type: 'string' },
          needed: { type: 'integer' },
          have: { type: 'array', items: { type: 'string' } },
        },
      },
    },
    createdAt: { type: 'string' },
    expiresAt: { type: 'string' },
    finishedAt: { type: 'string' },
    signedRequest: { type: 'object', additionalProperties: true },
    result: { type: 'object', additionalProperties: true },
    error: { type: 'object', additionalProperties: true },
  },
};

export function requestRoutes(app: KmsApp, ctx: AppContext): void {
  app.get<{ Querystring: { state?: ApprovalState; limit?: string } }>(
    '/v1/requests',
    {
      config: { permission: 'keys:read', action: 'ListRequests' },
      schema: {
        summary: 'Requests waiting for approvals (or in another state), newest first',
        tags: ['approvals'],
        security: bearer,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            state: { type: 'string', enum: [...APPROVAL_STATES] },
            limit: {
              type: 'string',
              pattern: '^[1-9][0-9]{0,3}$',
              description: 'at most 1000 (default 100)',
            },
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['requests'],
          properties: { requests: { type: 'array', items: requestObject } },
        }),
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const list = await ctx.approvals.list({
        ...(req.query.state === undefined ? {} : { state: req.query.state }),
        limit: Math.min(Number(req.query.limit ?? 100), 1000),
      });
      return {
        requests: list.filter((r) => r.keyId === null || canSeeKey(caller, r.keyId)).map(approvalView),
      };
    },
  );

  app.get<{ Params: { requestId: string } }>(
    '/v1/requests/:requestId',
    {
      config: { permission: 'keys:read', action: 'GetRequest' },
      schema: {
        summary: 'One approval request: what was asked, by whom, approvals, state, result',
        tags: ['approvals'],
        security: bearer,
        params: requestId,
        response: responses(200, requestObject),
      },
    },
    async (req) => {
      const r = await ctx.approvals.get(req.params.requestId);
      // A token limited to other keys learns nothing of this request, as if it did not exist.
      if (r.keyId !== null && !canSeeKey(callerOf(req), r.keyId)) {
        throw new KmsError('NotFound', `request ${JSON.stringify(req.params.requestId)} not found`);
      }
      return approvalView(r);
    },
  );

  app.post<{ Params: { requestId: string }; Body: { requestDigest: string } }>(
    '/v1/requests/:requestId/approvals',
    {
      config: { signed: 'ApproveRequest', action: 'ApproveRequest' },
      schema: {
        summary: 'Approve a request (signed by the approver); runs it once its approvals are in',
        tags: ['approvals'],
        security: signed,
        params: requestId,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['requestDigest'],
          properties: { requestDigest: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
        },
        response: responses(200, requestObject),
      },
    },
    async (req) => {
      const rec = await approve(
        ctx,
        req.params.requestId,
        { principal: req.principal!, wire: req.auth!.request, requestDigest: req.body.requestDigest },
        req.log,
      );
      req.audit.approvalRequestId = rec.requestId;
      if (rec.keyId !== null) req.audit.keyId = rec.keyId;
      return approvalView(rec);
    },
  );
}
