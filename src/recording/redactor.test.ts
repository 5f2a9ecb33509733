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
    expect(defaults.uri('/pets#')).toBe('/pets#');
    expect(defaults.uri('/pets?a&b&c=1')).toBe('/pets?a&b&c=1');
  });

  it('replaces the value of each default secret parameter, keeping the others and their order', () => {
    expect(DEFAULT_REDACTED_QUERY_PARAMS).toEqual(expect.arrayContaining(['code', 'id_token', 'refresh_token']));
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

  it('redacts every occurrence and empty values, and leaves a name without a value as sent (it hides nothing)', () => {
    expect(defaults.uri('/a?token=1&token=2')).toBe('/a?token=[REDACTED]&token=[REDACTED]');
    expect(defaults.uri('/a?token=&x=1')).toBe('/a?token=[REDACTED]&x=1');
    expect(defaults.uri('/a?x=1&token')).toBe('/a?x=1&token');
    expect(defaults.uri('/a?token&x=1&password=p=q')).toBe('/a?token&x=1&password=[REDACTED]');
  });

  it('redacts a field whose base name or any bracketed part is secret, also when the brackets are percent-encoded', () => {
    expect(defaults.uri('/a?user[password]=x&token[]=y&a[b][token]=z&keep[name]=k')).toBe(
      '/a?user[password]=[REDACTED]&token[]=[REDACTED]&a[b][token]=[REDACTED]&keep[name]=k',
    );
    expect(defaults.uri('/a?user%5Bpassword%5D=x&token%5B%5D=y&TOKEN%5b0%5d=z')).toBe(
      '/a?user%5Bpassword%5D=[REDACTED]&token%5B%5D=[REDACTED]&TOKEN%5b0%5d=[REDACTED]',
    );
    expect(defaults.uri('/a?passwords[]=x&tokens[key]=y&user[password_hint]=z')).toBe('/a?passwords[]=x&tokens[key]=y&user[password_hint]=z');
  });

  it('redacts parameters in the fragment like those in the query, each part to its own end', () => {
    expect(defaults.uri('https://app/cb#access_token=abc&token_type=bearer&state=s')).toBe(
      'https://app/cb#access_token=[REDACTED]&token_type=bearer&state=s',
    );
    expect(defaults.uri('/cb?token=q&keep=1#id_token=f&state=s')).toBe('/cb?token=[REDACTED]&keep=1#id_token=[REDACTED]&state=s');
    expect(defaults.uri('/cb?keep=1#token=a?b&c')).toBe('/cb?keep=1#token=[REDACTED]&c');
    expect(defaults.uri('/docs#section-2')).toBe('/docs#section-2');
    expect(defaults.uri('/docs#code')).toBe('/docs#code');
  });

  it('finds parameters after a "?" inside the fragment (hash routing), where no query is', () => {
    expect(defaults.uri('https://app/#/callback?access_token=abc&state=1')).toBe('https://app/#/callback?access_token=[REDACTED]&state=1');
    expect(defaults.uri('/a#x?keep=token')).toBe('/a#x?keep=token');
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
  it('holds JSON, form, text/plain and untyped bodies to search them, and no others', () => {
    const searched = ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/problem+json', 'application/vnd.api+json', 'text/json'];
    const forms = ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8'];
    for (const type of [...searched, ...forms, '', ' ', 'text/plain', 'Text/Plain; charset=utf-8']) {
      expect(defaults.appliesToBody(type), type).toBe(true);
    }
    for (const type of ['application/octet-stream', 'multipart/form-data', 'application/jsonp', 'application/x-ndjson', 'text/html', 'text/plainish', 'text/csv']) {
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

  it('replaces the authorization code of an OAuth token request', () => {
    expect(form(defaults, 'grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp%2Fcb')).toBe(
      `grant_type=authorization_code&code=${REDACTED}&redirect_uri=https%3A%2F%2Fapp%2Fcb`,
    );
  });

  it('replaces bracketed and percent-encoded bracketed fields', () => {
    expect(form(defaults, 'user[name]=rex&user[password]=p&user%5Bpassword%5D=q&token%5B%5D=t&a[b][token]=u')).toBe(
      `user[name]=rex&user[password]=${REDACTED}&user%5Bpassword%5D=${REDACTED}&token%5B%5D=${REDACTED}&a[b][token]=${REDACTED}`,
    );
  });

  it('keeps a "#" in a form value as part of the value', () => {
    expect(form(defaults, 'password=ab#cd&keep=1')).toBe(`password=${REDACTED}&keep=1`);
  });

  it('returns the very same buffer when no field is secret', () => {
    const body = Buffer.from('a=1&b=2');
    expect(defaults.body('application/x-www-form-urlencoded', body)).toBe(body);
  });
});

describe('Redactor.body for other types', () => {
  it('sends a JSON body to the JSON redaction', () => {
    expect(defaults.body('application/json', Buffer.from('{"password":"p"}')).toString()).toBe(`{"password":"${REDACTED}"}`);
  });

  it('redacts a text/plain or untyped body that is a JSON object or array', () => {
    for (const type of ['', 'text/plain', 'text/plain; charset=utf-8']) {
      expect(defaults.body(type, Buffer.from('{"password":"p", "n": 1.10}')).toString(), type).toBe(`{"password":"${REDACTED}", "n": 1.10}`);
      expect(defaults.body(type, Buffer.from('\ufeff\r\n [ {"id_token": 1} ]')).toString(), type).toBe(`\ufeff\r\n [ {"id_token": "${REDACTED}"} ]`);
      expect(defaults.body(type, Buffer.from('{"user":"rex","password":"cut sh')).toString(), type).toBe(`{"user":"rex","password":"${REDACTED}"`);
    }
  });

  it('leaves a text/plain or untyped body that is not a JSON object or array as it is', () => {
    for (const text of ['password: "p"', 'see "password":"p"', '"password":"p"', '']) {
      const body = Buffer.from(text);
      expect(defaults.body('text/plain', body), text).toBe(body);
      expect(defaults.body('', body), text).toBe(body);
    }
  });

  it('leaves a body of a type it does not search as it is', () => {
    const body = Buffer.from('{"password":"p"}');
    expect(defaults.body('text/html', body)).toBe(body);
    expect(defaults.body('application/octet-stream', body)).toBe(body);
  });
});

describe('Redactor.jsonBody', () => {
  it('returns the very same buffer when no secret field is named in it', () => {
    const body = Buffer.from('{"user":"rex","old_password":"kept","passwordHint":"kept","passwords":["kept"],"p":"password"}');
    expect(defaults.jsonBody(body)).toBe(body);
    const plain = Buffer.from('plain text, not JSON at all: password');
    expect(defaults.jsonBody(plain)).toBe(plain);
  });

  it('keeps every byte but the secret values: number spellings, spacing, key order, duplicate keys, __proto__', () => {
    const body =
      '{ "big": 12345678901234567890, "price":1.10, "exp": 1E+2,\n  "z":1, "a":2,\t"dup":1, "dup":2,\r\n' +
      '  "__proto__": {"polluted": true, "password": "s1"},\n  "password" :  "s2",  "PassWord":"s3",\n  "password": "s4" }';
    expect(json(defaults, body)).toBe(
      '{ "big": 12345678901234567890, "price":1.10, "exp": 1E+2,\n  "z":1, "a":2,\t"dup":1, "dup":2,\r\n' +
        '  "__proto__": {"polluted": true, "password": "[REDACTED]"},\n  "password" :  "[REDACTED]",  "PassWord":"[REDACTED]",\n  "password": "[REDACTED]" }',
    );
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

  it('replaces a secret value of any type, nested secrets and all, with the JSON string "[REDACTED]"', () => {
    const body = '{"password":{"old":"o","new":{"x":["}"]}},"access_token":["t1",{"a":"]"}],"client_secret":-4.2e1,"refresh_token":null,"id_token":true,"n":0}';
    expect(json(defaults, body)).toBe(
      '{"password":"[REDACTED]","access_token":"[REDACTED]","client_secret":"[REDACTED]","refresh_token":"[REDACTED]","id_token":"[REDACTED]","n":0}',
    );
    expect(json(defaults, '[{"password":"a\\"b\\\\"},{"password":"\\\\"}]')).toBe('[{"password":"[REDACTED]"},{"password":"[REDACTED]"}]');
  });

  it('redacts id_token but keeps error codes: "code" is no JSON field by default', () => {
    expect(json(defaults, '{"code":"NOT_FOUND","id_token":"eyJ"}')).toBe('{"code":"NOT_FOUND","id_token":"[REDACTED]"}');
  });

  it('leaves a body alone where a secret name appears only in a value', () => {
    const body = Buffer.from('{"field":"password","note":"\\"password\\": shown","list":["password",":"]}');
    expect(defaults.jsonBody(body)).toBe(body);
  });

  it('keeps non-ASCII text byte for byte', () => {
    expect(json(defaults, '{"name":"Zoë 🐕","password":"pässwörd","city":"Zürich"}')).toBe('{"name":"Zoë 🐕","password":"[REDACTED]","city":"Zürich"}');
  });

  it('only applies the configured fields on top of the defaults', () => {
    expect(json(defaults, '{"card_number":"4111"}')).toBe('{"card_number":"4111"}');
  });

  it('catches a secret key however it is escaped or cased, and keeps the key as sent', () => {
    expect(json(defaults, '{"pass\\u0077ord":"S","b":2}')).toBe('{"pass\\u0077ord":"[REDACTED]","b":2}');
    expect(json(defaults, '{"PASS\\u0057ORD":"S","\\u0070assword":1}')).toBe('{"PASS\\u0057ORD":"[REDACTED]","\\u0070assword":"[REDACTED]"}');
    // U+212A KELVIN SIGN lowers to "k".
    expect(json(defaults, '{"access_to\u212Aen":"S"}')).toBe('{"access_to\u212Aen":"[REDACTED]"}');
    expect(json(defaults, '{"pass\\"word":"kept","pass\\\\":"kept"}')).toBe('{"pass\\"word":"kept","pass\\\\":"kept"}');
  });

  it('finds no key inside a string however many backslashes precede its quotes', () => {
    const body = Buffer.from('{"a":"\\\\\\"password\\\\\\":1","b":"\\\\","password_x":2}');
    expect(defaults.jsonBody(body)).toBe(body);
  });

  describe('for a body cut short by maxPayloadBytes, or not JSON after all', () => {
    it('replaces a value cut off by the end of the body to that end', () => {
      expect(json(defaults, '{"user":"rex","password":"hunt')).toBe('{"user":"rex","password":"[REDACTED]"');
      expect(json(defaults, '{"password":')).toBe('{"password":"[REDACTED]"');
      expect(json(defaults, '{"password": ')).toBe('{"password": "[REDACTED]"');
      expect(json(defaults, '{"password":12')).toBe('{"password":"[REDACTED]"');
      expect(json(defaults, '{"password":"\\')).toBe('{"password":"[REDACTED]"');
    });

    it('keeps a body cut inside a key, or before its colon, as it is', () => {
      for (const text of ['{"pass', '{"password', '{"password" ', '{"a":"b","pass\\u00']) {
        const body = Buffer.from(text);
        expect(defaults.jsonBody(body), text).toBe(body);
      }
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
      expect(json(defaults, '{"password":{"x":"cut')).toBe('{"password":"[REDACTED]"');
    });

    it('cuts nothing but the secret when a multi-byte character is cut in two', () => {
      const body = Buffer.concat([Buffer.from('{"password":"x","name":"'), Buffer.from('é').subarray(0, 1)]);
      expect(defaults.jsonBody(body)).toEqual(Buffer.concat([Buffer.from('{"password":"[REDACTED]","name":"'), Buffer.from('é').subarray(0, 1)]));
    });
  });
});

describe('Redactor.headerValue on URL headers', () => {
  it('removes secret query and fragment parameters from Location, Content-Location, Referer and Origin', () => {
    expect(defaults.headerValue('Location', 'https://x/cb?state=1&access_token=S')).toBe(`https://x/cb?state=1&access_token=${REDACTED}`);
    expect(defaults.headerValue('Location', 'https://app/cb#access_token=S&token_type=bearer')).toBe(
      `https://app/cb#access_token=${REDACTED}&token_type=bearer`,
    );
    expect(defaults.headerValue('Content-Location', '/r?code=S#frag')).toBe(`/r?code=${REDACTED}#frag`);
    expect(defaults.headerValue('referer', '/page?token=S')).toBe(`/page?token=${REDACTED}`);
    expect(defaults.headerValue('Origin', 'https://app')).toBe('https://app');
    expect(defaults.headerValue('X-Other', '/page?token=S')).toBe('/page?token=S');
  });
});
