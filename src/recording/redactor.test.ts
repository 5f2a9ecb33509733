import { describe, expect, it } from 'vitest';
import { DEFAULT_REDACTED_HEADERS, DEFAULT_REDACTED_QUERY_PARAMS, REDACTED, Redactor } from './redactor.js';

const withExtras = new Redactor({ headers: ['X-Session-Token'], queryParams: ['Sig'], jsonFields: ['card_number', 'a.b'] });
const defaults = new Redactor();

function json(redactor: Redactor, text: string): string {
  return redactor.jsonBody(Buffer.from(text)).toString('utf8');
}

describe('Redactor.headerValue', () => {
  it('replaces the value of every default secret header, whatever the case of its name', () => {
    for (const name of DEFAULT_REDACTED_HEADERS) {
      expect(defaults.headerValue(name, 'secret')).toBe(REDACTED);
      expect(defaults.headerValue(name.toUpperCase(), 'secret')).toBe(REDACTED);
    }
    expect(defaults.headerValue('Set-Cookie', 'sid=1')).toBe('[REDACTED]');
  });

  it('adds the configured headers to the defaults and leaves the others alone', () => {
    expect(withExtras.headerValue('x-session-token', 'secret')).toBe(REDACTED);
    expect(withExtras.headerValue('Authorization', 'Bearer x')).toBe(REDACTED);
    expect(defaults.headerValue('X-Session-Token', 'visible')).toBe('visible');
    expect(withExtras.headerValue('Content-Type', 'application/json')).toBe('application/json');
    expect(withExtras.headerValue('X-Session-Token-Id', 'visible')).toBe('visible');
  });
});

describe('Redactor.uri', () => {
  it('returns a target without a query, or without secrets in it, unchanged', () => {
    expect(defaults.uri('/pets/1')).toBe('/pets/1');
    expect(defaults.uri('/pets?kind=dog&page=2')).toBe('/pets?kind=dog&page=2');
    expect(defaults.uri('/pets?')).toBe('/pets?');
  });

  it('replaces the value of each default secret parameter, keeping the others and their order', () => {
    for (const name of DEFAULT_REDACTED_QUERY_PARAMS) {
      expect(defaults.uri(`/a?keep=1&${name}=s3cret&also=2`)).toBe(`/a?keep=1&${name}=[REDACTED]&also=2`);
    }
  });

  it('matches names case-insensitively and percent- or plus-decoded, and keeps the name as sent', () => {
    expect(defaults.uri('/a?TOKEN=x')).toBe('/a?TOKEN=[REDACTED]');
    expect(defaults.uri('/a?%74oken=x')).toBe('/a?%74oken=[REDACTED]');
    expect(withExtras.uri('/a?sig=x&SIG=y')).toBe('/a?sig=[REDACTED]&SIG=[REDACTED]');
    expect(new Redactor({ headers: [], queryParams: ['api secret'], jsonFields: [] }).uri('/a?api+secret=x')).toBe('/a?api+secret=[REDACTED]');
  });

  it('redacts every occurrence, empty values and names without a value', () => {
    expect(defaults.uri('/a?token=1&token=2')).toBe('/a?token=[REDACTED]&token=[REDACTED]');
    expect(defaults.uri('/a?token=&x=1')).toBe('/a?token=[REDACTED]&x=1');
    expect(defaults.uri('/a?x=1&token')).toBe('/a?x=1&token=[REDACTED]');
  });

  it('copes with a name that does not decode', () => {
    expect(defaults.uri('/a?tok%zzen=1&token=2')).toBe('/a?tok%zzen=1&token=[REDACTED]');
  });

  it('adds the configured parameters to the defaults', () => {
    expect(withExtras.uri('/a?sig=abc&token=def&keep=1')).toBe('/a?sig=[REDACTED]&token=[REDACTED]&keep=1');
    expect(defaults.uri('/a?sig=abc')).toBe('/a?sig=abc');
  });
});

describe('Redactor.appliesToBody', () => {
  it('searches JSON and form bodies only', () => {
    const searched = ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/problem+json', 'application/vnd.api+json', 'text/json'];
    for (const type of [...searched, 'application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8']) {
      expect(defaults.appliesToBody(type), type).toBe(true);
    }
    for (const type of ['', 'text/plain', 'application/octet-stream', 'multipart/form-data', 'application/jsonp', 'application/x-ndjson']) {
      expect(defaults.appliesToBody(type), type).toBe(false);
    }
  });
});

describe('Redactor.body for forms', () => {
  const form = (redactor: Redactor, text: string): string =>
    redactor.body('application/x-www-form-urlencoded', Buffer.from(text)).toString('latin1');

  it('replaces form fields named as secret query parameters or JSON fields, keeping the others', () => {
    expect(form(defaults, 'user=rex&password=hunter2&refresh_token=abc&keep=1')).toBe(
      `user=rex&password=${REDACTED}&refresh_token=${REDACTED}&keep=1`,
    );
    expect(form(withExtras, 'card_number=4111&Sig=x&n=1')).toBe(`card_number=${REDACTED}&Sig=${REDACTED}&n=1`);
  });

  it('returns the very same buffer when no field is secret', () => {
    const body = Buffer.from('a=1&b=2');
    expect(defaults.body('application/x-www-form-urlencoded', body)).toBe(body);
  });

  it('sends a JSON body to the JSON redaction', () => {
    expect(defaults.body('application/json', Buffer.from('{"password":"p"}')).toString()).toBe(`{"password":"${REDACTED}"}`);
  });
});

