import { z } from 'zod';

/** Schema pieces every part of the configuration uses, so each says `expected ...` the same way. */

export const positiveInt = z.number().int().positive();

/** Node fires a timer set above 2^31-1 ms after 1 ms, so no duration may be longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;
export const milliseconds = positiveInt.max(MAX_TIMER_MS);
export const seconds = z.number().positive().max(Math.floor(MAX_TIMER_MS / 1000));

/** Ids and names that end up in file names and metrics labels. */
export const name = z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, ".", "_" or "-" only');

export const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });
