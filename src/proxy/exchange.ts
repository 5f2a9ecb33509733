import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { PayloadCapture } from '../recording/payload-capture.js';
import type { RecordingPipeline } from '../recording/pipeline.js';
import type { HeaderBlock, Leg, Transaction } from '../recording/transaction.js';
import { clientResponseHeaders } from './headers.js';
import type { InFlight } from './in-flight.js';
import type { Route } from './router.js';
import type { Target } from './targets.js';
import { classifyUpstreamError, responseDeadlineError } from './upstream-errors.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export interface ExchangeOptions {
  pipeline: RecordingPipeline;
  inFlight: InFlight;
  route: Route;
  /** Path and query to request, below the target URL's own path. */
  forwardPath: string;
  upstreamHeaders: string[];
  /** The request body, or null when the request has none. */
  body: IncomingMessage | null;
  tracked: boolean;
  onDone: (transaction: Transaction) => void;
}

/**
 * One proxied request: it forwards the client's request to a back end (one leg per attempt),
 * streams the response back, records both sides as they pass, and answers 502/504 itself when
 * the back end fails before responding. The back end must answer within `responseHeadersMs` of
 * the request's arrival, however long it waited for a free connection.
 */
export class ProxyExchange implements Dispatcher.DispatchHandler {
  #leg: Leg;
  #target: Target;
  #attemptsLeft: number;
  #controller: Dispatcher.DispatchController | null = null;
  #deadline: NodeJS.Timeout | null = null;
  #waitingForDrain = false;
  #responseCapture: PayloadCapture | null = null;
  #requestCapture: PayloadCapture | null;
  #clientGone = false;
  /** The gateway answered the client itself (502/504). */
  #answered = false;
  #finished = false;

  constructor(
    readonly request: IncomingMessage,
    readonly response: ServerResponse,
    readonly transaction: Transaction,
    readonly options: ExchangeOptions,
  ) {
    const { route } = options;
    this.#attemptsLeft = IDEMPOTENT.has(transaction.method) ? route.api.retries + 1 : 1;
    this.#requestCapture = transaction.clientLeg.recvCapture;
    this.#target = route.targets.pick(Date.now());
    this.#leg = this.#newLeg();
    response.on('close', this.#onClientClose);
    response.on('drain', this.#onClientDrain);
  }

  start(): void {
    const { timeouts } = this.options.route;
    this.#deadline ??= setTimeout(this.#onDeadline, timeouts.responseHeadersMs);
    this.#target.pool.dispatch(
      {
        path: this.#leg.uri,
        method: this.transaction.method,
        headers: this.options.upstreamHeaders,
        // undici takes any async iterable as a body; its types list only streams.
        body: this.options.body === null ? null : (this.#observedBody(this.options.body) as unknown as Readable),
        // The exchange's own deadline covers the wait for a connection too.
        headersTimeout: 0,
        bodyTimeout: timeouts.idleMs,
      },
      this,
    );
  }

  /** The request body as it goes to the back end, each chunk counted and recorded as it is sent. */
  async *#observedBody(body: IncomingMessage): AsyncGenerator<Buffer> {
    const leg = this.#leg;
    for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      // Only the attempt that carried the body links to it.
      if (leg.bytesSent === 0) leg.sentCapture = this.#requestCapture;
      leg.bytesSent += chunk.length;
      this.transaction.clientLeg.bytesReceived += chunk.length;
      this.#requestCapture?.push(chunk);
      yield chunk;
    }
  }

