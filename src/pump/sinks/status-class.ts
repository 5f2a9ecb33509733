/** `2xx`, `4xx`...: the bounded label sinks group statuses by (a status outside 100-599, e.g. 0 for no answer, is `other`). */
export function statusClass(status: number): string {
  return status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : 'other';
}
