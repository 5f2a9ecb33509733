/** Requests sent one after another by a few clients to whatever gateway `url()` names now, noting what was answered. */
export interface SteadyTraffic {
  /** Correlation ids of the responses read whole: the transactions the clients know were answered. */
  readonly answered: string[];
  /** Requests that got no whole response (a gateway restarting). */
  readonly failed: number;
  stop(): Promise<void>;
}

export function startSteadyTraffic(url: () => string, path: string, clients = 4): SteadyTraffic {
  const answered: string[] = [];
  let failed = 0;
  let stopping = false;
  const client = async (): Promise<void> => {
    while (!stopping) {
      try {
        const response = await fetch(`${url()}${path}`);
        await response.arrayBuffer();
        const id = response.headers.get('x-correlation-id');
        if (id !== null) answered.push(id);
      } catch {
        failed++;
        // A gateway restarting refuses connections: try again shortly rather than spin.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  const running = Array.from({ length: clients }, client);
  return {
    answered,
    get failed() {
      return failed;
    },
    async stop() {
      stopping = true;
      await Promise.all(running);
    },
  };
}
