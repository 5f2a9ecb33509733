/** Replaces a connection URL's password with `***`, for messages. */
export function shownUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

/** Replaces each secret (a password, a token) found in `text` with `***`: a client's error message may quote what it was given. */
export function withoutSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let shown = text;
  for (const secret of secrets) {
    if (secret === undefined || secret === '') continue;
    shown = shown.split(secret).join('***');
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) shown = shown.split(encoded).join('***');
  }
  return shown;
}
