/**
 * The encryption context (AWS KMS semantics), as the client module sees it: the checks live in
 * protocol/tdh2-context.ts so that the nodes and the coordinator apply exactly the same ones.
 */
export {
  checkContext,
  contextDifference,
  type EncryptionContext,
  MAX_CONTEXT_BYTES,
} from '../protocol/tdh2-context.ts';