  #newLeg(): Leg {
    const leg = this.transaction.addUpstreamLeg();
    const target = this.#target;
    const { forwardPath, upstreamHeaders } = this.options;
    leg.method = this.transaction.method;
    leg.uri = target.basePath + forwardPath;
    leg.vhost = target.hostname;
    leg.remoteName = target.hostname;
    leg.remoteAddr = target.hostname;
    leg.remotePort = target.port;
    leg.sentHeader = { startLine: `${leg.method} ${leg.uri} HTTP/1.1`, fields: ['Host', hostHeader(target), ...upstreamHeaders] };
    return leg;
  }

  readonly #onDeadline = (): void => {
    this.#deadline = null;
    const error = responseDeadlineError(this.options.route.timeouts.responseHeadersMs, this.#controller === null);
    if (this.#controller !== null) this.#controller.abort(error);
    else this.#failed(error);
  };

  #clearDeadline(): void {
    if (this.#deadline === null) return;
    clearTimeout(this.#deadline);
    this.#deadline = null;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // Given up on while it waited for a connection: it is never sent.
    if (this.#clientGone || this.#finished || this.response.headersSent) controller.abort(new Error('the exchange ended before a connection to the back end was free'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: unknown, statusText = ''): void {
    // An interim response (103 Early Hints, 102 Processing) is not the answer: wait for it.
    if (statusCode < 200) return;
    this.#clearDeadline();
    const rawHeaders = (controller.rawHeaders ?? []) as Buffer[];
    const leg = this.#leg;
    const transaction = this.transaction;
    const client = transaction.clientLeg;
    leg.headersMs = performance.now() - leg.startMono;
    leg.status = statusCode;
    leg.statusText = statusText;
    leg.recvHeader = { startLine: `HTTP/1.1 ${statusCode} ${statusText}`, fields: rawHeaders };
    if (this.#clientGone) {
      controller.abort(new Error('client went away'));
      return;
    }
    transaction.status = statusCode;
    transaction.statusText = statusText;
    const headers = clientResponseHeaders(rawHeaders, transaction.id);
    this.options.inFlight.closeWhileDraining(this.response);
    this.response.writeHead(statusCode, statusText, headers);
    client.status = statusCode;
    client.statusText = statusText;
    client.headersMs = performance.now() - client.startMono;
    client.sentHeader = writtenHead(this.response);
    if (this.options.tracked && transaction.policy.capturesBodies) {
      this.#responseCapture = this.options.pipeline.capture(
        transaction,
        leg.index,
        'received',
        headerOf(rawHeaders, 'content-type'),
        headerOf(rawHeaders, 'content-encoding'),
      );
      leg.recvCapture = this.#responseCapture;
      client.sentCapture = this.#responseCapture;
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#leg.bytesReceived += chunk.length;
    this.transaction.clientLeg.bytesSent += chunk.length;
    this.#responseCapture?.push(chunk);
    if (this.response.write(chunk)) return;
    this.#waitingForDrain = true;
    controller.pause();
  }

  readonly #onClientDrain = (): void => {
    if (!this.#waitingForDrain) return;
    this.#waitingForDrain = false;
    this.#controller?.resume();
  };

  onResponseEnd(): void {
    const leg = this.#leg;
    leg.lastByteMs = performance.now() - leg.startMono;
    leg.finalStatus = leg.status >= 500 ? 'Fail' : 'Pass';
    this.response.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#failed(error);
  }

  #failed(error: Error & { code?: string }): void {
    // Already handed to the recorder (the client left), or answered by the gateway meanwhile.
    if (this.#finished || this.#answered) return;
    const leg = this.#leg;
    const transaction = this.transaction;
    leg.lastByteMs = performance.now() - leg.startMono;
    leg.finalStatus = 'Error';
    leg.error = error.message;
    if (this.#clientGone) return this.#finish();
    if (this.request.destroyed && !this.request.complete) {
      // The body stream failed because the client hung up mid-request.
      transaction.fail('client-aborted-request', 'the client closed the connection before sending the whole request');
      return;
    }
    const failure = classifyUpstreamError(error);
    if (failure.connectFailed) {
      this.options.route.targets.markDown(this.#target, Date.now());
      if (--this.#attemptsLeft > 0 && leg.bytesSent === 0 && this.#deadline !== null) {
        this.#target = this.options.route.targets.pick(Date.now());
        this.#leg = this.#newLeg();
        this.#controller = null;
        return this.start();
      }
    }
    this.#clearDeadline();
    transaction.fail(failure.reason, error.message);
    if (this.response.headersSent) {
      // Part of the response is already with the client: cutting the connection is the only
      // honest way to tell it the body is incomplete.
      this.response.destroy(error);
      return;
    }
    transaction.status = failure.status;
    transaction.statusText = failure.status === 504 ? 'Gateway Timeout' : 'Bad Gateway';
    const message = failure.status === 504 ? 'the back end did not answer in time' : 'the back end could not be reached';
    const capture = this.options.tracked ? this.options.pipeline.capture(transaction, 0, 'sent', 'application/json', '') : null;
    this.#answered = true;
    this.options.inFlight.closeWhileDraining(this.response);
    sendGatewayError(this.response, transaction, failure.status, `${message} (${failure.reason})`, capture);
  }

  readonly #onClientClose = (): void => {
    const response = this.response;
    const client = this.transaction.clientLeg;
    client.lastByteMs = performance.now() - client.startMono;
    if (response.writableFinished) {
      client.finalStatus = this.transaction.failure === null && this.transaction.status < 500 ? 'Pass' : 'Fail';
    } else {
      this.#clientGone = true;
      client.finalStatus = 'Error';
      if (this.options.inFlight.cutting) {
        this.transaction.fail('gateway-shutdown', 'the gateway shut down before the exchange completed');
      } else if (this.request.complete) {
        this.transaction.fail('client-aborted-response', 'the client closed the connection before the whole response was sent');
      } else {
        this.transaction.fail('client-aborted-request', 'the client closed the connection before sending the whole request');
      }
      if (this.#controller !== null && this.#leg.finalStatus === null) {
        this.#controller.abort(new Error('client went away'));
        return;
      }
    }
    this.#finish();
  };

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearDeadline();
    const transaction = this.transaction;
    transaction.endMono = performance.now();
    for (const leg of transaction.legs) {
      if (leg.finalStatus === null) {
        leg.finalStatus = 'Error';
        leg.error ??= 'abandoned: the client went away';
      }
    }
    this.options.onDone(transaction);
  }
}

function hostHeader(target: Target): string {
  const defaultPort = target.origin.startsWith('https:') ? 443 : 80;
  return target.port === defaultPort ? target.hostname : `${target.hostname}:${target.port}`;
}

/** One header's value from raw header buffers; `lowerName` in lower case. */
function headerOf(rawHeaders: Buffer[], lowerName: string): string {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as Buffer;
    if (name.length === lowerName.length && name.toString('latin1').toLowerCase() === lowerName) return (rawHeaders[i + 1] as Buffer).toString('latin1');
  }
  return '';
}

/**
 * The response head exactly as Node wrote it: with the headers it adds itself (Date, Connection,
 * Keep-Alive, Transfer-Encoding). Kept as the string it already is; parsed only if recorded.
 */
function writtenHead(response: ServerResponse): HeaderBlock {
  return { written: (response as ServerResponse & { _header: string })._header };
}

/** A response the gateway writes itself (no route, back end failed); recorded like any other. */
export function sendGatewayError(
  response: ServerResponse,
  transaction: Transaction,
  status: number,
  message: string,
  capture: PayloadCapture | null,
): void {
  const body = Buffer.from(JSON.stringify({ error: message, correlationId: transaction.id }));
  const headers = ['Content-Type', 'application/json', 'Content-Length', String(body.length), 'X-Correlation-ID', transaction.id];
  const statusText = transaction.statusText;
  response.writeHead(status, statusText, headers);
  const client = transaction.clientLeg;
  client.status = status;
  client.statusText = statusText;
  client.headersMs = performance.now() - client.startMono;
  client.sentHeader = writtenHead(response);
  client.bytesSent += body.length;
  client.sentCapture = capture;
  capture?.push(body);
  response.end(body);
}
