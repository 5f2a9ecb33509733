/** One sample of the Prometheus text format: its name (with `_bucket`, `_sum`... suffix), labels and value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
// Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes `Nan`).
const VALUE = '(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?[iI][nN][fF]|[nN][aA][nN])';
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL}="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (${VALUE})(?: -?\\d+)?$`);
const LABEL_PAIR = new RegExp(`(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`, 'g');
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function unescape(value: string): string {
  return value.replace(/\\(["\\n])/g, (_all, char: string) => (char === 'n' ? '\n' : char));
}

function number(text: string): number {
  if (/inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  return /^nan$/i.test(text) ? NaN : Number(text);
}

/** The family a sample belongs to: its name without a histogram's or summary's suffix. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && ['histogram', 'summary'].includes(types.get(base) ?? '') ? base : undefined;
}

/**
 * Parses the Prometheus text exposition format (0.0.4) strictly: every line a comment, a HELP or
 * TYPE line or a well-formed sample of a family whose TYPE came first; a family's TYPE given once;
 * histogram buckets cumulative with `+Inf` equal to `_count`. Anything else throws.
 */
export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a line feed');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, index) => {
      const where = `line ${index + 1}: ${JSON.stringify(line)}`;
      if (line === '') return;
      const type = new RegExp(`^# TYPE (${NAME}) (\\S+)$`).exec(line);
      if (type) {
        const [, name, kind] = type as unknown as [string, string, string];
        if (!TYPES.has(kind) || types.has(name)) throw new Error(`${where}: a bad or repeated TYPE`);
        types.set(name, kind);
        return;
      }
      if (new RegExp(`^# HELP ${NAME} `).test(line) || (line.startsWith('#') && !/^# (HELP|TYPE)/.test(line))) return;
      const match = SAMPLE_LINE.exec(line);
      if (match === null) throw new Error(`${where}: not a sample`);
      const [, name, labelText, value] = match as unknown as [string, string, string | undefined, string];
      if (familyOf(name, types) === undefined) throw new Error(`${where}: a sample before its TYPE`);
      const labels: Record<string, string> = {};
      for (const [, label, raw] of (labelText ?? '').matchAll(LABEL_PAIR)) {
        if ((label as string) in labels) throw new Error(`${where}: label ${label} twice`);
        labels[label as string] = unescape(raw as string);
      }
      const identity = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(identity)) throw new Error(`${where}: the same series twice`);
      seen.add(identity);
      samples.push({ name, labels, value: number(value) });
    });
  checkHistograms(types, samples);
  return { types, samples };
}

function checkHistograms(types: Map<string, string>, samples: readonly Sample[]): void {
  for (const [family, kind] of types) {
    if (kind !== 'histogram') continue;
    const series = new Map<string, { buckets: [number, number][]; count?: number }>();
    for (const sample of samples) {
      if (!sample.name.startsWith(family)) continue;
      const { le, ...rest } = sample.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      const entry = series.get(key) ?? { buckets: [] };
      series.set(key, entry);
      if (sample.name === `${family}_bucket`) entry.buckets.push([number(le as string), sample.value]);
      if (sample.name === `${family}_count`) entry.count = sample.value;
    }
    for (const [key, { buckets, count }] of series) {
      const values = buckets.map(([, value]) => value);
      const bounds = buckets.map(([bound]) => bound);
      if (bounds.at(-1) !== Infinity || values.at(-1) !== count) throw new Error(`${family}${key}: the +Inf bucket is not the count`);
      if (values.some((value, index) => index > 0 && value < (values[index - 1] as number))) throw new Error(`${family}${key}: buckets not cumulative`);
      if (bounds.some((bound, index) => index > 0 && bound <= (bounds[index - 1] as number))) throw new Error(`${family}${key}: bounds not increasing`);
    }
  }
}

/** The value of the one sample named `name` whose labels include `labels` (throws if not exactly one). */
export function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = samplesOf(exposition, name, labels);
  if (found.length !== 1) throw new Error(`${found.length} samples ${name}${JSON.stringify(labels)}`);
  return (found[0] as Sample).value;
}

export function samplesOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
}
