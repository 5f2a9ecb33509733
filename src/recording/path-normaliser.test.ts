import { describe, expect, it } from 'vitest';
import { pathNormaliser, type NormaliseRules } from './path-normaliser.js';

const ALL: NormaliseRules = { uuids: true, ulids: true, numbers: true, patterns: [] };
const UUID = '0190b1f2-7c3a-7d4e-9f10-a1b2c3d4e5f6';
const ULID = '01ARZ3NDEKTSV4RRFFQ69G5FAV';

describe('pathNormaliser', () => {
  const normalise = pathNormaliser(ALL);

  it('replaces numeric segments with {id}', () => {
    expect(normalise('/users/42/orders/007')).toBe('/users/{id}/orders/{id}');
  });

  it('replaces UUIDs with {uuid}, in either case', () => {
    expect(normalise(`/orders/${UUID}`)).toBe('/orders/{uuid}');
    expect(normalise(`/orders/${UUID.toUpperCase()}/items`)).toBe('/orders/{uuid}/items');
  });

  it('replaces ULIDs with {ulid}, in either case', () => {
    expect(normalise(`/events/${ULID}`)).toBe('/events/{ulid}');
    expect(normalise(`/events/${ULID.toLowerCase()}`)).toBe('/events/{ulid}');
  });

  it('leaves other segments, partial matches and near misses alone', () => {
    expect(normalise('/v2/pets/rex42/-1/1.5/abc')).toBe('/v2/pets/rex42/-1/1.5/abc');
    expect(normalise(`/orders/${UUID}x`)).toBe(`/orders/${UUID}x`);
    expect(normalise(`/orders/${UUID.slice(0, -1)}`)).toBe(`/orders/${UUID.slice(0, -1)}`);
    // U is not in the ULID alphabet; 8 is too large a first character.
    expect(normalise('/events/01ARZ3NDEKTSV4RRFFQ69G5FAU')).toBe('/events/01ARZ3NDEKTSV4RRFFQ69G5FAU');
    expect(normalise('/events/81ARZ3NDEKTSV4RRFFQ69G5FAV')).toBe('/events/81ARZ3NDEKTSV4RRFFQ69G5FAV');
  });

  it('keeps empty segments: the root, trailing and double slashes', () => {
    expect(normalise('/')).toBe('/');
    expect(normalise('')).toBe('');
    expect(normalise('/pets/1/')).toBe('/pets/{id}/');
    expect(normalise('//pets//2')).toBe('//pets//{id}');
  });

  it('leaves each kind of id alone when its rule is off', () => {
    const path = `/a/12/${UUID}/${ULID}`;
    expect(pathNormaliser({ ...ALL, numbers: false })(path)).toBe(`/a/12/{uuid}/{ulid}`);
    expect(pathNormaliser({ ...ALL, uuids: false })(path)).toBe(`/a/{id}/${UUID}/{ulid}`);
    expect(pathNormaliser({ ...ALL, ulids: false })(path)).toBe(`/a/{id}/{uuid}/${ULID}`);
    expect(pathNormaliser({ uuids: false, ulids: false, numbers: false, patterns: [] })(path)).toBe(path);
  });

  it('replaces whole segments matching a custom pattern with {var}', () => {
    const custom = pathNormaliser({ ...ALL, patterns: ['[a-z]{3}-\\d+', 'main|dev'] });
    expect(custom('/repos/abc-123/branches/main')).toBe('/repos/{var}/branches/{var}');
    // Anchored to the whole segment, alternatives included.
    expect(custom('/repos/xabc-123/branches/maindev/devx')).toBe('/repos/xabc-123/branches/maindev/devx');
  });

  it('applies the built-in rules before the custom patterns', () => {
    const custom = pathNormaliser({ ...ALL, patterns: ['\\d+', '.*'] });
    expect(custom(`/x/5/${UUID}/word`)).toBe('/{var}/{id}/{uuid}/{var}');
  });
});
