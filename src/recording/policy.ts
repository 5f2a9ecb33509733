import type { ApiConfig, Config, DetailedRecording, EndpointConfig } from '../config/schema.js';
import { ignoredAddresses } from './ip-filter.js';
import { NOT_RECORDED, type RecordingPolicy } from './transaction.js';

/**
 * Decides what is recorded: once per API and endpoint when routes are built, so a request only
 * picks its route's policy and checks its client address.
 */
export class RecordingPolicies {
  /** For what the gateway answers itself without an API: no route, malformed requests. */
  readonly gatewayAnswers: RecordingPolicy;
  readonly #enabled: boolean;
  readonly #globalLevel: DetailedRecording;
  readonly #keepsBodies: boolean;
  readonly #isIgnored: (address: string) => boolean;

  /** `keepsBodies`: payload storage is on, or the records keep bodies themselves (`analytics.recordBodies`). */
  constructor(analytics: Config['analytics'], keepsBodies: boolean, hasOutputs: boolean) {
    this.#enabled = analytics.enabled && hasOutputs;
    this.#keepsBodies = keepsBodies;
    this.#globalLevel = analytics.detailedRecording ?? (keepsBodies ? 'full' : 'off');
    this.#isIgnored = ignoredAddresses(analytics.ignoredIps);
    this.gatewayAnswers = this.#policy(false, undefined);
  }

  forApi(api: ApiConfig): RecordingPolicy {
    return this.#policy(api.doNotTrack, api.detailedRecording);
  }

  forEndpoint(api: ApiConfig, endpoint: EndpointConfig): RecordingPolicy {
    return this.#policy(api.doNotTrack || endpoint.doNotTrack === true, endpoint.detailedRecording ?? api.detailedRecording);
  }

  /** Whether a request from `clientAddr` under `policy` is recorded at all. */
  tracks(policy: RecordingPolicy, clientAddr: string): boolean {
    return policy.tracked && !this.#isIgnored(clientAddr);
  }

  #policy(doNotTrack: boolean, level: DetailedRecording | undefined): RecordingPolicy {
    if (!this.#enabled || doNotTrack) return NOT_RECORDED;
    const effective = level ?? this.#globalLevel;
    return { tracked: true, level: effective, capturesBodies: this.#keepsBodies && (effective === 'full' || effective === 'errors') };
  }
}