describe('Redactor.jsonBody', () => {
  it('returns the very same buffer when no secret field is named in it', () => {
    const body = Buffer.from('{"user":"rex","old_password":"kept","passwordHint":"kept"}');
    expect(defaults.jsonBody(body)).toBe(body);
  });

  it('replaces secret fields at any depth and inside arrays, keeping every other field', () => {
    const body = {
      user: 'rex',
      password: 'p',
      profile: { card_number: '4111', name: 'Rex', tokens: [{ refresh_token: 'r', kind: 'web' }, { ACCESS_TOKEN: 'a' }] },
      list: [1, 'two', null, [{ client_secret: 'c' }]],
      'a.b': 'dotted',
      axb: 'not the dotted field',
    };
    expect(JSON.parse(json(withExtras, JSON.stringify(body)))).toEqual({
      user: 'rex',
      password: REDACTED,
      profile: { card_number: REDACTED, name: 'Rex', tokens: [{ refresh_token: REDACTED, kind: 'web' }, { ACCESS_TOKEN: REDACTED }] },
      list: [1, 'two', null, [{ client_secret: REDACTED }]],
      'a.b': REDACTED,
      axb: 'not the dotted field',
    });
  });

  it('replaces a secret field whatever its value is', () => {
    const body = '{"password":{"old":"o","new":"n"},"access_token":["t1","t2"],"client_secret":42,"refresh_token":null}';
    expect(JSON.parse(json(defaults, body))).toEqual({ password: REDACTED, access_token: REDACTED, client_secret: REDACTED, refresh_token: REDACTED });
  });

  it('leaves a body alone where a secret name appears only as a value', () => {
    expect(JSON.parse(json(defaults, '{"field":"password","value":"shown"}'))).toEqual({ field: 'password', value: 'shown' });
  });

  it('only applies the configured fields on top of the defaults', () => {
    expect(JSON.parse(json(defaults, '{"card_number":"4111"}'))).toEqual({ card_number: '4111' });
  });

  describe('for a body that does not parse (cut by maxPayloadBytes, or not JSON after all)', () => {
    it('replaces a string value cut off by the end of the body', () => {
      expect(json(defaults, '{"user":"rex","password":"hunt')).toBe('{"user":"rex","password":"[REDACTED]"');
      expect(json(defaults, '{"password":')).toBe('{"password":"[REDACTED]"');
    });

    it('replaces whole string values, with escaped quotes inside, and keeps what follows', () => {
      expect(json(defaults, '{"password":"a\\"b","next":"shown","pad":"')).toBe('{"password":"[REDACTED]","next":"shown","pad":"');
    });

    it('replaces numbers, literals and nested fields, whatever the spacing and case', () => {
      expect(json(withExtras, '{"Password" : 1234 ,"x":{"card_number":null},"y":[{"refresh_token":true}],"z":"')).toBe(
        '{"Password" : "[REDACTED]" ,"x":{"card_number":"[REDACTED]"},"y":[{"refresh_token":"[REDACTED]"}],"z":"',
      );
    });

    it('treats a field name with regular expression characters literally', () => {
      expect(json(withExtras, '{"a.b":"s","axb":"kept"')).toBe('{"a.b":"[REDACTED]","axb":"kept"');
    });

    it('handles trailing garbage after otherwise valid JSON', () => {
      expect(json(defaults, '{"password":"s"}garbage')).toBe('{"password":"[REDACTED]"}garbage');
    });

    it('replaces an object or array value whole, also when it is cut off', () => {
      expect(json(defaults, '{"password": {"inner": "S"}')).toBe('{"password": "[REDACTED]"');
      expect(json(defaults, '{"a":1,"password":["S1","S2"')).toBe('{"a":1,"password":"[REDACTED]"');
      expect(json(defaults, '{"password":{"x":[1,"}"]},"k":"v"')).toBe('{"password":"[REDACTED]","k":"v"');
    });
  });

  it('catches a secret key spelt with unicode escapes', () => {
    expect(JSON.parse(json(defaults, '{"pass\\u0077ord":"S","b":2}'))).toEqual({ password: REDACTED, b: 2 });
  });
});

describe('Redactor.headerValue on URL headers', () => {
  it('removes secret query parameters from Location and Referer', () => {
    expect(defaults.headerValue('Location', 'https://x/cb?code=1&access_token=S')).toBe(`https://x/cb?code=1&access_token=${REDACTED}`);
    expect(defaults.headerValue('referer', '/page?token=S')).toBe(`/page?token=${REDACTED}`);
    expect(defaults.headerValue('X-Other', '/page?token=S')).toBe('/page?token=S');
  });
});
