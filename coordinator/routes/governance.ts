/**
 * Governance through the coordinator (issue "Nodes decide"): the current document as the nodes
 * hold it (a majority must agree; the others are named), and new versions relayed to every node,
 * each of which accepts one only with the admin quorum of its current version. A change is done
 * only when every node confirmed it, as with lifecycle changes (M-2).
 */
import { KmsError } from '../../protocol/errors.ts';
import {
  acceptGovernance,
  type GovernanceSignature,
  governanceHash,
  governanceSignaturesSchema,
} from '../../policy/governance.ts';
import type { NodeOutcome } from '../cluster.ts';
import { type AppContext, type KmsApp, auditDecision } from './context.ts';
import { bearer, responses, signed } from './schemas.ts';

const nodeReport = {
  type: 'object',
  additionalProperties: false,
  required: ['node'],
  properties: {
    node: { type: 'string' },
    version: { type: 'integer' },
    hash: { type: 'string' },
    error: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
};

const outcome = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'ok'],
  properties: {
    node: { type: 'string' },
    ok: { type: 'boolean' },
    code: { type: 'string' },
    message: { type: 'string' },
  },
};

/** The error when not every node confirmed: their refusal if they all refused, else 503 naming them. */
function updateError(version: number, outcomes: readonly NodeOutcome[]): KmsError {
  const missed = outcomes.filter((o) => !o.ok);
  const named = missed.map((o) => `${o.node} (${o.error?.code ?? 'no answer'}: ${o.error?.message ?? ''})`);
  const codes = new Set(missed.map((o) => o.error?.code));
  const details = {
    confirmed: outcomes.filter((o) => o.ok).map((o) => o.node),
    missed: missed.map((o) => ({ node: o.node, code: o.error?.code ?? 'Internal' })),
  };
  const only = [...codes][0];
  if (missed.length === outcomes.length && codes.size === 1 && only && only !== 'QuorumUnavailable') {
    return new KmsError(only, `governance version ${version} refused by every node: ${named.join(', ')}`, {
      details,
    });
  }
  return new KmsError(
    'QuorumUnavailable',
    `governance version ${version} was not confirmed by ${named.join(', ')} (retry when the nodes are back)`,
    { details, culprits: missed.map((o) => ({ participant: o.node, reason: 'unresponsive' })) },
  );
}

export function governanceRoutes(app: KmsApp, ctx: AppContext): void {
  app.get(
    '/v1/governance',
    {
      config: { permission: 'keys:read', action: 'GetGovernance' },
      schema: {
        summary: 'The governance document as a majority of the nodes hold it (others named)',
        tags: ['governance'],
        security: bearer,
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['version', 'hash', 'document', 'nodes', 'disagreeing'],
          properties: {
            version: { type: 'integer' },
            hash: { type: 'string' },
            document: { type: 'object', additionalProperties: true },
            nodes: { type: 'array', items: nodeReport },
            disagreeing: { type: 'array', items: { type: 'string' } },
          },
        }),
      },
    },
    async () => ctx.governance.read(),
  );

  app.post<{ Body: { document: Record<string, unknown>; signatures: GovernanceSignature[] } }>(
    '/v1/governance',
    {
      config: { signed: 'UpdateGovernance', action: 'UpdateGovernance' },
      schema: {
        summary: 'Relay a new governance version, signed by the admin quorum, to every node',
        tags: ['governance'],
        security: signed,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['document', 'signatures'],
          properties: {
            document: { type: 'object', description: 'the next version (docs/policies.md)' },
            signatures: governanceSignaturesSchema,
          },
        },
        response: responses(200, {
          type: 'object',
          additionalProperties: false,
          required: ['version', 'hash', 'nodes'],
          properties: {
            version: { type: 'integer' },
            hash: { type: 'string' },
            nodes: { type: 'array', items: outcome },
          },
        }),
      },
    },
    async (req) => {
      const { document, signatures } = req.body;
      const current = (await ctx.governance.read()).document;
      // The nodes decide; the same check here answers a missing quorum before any node is asked.
      const next = acceptGovernance(current, document, signatures, '');
      const hash = governanceHash(next);
      await auditDecision(ctx, req, {
        version: next.version,
        hash,
        signers: signatures.map((s) => s.principal).slice(0, 100),
      });
      const outcomes = await ctx.governance.update(next, signatures);
      if (outcomes.some((o) => !o.ok)) throw updateError(next.version, outcomes);
      return {
        version: next.version,
        hash,
        nodes: outcomes.map((o) => ({ node: o.node, ok: o.ok })),
      };
    },
  );
}
