/**
 * Prometheus metrics of the coordinator (one registry per process; names follow the Prometheus
 * naming guide: `kms_` prefix, base units, `_total` counters). Labels are bounded: route patterns,
 * not URLs; no key ids, token ids or peer ids.
 */
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export class CoordinatorMetrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'kms_http_requests_total',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'kms_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly signDuration = new Histogram({
    name: 'kms_sign_duration_seconds',
    help: 'Time the cluster took to produce a signature, by key spec and result',
    labelNames: ['key_spec', 'result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sessions = new Counter({
    name: 'kms_sessions_total',
    help: 'Cluster sessions (dkg, sign, refresh, reshare, repair, set-state, destroy) by outcome code',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly excludedParticipants = new Counter({
    name: 'kms_sign_excluded_participants_total',
    help: 'Participants excluded from signing after a timeout or an invalid share, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly auditFailures = new Counter({
    name: 'kms_audit_write_failures_total',
    help: 'Requests refused because their audit record could not be written',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kms_' });
  }
}
