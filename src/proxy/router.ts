import type { ApiConfig, EndpointConfig, TimeoutsConfig } from '../config/schema.js';
import type { RecordingPolicies } from '../recording/policy.js';
import type { ApiIdentity, RecordingPolicy } from '../recording/transaction.js';
import type { TargetSet } from './targets.js';

interface CompiledEndpoint {
  method: string;
  pattern: RegExp;
  label: string;
  policy: RecordingPolicy;
}

export interface Route {
  api: ApiConfig;
  identity: ApiIdentity;
  /** The listen path without its trailing slash ('' for `/`). */
  prefix: string;
  targets: TargetSet;
  /** The gateway's timeouts with this API's overrides applied. */
  timeouts: TimeoutsConfig;
  tagHeaders: string[];
  endpoints: CompiledEndpoint[];
  /** What is recorded for requests that match no endpoint. */
  policy: RecordingPolicy;
}

export interface RouteMatch {
  route: Route;
  /** The path after the listen path, always starting with '/'. */
  rest: string;
}

/** `/users/{id}/orders` matches one segment per placeholder; a trailing `*` matches the rest. */
function compileEndpoint(config: EndpointConfig, policy: RecordingPolicy): CompiledEndpoint {
  const source = config.path
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*';
      if (/^\{[^/]+\}$/.test(segment)) return '[^/]+';
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { method: config.method, pattern: new RegExp(`^${source}/?$`), label: `${config.method} ${config.path}`, policy };
}

export function createRoute(api: ApiConfig, targets: TargetSet, timeouts: TimeoutsConfig, policies: RecordingPolicies): Route {
  return {
    api,
    identity: { id: api.id, name: api.name, version: api.version, orgId: api.orgId, listenPath: api.listenPath },
    prefix: api.listenPath.endsWith('/') ? api.listenPath.slice(0, -1) : api.listenPath,
    targets,
    timeouts,
    tagHeaders: api.tagHeaders.map((name) => name.toLowerCase()),
    endpoints: api.endpoints.map((endpoint) => compileEndpoint(endpoint, policies.forEndpoint(api, endpoint))),
    policy: policies.forApi(api),
  };
}

/**
 * The path with dot segments resolved (`/api/../admin` is `/admin`, `%2e` counts as a dot), as
 * the back end would resolve it: routes and endpoint rules apply to where a request really goes.
 */
export function canonicalPath(path: string): string {
  if (!path.includes('/.') && !path.includes('%2') && !path.includes('\\')) return path;
  // Appended, not resolved against a base: a path starting with // must not become a host.
  return new URL(`http://gateway${path}`).pathname;
}

/** Longest listen path wins; a listen path matches itself and anything below it. */
export function createRouter(routes: Route[]): (path: string) => RouteMatch | null {
  const ordered = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  return (path) => {
    for (const route of ordered) {
      const { prefix } = route;
      if (prefix === '') return { route, rest: path };
      if (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* / */)) {
        return { route, rest: path.length === prefix.length ? '/' : path.slice(prefix.length) };
      }
    }
    return null;
  };
}

export function matchEndpoint(route: Route, method: string, rest: string): CompiledEndpoint | null {
  for (const endpoint of route.endpoints) {
    if ((endpoint.method === '*' || endpoint.method === method) && endpoint.pattern.test(rest)) return endpoint;
  }
  return null;
}
