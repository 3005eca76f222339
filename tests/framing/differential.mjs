// Differential test: Latch frames requests as Node's own HTTP parser (llhttp, strict mode) does.
//
// Usage: node differential.mjs --probe PATH/TO/framing_probe   (Latch's parser, auth/http/framing.h)
//        node differential.mjs --latch PATH/TO/latch           (the real server)
// Environment: LATCH_FRAMING_SEED=N replays a run (default 1); LATCH_LONG_TESTS=1 runs 10x more
// cases; LATCH_FRAMING_CASES=N sets the number of generated cases; LATCH_FRAMING_VERBOSE=1 prints
// both decisions for every named case.
//
// Each case (named ones for every rule of framing.h, then requests generated from a seeded PRNG
// out of interesting tokens, with random byte mutations) is sent over a raw socket, followed by a
// pipelined probe request, to a reference server (node:http with insecureHTTPParser off), which
// records what llhttp made of it: the requests it served (method, URL, body length and SHA-256),
// then how the connection ended (a parse error, closed, idle after the probe, or quiet). The
// target must decide the same; three deliberate differences (framing.h, "Latch:") are checked
// as such. Any disagreement is printed (the case's bytes, JSON-escaped, and both decisions) and
// fails the run (exit 1).
import http from 'node:http';
import net from 'node:net';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const MAX_HEAD = 64 * 1024; // the reference's maxHeaderSize, framing_probe's max_head
const MAX_BODY = 64 * 1024; // enforced by the reference's handler, as Latch enforces it
const PROBE = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
const PROBE_URL = '/healthz'; // no generated case asks for it
const LLHTTP = '9.3.1';       // the version the rules were proven against
const REFUSAL_STATUSES = new Set([400, 413, 431, 501, 505]);

// ---- arguments ---------------------------------------------------------------------------

const [mode, targetPath] = process.argv.slice(2);
if (!['--probe', '--latch'].includes(mode) || !targetPath) {
  console.error('usage: node differential.mjs --probe PATH/TO/framing_probe | --latch PATH/TO/latch');
  process.exit(2);
}
const seed = Number(process.env.LATCH_FRAMING_SEED ?? 1) >>> 0;
const generatedCount = Number(process.env.LATCH_FRAMING_CASES ??
                              (process.env.LATCH_LONG_TESTS === '1' ? 20000 : 2000));

// ---- seeded generator --------------------------------------------------------------------

function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Strings here are byte strings: one char per byte (latin1).
const rep = (s, n) => s.repeat(n);
const HUGE = rep('y', 100000); // past both head limits, far from their edges

// Each part of a request is usually a good one and sometimes an odd one (the second list).
const METHODS = [['GET', 'GET', 'GET', 'POST', 'POST', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD',
  'OPTIONS', 'PATCH', 'PROPFIND', 'QUERY', 'M-SEARCH', 'SOURCE', 'PURGE', 'MKCALENDAR', 'UNLOCK',
  'UNSUBSCRIBE'], ['get', 'Get', 'CONNECT', 'PRI', 'DESCRIBE', 'GET_PARAMETER', 'FLUSH', 'GETX',
  'PROP', '', 'G\x00T', 'POST\x7f', 'FOO']];
const TARGETS = [['/x', '/x', '/x', '/x', '/x', '/x?a=b', '/x#f', '/x?a?b#c#d', '*', 'http://h/x',
  'http://u@h:1/x?q', 'http://h', 'http://[::1]:8/x', 'HTTP://h/x', '//x', '/{}|^`"<>\\', '/%zz',
  'http://u@h@x/', '/a;b,c=d', '*x'], ['/\xe9', '/a\tb', '/x\x7f', 'x', '/x?\xe9',
  'http://h@@x/', 'http:/x', '/x y', '', '/x\x0c', 'h://', 'http://h/\x01']];
const SPACES = [[' '], ['  ', '\t', '', ' \t']];
const VERSIONS = [['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'],
  ['HTTP/2.0', 'HTTP/0.9', 'HTTP/1.10', 'http/1.1', 'HTTP/1.2', 'HTTP/3.0', 'RTSP/1.0', 'ICE/1.0',
   'HTTP/1', 'HTTP/1.1 ', 'HTTP/11', '', 'HTTP/1.x', 'HTTPS/1.1']];
const EOLS = [['\r\n'], ['\n', '\r', '\r\r\n', '\n\r', '']];
const LEADING = [[''], ['\r\n', '\n', '\r', '\r\n\r\n']];
const CL_VALUES = [['0', '3', '3', '5', '10', '26', '007', '0003', '3 ', '65536'],
  ['0x2f', '+2', '-1', '', '  ', '3\t', '1,1', '3 3', '3, 3', '18446744073709551615',
   '18446744073709551616', '99999999999999999999', '70000', '65537', '\xd9\xa3', '3;']];
const TE_VALUES = [['chunked', 'chunked', 'chunked', 'CHUNKED', 'Chunked', 'chunked ',
  'gzip, chunked', 'gzip,chunked', 'foo, chunked', ', chunked', 'deflate,\tchunked',
  'gzip ,chunked', ''], ['chunked\t', 'chunked, gzip', 'chunked,', 'identity', 'gzip',
  'chunked, chunked', ' ', 'chunked;q=1', 'x-chunked', 'chunkedx', 'gzip\t, chunked', 'chunk',
  'chunked , gzip', 'gzip, chunked\t']];
const CONNECTION_VALUES = ['close', 'keep-alive', 'Keep-Alive', 'upgrade', 'close ', 'close\t',
  'keep-alive, close', 'foo, close', 'clos', 'closex', 'close x', 'Upgrade, close', '', 'CLOSE',
  'keep-alive\t', 'te, keep-alive', ' ,close', 'close,,', 'upgrade'];
const VALUES = [['y', 'y', 'y', 'a b', 'a\tb', '\xe9t\xe9', '\xff', '  padded  ', '', '"q"', 'a:b',
  rep('v', 3000)], ['\x00', '\x7f', '\x01', 'a\rb', 'a\nb', 'a\r\n b']];
const WEIRD_NAMES = ['', 'X A', 'X\xe9', 'X"', '@x', 'X\x00', 'Content-Lengthx',
  'Transfer-Encodings', 'X\t', 'Content-Length ', 'Transfer-Encoding ', 'Content Length', 'X/Y'];
const EXTENSIONS = [';a', ';a=b', ';a="q"', ';a="q\\"x"', ';', '; a', ';a =b', ';a=b"c"',
  ';a="c" ', ';=x', ';;a', ';a=\xe9', ';a="\x01"', ';a="\xe9"', ';a=b;c="d"', ';a="\\\x01"',
  ';a\t', ';a=', ';a="', ';' + rep('n', 20000), ';n=' + rep('v', 100)];
const TRAILERS = ['X-T: 1\r\n', 'X-T: 1\r\n', 'Content-Length: 1\r\n', 'Transfer-Encoding: x\r\n',
  'Transfer-Encoding:\r\n', 'Connection: close\r\n', 'Connection: close\t\r\n', 'X-T : 1\r\n',
  ' X: y\r\n', 'X: a\x01\r\n', 'X: y\n', 'X: ' + HUGE + '\r\n', 'Proxy-Connection: close\r\n',
  'X: \xff\r\n', 'X:\r\n', ':x\r\n'];
const MUTATION_BYTES = ['\r', '\n', ' ', '\t', ':', ';', '"', '\\', '\x00', '\x7f', '\x80', '\xff',
  'a', '0', ',', '=', '/', '?', '#', '@', 'H', '1', '.'];

class Generator {
  constructor(s) { this.random = mulberry32(s); }
  int(n) { return Math.floor(this.random() * n); }
  chance(p) { return this.random() < p; }
  pick(list) { return list[this.int(list.length)]; }
  // A good part, or with probability `odd` an odd one: [good, odd] lists.
  part([good, odd], oddness = 0.08) { return this.pick(this.chance(oddness) ? odd : good); }

  data(n) {
    if (n > 1000) return rep(String.fromCharCode(97 + this.int(26)), n);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.chance(0.9) ? 97 + this.int(26) : this.int(256));
    return s;
  }

  field() {
    const kind = this.pick(['generic', 'generic', 'generic', 'generic', 'generic', 'host', 'host',
      'length', 'length', 'coding', 'coding', 'connection', 'upgrade', 'expect', 'weird']);
    let name, value;
    switch (kind) {
      case 'length':
        name = this.pick(['Content-Length', 'content-length', 'CONTENT-LENGTH']);
        value = this.part(CL_VALUES, 0.3);
        break;
      case 'coding':
        name = this.pick(['Transfer-Encoding', 'transfer-encoding', 'TRANSFER-ENCODING']);
        value = this.part(TE_VALUES, 0.3);
        break;
      case 'connection':
        name = this.pick(['Connection', 'connection', 'Proxy-Connection']);
        value = this.pick(CONNECTION_VALUES);
        break;
      case 'upgrade': name = 'Upgrade'; value = this.pick(['websocket', 'h2c', '']); break;
      case 'expect': name = 'Expect'; value = this.pick(['100-continue', '100-Continue', 'foo']); break;
      case 'host': name = 'Host'; value = 'x'; break;
      case 'weird': name = this.pick(WEIRD_NAMES); value = this.part(VALUES); break;
      default:
        name = this.pick(['X-A', 'Accept', 'User-Agent', 'Content-Type']);
        value = this.chance(0.01) ? HUGE : this.part(VALUES, 0.05);
    }
    const colon = this.part([[':'], [' :', '\t:', '::']], 0.04);
    const ows = this.pick([' ', ' ', ' ', ' ', ' ', ' ', '', '\t', '  ']);
    const trailing = this.chance(0.05) ? this.pick([' ', '\t']) : '';
    let line = name + colon + ows + value + trailing + this.part(EOLS, 0.04);
    if (this.chance(0.02)) line += this.pick([' ', '\t']) + 'folded\r\n';
    return { name, value, line };
  }

  chunkedBody() {
    let s = '';
    const chunks = this.int(4);
    for (let i = 0; i < chunks; i++) {
      const n = this.chance(0.08) ? 30000 : 1 + this.int(20);
      let size = n.toString(16);
      switch (this.pick(['plain', 'plain', 'plain', 'plain', 'plain', 'plain', 'plain', 'plain',
                         'upper', 'zeros', '0x', 'space', 'tab', 'lead', 'huge', 'overflow'])) {
        case 'upper': size = size.toUpperCase(); break;
        case 'zeros': size = '00' + size; break;
        case '0x': size = '0x' + size; break;
        case 'space': size += ' '; break;
        case 'tab': size += '\t'; break;
        case 'lead': size = ' ' + size; break;
        case 'huge': size = 'ffffffffffffffff'; break;
        case 'overflow': size = '1' + rep('0', 16); break;
      }
      s += size + (this.chance(0.2) ? this.pick(EXTENSIONS) : '') + this.part(EOLS, 0.04) + this.data(n);
      s += this.part([['\r\n'], ['\n', '', 'X\r\n', '\r']], 0.05);
    }
    s += this.pick(['0', '0', '0', '00', '000']) + (this.chance(0.15) ? this.pick(EXTENSIONS) : '') +
         this.part(EOLS, 0.04);
    for (let i = this.int(3); i > 0; i--)
      if (this.chance(0.4)) s += this.pick(TRAILERS);
    return s + this.part([['\r\n'], ['\n', '']], 0.05);
  }

  body(fields) {
    const coding = fields.find((f) => /transfer-encoding/i.test(f.name));
    if (coding && /chunked/i.test(coding.value) && this.chance(0.9)) return this.chunkedBody();
    const length = fields.find((f) => /content-length/i.test(f.name) && /^\s*\d+/.test(f.value));
    if (length) {
      const n = Number(/\d+/.exec(length.value)[0]);
      if (n <= 200000) {
        const size = this.pick([n, n, n, n, n, n, n, Math.max(0, n - 1), n + 1, 0]);
        return this.data(size);
      }
    }
    return this.chance(0.1) ? 'abc' : '';
  }

  mutate(s) {
    for (let times = 1 + this.int(3); times > 0; times--) {
      const at = this.int(s.length + 1);
      const b = this.pick(MUTATION_BYTES);
      switch (this.int(3)) {
        case 0: s = s.slice(0, at) + b + s.slice(at); break;
        case 1: s = s.slice(0, at) + b + s.slice(at + 1); break;
        default: s = s.slice(0, at) + s.slice(at + 1);
      }
    }
    return s;
  }

  request() {
    const fields = [];
    for (let n = this.int(5); n > 0; n--) fields.push(this.field());
    if (this.chance(0.7)) fields.splice(this.int(fields.length + 1), 0, this.field());
    let head = this.part(LEADING, 0.05) + this.part(METHODS, 0.05) + this.part(SPACES, 0.03) +
               this.part(TARGETS, 0.05) + this.part(SPACES, 0.03) + this.part(VERSIONS, 0.06) +
               this.part(EOLS, 0.03);
    for (const f of fields) head += f.line;
    head += this.part([['\r\n'], ['\n', '', '\r']], 0.04);
    let bytes = head + this.body(fields);
    if (this.chance(0.2)) bytes = this.mutate(bytes);
    return bytes;
  }
}

// ---- named cases: the issue's examples and each rule of framing.h -------------------------

function named() {
  const post = (headers, body = '') => `POST /x HTTP/1.1\r\nHost: x\r\n${headers}\r\n${body}`;
  const chunked = (body, version = 'HTTP/1.1', extra = '') =>
    `POST /x ${version}\r\nHost: x\r\nTransfer-Encoding: chunked\r\n${extra}\r\n${body}`;
  const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
  const cases = [
    // The issue's examples.
    ['issue: Content-Length 0x2f', post('Content-Length: 0x2f\r\n') + smuggled],
    ['issue: Content-Length +2', post('Content-Length: +2\r\n', 'ab')],
    ['issue: space before the colon', post('Transfer-Encoding : chunked\r\n', '0\r\n\r\n')],
    ['issue: Content-Length -1', post('Content-Length: -1\r\n')],
    ['issue: unknown Transfer-Encoding', post('Transfer-Encoding: gzip\r\n')],
    ['issue: unbounded chunked body', chunked('8000\r\n' + rep('a', 0x8000) + '\r\n8000\r\n' +
                                               rep('a', 0x8000) + '\r\n1\r\na\r\n0\r\n\r\n')],
    // 1. Empty lines before the request line.
    ['1: CRLF before the request line', '\r\n\r\nGET /x HTTP/1.1\r\n\r\n'],
    ['1: bare CR and LF before the request line', '\r\n\rGET /x HTTP/1.1\r\n\r\n'],
    // 2. Methods.
    ['2: PROPFIND', 'PROPFIND /x HTTP/1.1\r\n\r\n'],
    ['2: QUERY with a body', post('').replace('POST', 'QUERY').replace('\r\n\r\n', '\r\nContent-Length: 2\r\n\r\nab')],
    ['2: M-SEARCH', 'M-SEARCH * HTTP/1.1\r\n\r\n'],
    ['2: SOURCE', 'SOURCE /x HTTP/1.1\r\n\r\n'],
    ['2: lower-case method', 'get /x HTTP/1.1\r\n\r\n'],
    ['2: unknown method', 'FOO /x HTTP/1.1\r\n\r\n'],
    ['2: CONNECT', 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n'],
    ['2: PRI preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['2: RTSP method over HTTP', 'DESCRIBE /x HTTP/1.1\r\n\r\n'],
    // 3. Separators.
    ['3: two spaces around the target', 'GET  /x  HTTP/1.1\r\n\r\n'],
    ['3: tab after the method', 'GET\t/x HTTP/1.1\r\n\r\n'],
    ['3: space after the version', 'GET /x HTTP/1.1 \r\n\r\n'],
    // 4. Targets.
    ['4: absolute-form', 'GET http://u@h:1/x?q#f HTTP/1.1\r\n\r\n'],
    ['4: asterisk', 'OPTIONS * HTTP/1.1\r\n\r\n'],
    ['4: double @', 'GET http://u@@h/ HTTP/1.1\r\n\r\n'],
    ['4: high-bit byte', 'GET /\xe9 HTTP/1.1\r\n\r\n'],
    ['4: DEL', 'GET /x\x7f HTTP/1.1\r\n\r\n'],
    ['4: relative without a slash', 'GET x HTTP/1.1\r\n\r\n'],
    ['4: query with ? and #', 'GET /x?a?b#c#d HTTP/1.1\r\n\r\n'],
    // 5. Versions.
    ['5: HTTP/1.0', 'GET /x HTTP/1.0\r\n\r\n'],
    ['5: HTTP/1.0 keep-alive', 'GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'],
    ['5: HTTP/2.0 (Latch: 505)', 'GET /x HTTP/2.0\r\n\r\n'],
    ['5: HTTP/0.9 (Latch: 505)', 'GET /x\r\n\r\n'],
    ['5: RTSP (Latch: 505)', 'DESCRIBE /x RTSP/1.0\r\n\r\n'],
    ['5: HTTP/1.10', 'GET /x HTTP/1.10\r\n\r\n'],
    ['5: HTTP/1.2', 'GET /x HTTP/1.2\r\n\r\n'],
    ['5: lower-case http', 'GET /x http/1.1\r\n\r\n'],
    // 6. Line ends.
    ['6: bare LF after the request line', 'GET /x HTTP/1.1\nHost: x\r\n\r\n'],
    ['6: bare LF after a field', 'GET /x HTTP/1.1\r\nHost: x\n\r\n'],
    ['6: bare LF ending the head', 'GET /x HTTP/1.1\r\nHost: x\r\n\n'],
    ['6: CR without LF in a value', 'GET /x HTTP/1.1\r\nX: a\rb\r\n\r\n'],
    ['6: CR CR LF', 'GET /x HTTP/1.1\r\r\n\r\n'],
    // 7. Names.
    ['7: space before the colon', 'GET /x HTTP/1.1\r\nHost : x\r\n\r\n'],
    ['7: empty name', 'GET /x HTTP/1.1\r\n: x\r\n\r\n'],
    ['7: high-bit byte in a name', 'GET /x HTTP/1.1\r\nX\xe9: y\r\n\r\n'],
    ['7: no colon', 'GET /x HTTP/1.1\r\nX\r\n\r\n'],
    // 8. Values.
    ['8: NUL', 'GET /x HTTP/1.1\r\nX: a\x00b\r\n\r\n'],
    ['8: DEL', 'GET /x HTTP/1.1\r\nX: a\x7fb\r\n\r\n'],
    ['8: other CTL', 'GET /x HTTP/1.1\r\nX: a\x01b\r\n\r\n'],
    ['8: obs-text and tabs', 'GET /x HTTP/1.1\r\nX: \t\xe9\xff a\tb\t\r\n\r\n'],
    ['8: empty value', 'GET /x HTTP/1.1\r\nX:\r\n\r\n'],
    // 9. Leading whitespace.
    ['9: obs-fold', 'GET /x HTTP/1.1\r\nX: a\r\n b\r\n\r\n'],
    ['9: space after the request line', 'GET /x HTTP/1.1\r\n X: a\r\n\r\n'],
    // 10. Content-Length.
    ['10: leading zeros', post('Content-Length: 003\r\n', 'abc')],
    ['10: trailing space', post('Content-Length: 3  \r\n', 'abc')],
    ['10: trailing tab', post('Content-Length: 3\t\r\n', 'abc')],
    ['10: leading tab', post('Content-Length:\t3\r\n', 'abc')],
    ['10: empty', post('Content-Length:\r\n', '')],
    ['10: twice, equal', post('Content-Length: 3\r\nContent-Length: 3\r\n', 'abc')],
    ['10: twice, different', post('Content-Length: 3\r\nContent-Length: 4\r\n', 'abcd')],
    ['10: list', post('Content-Length: 3, 3\r\n', 'abc')],
    ['10: 2^64 - 1 (413)', post('Content-Length: 18446744073709551615\r\n', 'abc')],
    ['10: 2^64', post('Content-Length: 18446744073709551616\r\n', 'abc')],
    ['10: then Transfer-Encoding', post('Content-Length: 3\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')],
    ['10: after Transfer-Encoding', post('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '0\r\n\r\n')],
    ['10: then an empty Transfer-Encoding', post('Content-Length: 3\r\nTransfer-Encoding:\r\n', 'abc')],
    ['10: after an empty Transfer-Encoding', post('Transfer-Encoding:\r\nContent-Length: 3\r\n', 'abc')],
    ['10: on a GET', 'GET /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nGET /', ],
    // 11. Transfer-Encoding.
    ['11: gzip, chunked', post('Transfer-Encoding: gzip, chunked\r\n', '3\r\nabc\r\n0\r\n\r\n')],
    ['11: chunked, gzip', post('Transfer-Encoding: chunked, gzip\r\n', '0\r\n\r\n')],
    ['11: identity', post('Transfer-Encoding: identity\r\n', '')],
    ['11: CHUNKED', post('Transfer-Encoding: CHUNKED\r\n', '0\r\n\r\n')],
    ['11: chunked and a space', post('Transfer-Encoding: chunked \r\n', '0\r\n\r\n')],
    ['11: chunked and a tab', post('Transfer-Encoding: chunked\t\r\n', '0\r\n\r\n')],
    ['11: two headers, chunked last', post('Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')],
    ['11: two headers, chunked first', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n', '0\r\n\r\n')],
    ['11: chunked twice', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n')],
    ['11: HTTP/1.0 (Latch: closes after)', chunked('3\r\nabc\r\n0\r\n\r\n', 'HTTP/1.0')],
    ['11: HTTP/1.0 keep-alive (Latch: closes after)',
     chunked('3\r\nabc\r\n0\r\n\r\n', 'HTTP/1.0', 'Connection: keep-alive\r\n')],
    // 12. Limits.
    ['12: Content-Length = max_body', post(`Content-Length: ${MAX_BODY}\r\n`, rep('a', MAX_BODY))],
    ['12: Content-Length > max_body', post(`Content-Length: ${MAX_BODY + 1}\r\n`, rep('a', MAX_BODY + 1))],
    ['12: head > max_head', 'GET /x HTTP/1.1\r\nX: ' + HUGE + '\r\n\r\n'],
    ['12: target > max_head', 'GET /' + HUGE + ' HTTP/1.1\r\n\r\n'],
    // 13. Connection.
    ['13: close', 'GET /x HTTP/1.1\r\nConnection: close\r\n\r\n'],
    ['13: close among tokens', 'GET /x HTTP/1.1\r\nConnection: te, CLOSE\r\n\r\n'],
    ['13: close and a tab (llhttp 9.3.1: not close)', 'GET /x HTTP/1.1\r\nConnection: close\t\r\n\r\n'],
    ['13: Proxy-Connection: close', 'GET /x HTTP/1.1\r\nProxy-Connection: close\r\n\r\n'],
    ['13: HTTP/1.0 keep-alive, close', 'GET /x HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n'],
    ['13: upgrade', 'GET /x HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n'],
    ['13: upgrade with a body', post('Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n', 'abc')],
    ['13: upgrade with gzip coding', post('Connection: upgrade\r\nUpgrade: x\r\nTransfer-Encoding: gzip\r\n')],
    ['13: Upgrade without Connection', 'GET /x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n'],
    ['13: Expect: 100-continue', post('Expect: 100-continue\r\nContent-Length: 3\r\n', 'abc')],
    // 14. Chunk sizes.
    ['14: 0x', chunked('0x3\r\nabc\r\n0\r\n\r\n')],
    ['14: leading zeros', chunked('0003\r\nabc\r\n000\r\n\r\n')],
    ['14: upper-case hex', chunked('A\r\n0123456789\r\n0\r\n\r\n')],
    ['14: space after', chunked('3 \r\nabc\r\n0\r\n\r\n')],
    ['14: space before', chunked(' 3\r\nabc\r\n0\r\n\r\n')],
    ['14: bare LF', chunked('3\nabc\r\n0\r\n\r\n')],
    ['14: 2^64', chunked('10000000000000000\r\nabc\r\n0\r\n\r\n')],
    ['14: 2^64 - 1 (413)', chunked('ffffffffffffffff\r\nabc\r\n0\r\n\r\n')],
    ['14: no size', chunked('\r\nabc\r\n0\r\n\r\n')],
    // 15. Extensions.
    ['15: name and value', chunked('3;a=b\r\nabc\r\n0;x\r\n\r\n')],
    ['15: quoted value', chunked('3;a="q \\" x"\r\nabc\r\n0\r\n\r\n')],
    ['15: empty', chunked('3;\r\nabc\r\n0\r\n\r\n')],
    ['15: empty name', chunked('3;=x\r\nabc\r\n0\r\n\r\n')],
    ['15: two semicolons', chunked('3;;a\r\nabc\r\n0\r\n\r\n')],
    ['15: quoted-pair', chunked('3;a="\\""\r\nabc\r\n0\r\n\r\n')],
    ['15: quoted-pair of a CTL', chunked('3;a="\\\x01"\r\nabc\r\n0\r\n\r\n')],
    ['15: token then quoted', chunked('3;a=b"c"\r\nabc\r\n0\r\n\r\n')],
    ['15: space after a quoted value', chunked('3;a="c" \r\nabc\r\n0\r\n\r\n')],
    ['15: space before =', chunked('3;a =b\r\nabc\r\n0\r\n\r\n')],
    ['15: 16 KiB', chunked('1;' + rep('n', 8192) + '="' + rep('v', 8190) + '"\r\na\r\n0\r\n\r\n')],
    ['15: 16 KiB + 1', chunked('1;' + rep('n', 8192) + '="' + rep('v', 8191) + '"\r\na\r\n0\r\n\r\n')],
    // 16. Chunk data.
    ['16: data then LF', chunked('3\r\nabc\n0\r\n\r\n')],
    ['16: data too long', chunked('3\r\nabcd\r\n0\r\n\r\n')],
    ['16: missing final CRLF', chunked('3\r\nabc\r\n0\r\n')],
    // 17. Trailers.
    ['17: a trailer', chunked('3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n')],
    ['17: Content-Length trailer', chunked('0\r\nContent-Length: 1\r\n\r\n')],
    ['17: Transfer-Encoding trailer', chunked('0\r\nTransfer-Encoding: x\r\n\r\n')],
    ['17: empty Transfer-Encoding trailer', chunked('0\r\nTransfer-Encoding:\r\n\r\n')],
    ['17: Connection: close trailer', chunked('0\r\nConnection: close\r\n\r\n')],
    ['17: Connection: close trailer on HTTP/1.0 keep-alive',
     chunked('0\r\nConnection: close\r\n\r\n', 'HTTP/1.0', 'Connection: keep-alive\r\n')],
    ['17: space before the colon', chunked('0\r\nX-T : 1\r\n\r\n')],
    ['17: obs-fold', chunked('0\r\nX: a\r\n b\r\n\r\n')],
    ['17: bare LF', chunked('0\r\n\n')],
    ['17: trailers > max_trailers', chunked('0\r\nX: ' + HUGE + '\r\n\r\n')],
    // 18. Body limit.
    ['18: chunked = max_body', chunked('8000\r\n' + rep('a', 0x8000) + '\r\n8000\r\n' + rep('b', 0x8000) + '\r\n0\r\n\r\n')],
    ['18: declared chunk over max_body', chunked('10001\r\nabc')],
    // Pipelining.
    ['two requests in one case', 'GET /x HTTP/1.1\r\n\r\nPOST /y HTTP/1.1\r\nContent-Length: 1\r\n\r\na'],
    ['a body that runs into the probe', post('Content-Length: 10\r\n', 'abc')],
  ];
  return cases.map(([name, bytes]) => ({ name, bytes }));
}

// ---- the reference: node:http on llhttp, strict --------------------------------------------

// Per connection: the requests llhttp parsed and the handler read to their end (`served`), how
// many it started (heads), and how the connection ended.
function startReference() {
  const records = new Map(); // client port -> record
  const waiting = new Map(); // client port -> resolve
  const recordOf = new WeakMap();
  const server = http.createServer({ requireHostHeader: false, insecureHTTPParser: false,
                                     maxHeaderSize: MAX_HEAD }, handle);
  server.on('checkExpectation', handle); // not Node's 417: Expect is no part of the framing
  server.on('connection', (socket) => {
    const rec = { socket, heads: [], served: [], settled: 0, error: null, limit: null,
                  connect: false, closed: false, notify: () => {} };
    recordOf.set(socket, rec);
    records.set(socket.remotePort, rec);
    waiting.get(socket.remotePort)?.(rec);
    socket.on('close', () => { rec.closed = true; rec.notify(); });
  });
  server.on('clientError', (err, socket) => {
    const rec = recordOf.get(socket);
    if (rec && !rec.error) rec.error = { code: err.code, reason: err.reason };
    rec?.notify();
    socket.destroy();
  });
  server.on('connect', (req, socket) => { // CONNECT: llhttp hands the socket over
    const rec = recordOf.get(socket);
    if (rec) { rec.connect = true; rec.notify(); }
    socket.destroy();
  });
  function handle(req, res) {
    const rec = recordOf.get(req.socket);
    const entry = { method: req.method, url: req.url, version: req.httpVersion,
                    headers: req.rawHeaders };
    rec.heads.push(entry);
    let settled = false;
    const settle = () => { if (!settled) { settled = true; rec.settled++; rec.notify(); } };
    req.on('close', settle);
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > MAX_BODY) { // Latch's limit, emulated
      rec.limit = 'Content-Length';
      req.socket.destroy();
      return;
    }
    const hash = crypto.createHash('sha256');
    let length = 0;
    req.on('data', (d) => {
      length += d.length;
      hash.update(d);
      if (length > MAX_BODY && !rec.limit) { rec.limit = 'chunked'; req.socket.destroy(); }
    });
    req.on('end', () => {
      if (rec.limit) return;
      rec.served.push({ ...entry, bodyLength: length, bodySha256: hash.digest('hex') });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, bodyLength: length }));
      settle();
    });
  }
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    close: () => server.close(),
    // The record of the connection from this client port, once the server has accepted it.
    record: (port) => records.get(port) ??
      new Promise((done) => waiting.set(port, (rec) => { waiting.delete(port); done(rec); })),
    forget: (port) => records.delete(port),
  })));
}

const REFERENCE_QUIET_MS = 250; // once the server has read every byte
const REFERENCE_MAX_MS = 20000;

async function runReference(ref, bytes) {
  const socket = net.connect(ref.port, '127.0.0.1');
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  const port = socket.localPort;
  socket.write(Buffer.from(bytes, 'latin1'));
  const rec = await ref.record(port);
  const probeServed = () => rec.served.some((s) => s.url === PROBE_URL);
  const terminal = () => rec.settled === rec.heads.length &&
    (rec.error || rec.limit || rec.connect || rec.closed || probeServed());
  const deadline = Date.now() + REFERENCE_MAX_MS;
  await new Promise((resolve) => {
    let timer;
    const finish = () => { clearTimeout(timer); rec.notify = () => {}; resolve(); };
    // Quiet: nothing happened for a while after the server read all the bytes (a busy machine
    // can take longer than that to read them).
    const quiet = () => {
      if (rec.socket.bytesRead < bytes.length && Date.now() < deadline) return arm();
      finish();
    };
    const arm = () => { clearTimeout(timer); timer = setTimeout(quiet, REFERENCE_QUIET_MS); };
    rec.notify = () => (terminal() ? finish() : arm());
    rec.notify();
  });
  socket.destroy();
  ref.forget(port);
  let end;
  if (rec.error && rec.error.code === 'HPE_CLOSED_CONNECTION') end = 'closed';
  else if (rec.error || rec.limit || rec.connect) end = 'refused';
  else if (rec.closed) end = 'closed';
  else if (probeServed()) end = 'idle';
  else end = 'quiet';
  // pending: the head of a request whose body did not end.
  const pending = rec.heads.length > rec.served.length ? rec.heads[rec.served.length] : null;
  return { served: rec.served, pending, end, error: rec.error, limit: rec.limit, connect: rec.connect };
}

// ---- what the target must do, from the reference ----------------------------------------

const nonHttpProtocol = (bytes) => /^[\r\n]*[A-Z_-]+ +[^ \r\n]+ +(RTSP|ICE)\//.test(bytes);
const hasField = (head, name) => {
  for (let i = 0; i < head.headers.length; i += 2)
    if (head.headers[i].toLowerCase() === name && head.headers[i + 1].trim() !== '') return true;
  return false;
};
const isUpgrade = (head) => hasField(head, 'upgrade') &&
  (hasField(head, 'connection') || hasField(head, 'proxy-connection'));

// served: the requests the target must serve; end: idle (after the probe), waiting (a request's
// body), quiet (nothing more, connection open or closed), stopped (closed after the last one),
// refused (an error answer), unseen (waiting, or an error Node does not report: after the head
// of an upgrade, Node drops llhttp's errors). divergence: which "Latch:" rule of framing.h
// applies, if one does.
function expectation(c, ref) {
  const heads = ref.pending ? [...ref.served, ref.pending] : ref.served;
  for (let i = 0; i < heads.length; i++) {
    const s = heads[i];
    if (!['1.0', '1.1'].includes(s.version) || (i === 0 && nonHttpProtocol(c.bytes)))
      return { served: ref.served.slice(0, i), end: 'refused', divergence: 'version' };
    if (s.version === '1.0' && hasField(s, 'transfer-encoding') && i + 1 < heads.length)
      return { served: ref.served.slice(0, i + 1), end: 'stopped',
               divergence: 'HTTP/1.0 with Transfer-Encoding' };
  }
  const end = { idle: 'idle', closed: 'stopped', refused: 'refused',
                quiet: !ref.pending ? 'quiet' : isUpgrade(ref.pending) ? 'unseen' : 'waiting' }[ref.end];
  return { served: ref.served, end, divergence: null };
}

// ---- target: framing_probe ------------------------------------------------------------------

function runProbe(cases) {
  const input = cases.map((c) => Buffer.from(c.bytes + PROBE, 'latin1').toString('hex')).join('\n') + '\n';
  const out = spawnSync(targetPath, ['--batch'], { input, maxBuffer: 1 << 30 });
  if (out.status !== 0) throw new Error(`${targetPath} failed (${out.status}): ${out.stderr}`);
  const lines = out.stdout.toString().trim().split('\n');
  if (lines.length !== cases.length) throw new Error(`${targetPath} answered ${lines.length} of ${cases.length} cases`);
  return lines.map((l) => JSON.parse(l));
}

// The probe's decisions against the expectation: null when they agree, else what differs.
function compareProbe(exp, decisions) {
  const served = decisions.filter((d) => d.state === 'complete');
  const last = decisions[decisions.length - 1];
  for (let i = 0; i < Math.max(served.length, exp.served.length); i++) {
    const a = exp.served[i], b = served[i];
    if (!a || !b) return `llhttp served ${exp.served.length} requests, Latch ${served.length}`;
    if (a.method !== b.method || a.url !== b.target || a.bodyLength !== b.bodyLength ||
        a.bodySha256 !== b.bodySha256)
      return `request ${i + 1} differs`;
  }
  let end;
  if (!last || (last.state === 'complete' && last.keepAlive)) end = 'exhausted';
  else if (last.state === 'complete') end = 'stopped';
  else if (last.state === 'refused') end = 'refused';
  else end = last.method ? 'waiting' : 'incomplete'; // a body, or a head, not all here
  const allowed = {
    idle: ['exhausted'],
    waiting: ['waiting', 'refused-413'],
    unseen: ['waiting', 'refused'],
    quiet: ['incomplete', 'stopped', 'exhausted'], // a head not ended, an upgrade, probe in a body
    stopped: ['stopped'],
    refused: ['refused'],
  }[exp.end];
  const early413 = end === 'refused' && last.status === 413 && last.reason === 'chunked body too large';
  if (allowed.includes(end) || (early413 && allowed.includes('refused-413'))) {
    if (exp.end === 'idle' && served[served.length - 1]?.target !== PROBE_URL) return 'probe not served';
    return null;
  }
  return `llhttp ends ${exp.end}, Latch ${end}`;
}

function describeProbe(decisions) {
  return decisions.map((d) => d.state === 'complete'
    ? `${d.method} ${JSON.stringify(d.target)} body ${d.bodyLength}${d.keepAlive ? '' : ' (close)'}`
    : d.state === 'refused' ? `refused ${d.status} (${d.reason})` : `incomplete${d.method ? ' body' : ' head'}`)
    .join('; ') || 'nothing';
}

// ---- target: the latch binary ---------------------------------------------------------------

async function startLatch() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'latch-framing-'));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LATCH_')) env[k] = v;
  Object.assign(env, { LATCH_ARGON2_MEMORY_KIB: '64', LATCH_ARGON2_ITERATIONS: '1', LATCH_RATE_LIMIT: '0' });
  const child = spawn(targetPath, ['serve', '--addr', '127.0.0.1:0', '--db', path.join(tmp, 'auth.db'),
                                   '--log-format', 'off'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`latch did not start in 20 s: ${err}`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on https?:\/\/[^:\s]+:(\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`latch exited (${code}): ${err}`)); });
  });
  return {
    port,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.on('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

// The responses in `buf`: status codes (1xx left out) and bodies; `methods` says which have none.
function parseResponses(buf, methods) {
  const out = [];
  let pos = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', pos, 'latin1');
    if (headEnd < 0) break;
    const head = buf.toString('latin1', pos, headEnd);
    const status = Number(head.slice(9, 12));
    let p = headEnd + 4;
    if (status >= 100 && status < 200) { pos = p; continue; }
    let body = '';
    const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
    if (methods[out.length] === 'HEAD' || status === 204 || status === 304) {
      // no body
    } else if (length) {
      const n = Number(length[1]);
      if (buf.length < p + n) break;
      body = buf.toString('latin1', p, p + n);
      p += n;
    } else if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
      let q = p, ok = false;
      for (;;) {
        const eol = buf.indexOf('\r\n', q, 'latin1');
        if (eol < 0) break;
        const n = parseInt(buf.toString('latin1', q, eol), 16);
        if (n === 0) { const end = buf.indexOf('\r\n\r\n', eol, 'latin1'); if (end >= 0) { q = end + 4; ok = true; } break; }
        if (buf.length < eol + 2 + n + 2) break;
        body += buf.toString('latin1', eol + 2, eol + 2 + n);
        q = eol + 2 + n + 2;
      }
      if (!ok) break;
      p = q;
    } else {
      body = buf.toString('latin1', p);
      p = buf.length;
    }
    out.push({ status, body });
    pos = p;
  }
  return out;
}

const LATCH_QUIET_MS = 1000;

async function runLatch(latch, c, methods) {
  const socket = net.connect(latch.port, '127.0.0.1');
  const chunks = [];
  let closed = false;
  socket.on('error', () => {});
  await new Promise((resolve) => {
    let timer;
    const finish = () => { clearTimeout(timer); resolve(); };
    const quiet = () => { clearTimeout(timer); timer = setTimeout(finish, LATCH_QUIET_MS); };
    socket.on('data', (d) => {
      chunks.push(d);
      const responses = parseResponses(Buffer.concat(chunks), methods);
      if (responses.some((r) => r.body.includes('"status":"ok"'))) finish(); // the probe's answer
      else quiet();
    });
    socket.on('close', () => { closed = true; finish(); });
    socket.on('connect', () => { socket.write(Buffer.from(c.bytes + PROBE, 'latin1')); quiet(); });
  });
  socket.destroy();
  const responses = parseResponses(Buffer.concat(chunks), methods);
  return { statuses: responses.map((r) => r.status),
           probeAnswered: responses.some((r) => r.status === 200 && r.body.includes('"status":"ok"')),
           closed };
}

// What latch did after the requests llhttp served: serves the probe, refuses (an error answer,
// then closes), closes, or waits (no answer, connection open).
function latchEnd(got, n) {
  const s = got.statuses;
  if (got.probeAnswered) return 'serves the probe';
  if (s.length === n + 1 && REFUSAL_STATUSES.has(s[n]) && got.closed) return `refuses ${s[n]}`;
  const more = s.length > n ? ` after ${s.length - n} more answers (${s.slice(n).join(', ')})` : '';
  return (got.closed ? 'closes' : 'waits') + more;
}

// null when latch did what llhttp did, else the class of the disagreement.
function compareLatch(exp, got) {
  const n = exp.served.length;
  const s = got.statuses;
  const end = latchEnd(got, n);
  let ok;
  switch (exp.end) {
    case 'idle': ok = s.length === n && got.probeAnswered; break;
    case 'waiting': ok = (s.length === n && !got.closed) || end === 'refuses 413'; break;
    case 'unseen': ok = (s.length === n && !got.closed) || end.startsWith('refuses'); break;
    case 'quiet': case 'stopped': ok = s.length === n && !got.probeAnswered; break;
    case 'refused': ok = end.startsWith('refuses'); break;
  }
  if (ok && s.length < n) ok = false;
  return ok ? null : `llhttp ${{ idle: 'serves the probe', waiting: 'waits for a body',
    unseen: 'waits for a body', quiet: 'serves no more', stopped: 'closes', refused: 'refuses' }[exp.end]}` +
    `${n ? ` after ${n} requests` : ''}; latch ${s.length < n ? `answers only ${s.length} requests` : end}`;
}

const describeLatch = (got) =>
  `answered ${JSON.stringify(got.statuses)}${got.probeAnswered ? ' (probe answered)' : ''}, ` +
  (got.closed ? 'closed' : 'connection open');

// ---- the run ---------------------------------------------------------------------------------

async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  }));
  return results;
}

function show(bytes) {
  const s = bytes.length > 1200
    ? bytes.slice(0, 800) + `...[${bytes.length - 1000} bytes]...` + bytes.slice(-200) : bytes;
  return JSON.stringify(s);
}

function describeReference(ref) {
  const served = ref.served.map((s) => `${s.method} ${JSON.stringify(s.url)} HTTP/${s.version} body ${s.bodyLength}`);
  const why = ref.error ? ` (${ref.error.code}: ${ref.error.reason})` : ref.limit ? ` (${ref.limit} over max_body)` :
              ref.connect ? ' (CONNECT)' : '';
  return `${served.join('; ') || 'nothing'}; then ${ref.end}${ref.pending ? ' for a body' : ''}${why}`;
}

async function main() {
  const started = Date.now();
  if (process.versions.llhttp !== LLHTTP)
    console.log(`note: the reference is llhttp ${process.versions.llhttp}; the rules were proven against ${LLHTTP}`);
  const gen = new Generator(seed);
  const cases = named();
  for (let i = 0; i < generatedCount; i++) cases.push({ name: `generated #${i + 1}`, bytes: gen.request() });
  console.log(`framing: ${cases.length} cases (${cases.length - generatedCount} named), seed ${seed} ` +
              `(LATCH_FRAMING_SEED=${seed} replays), target ${mode.slice(2)}, llhttp ${process.versions.llhttp}`);

  const ref = await startReference();
  const refs = await pool(cases, 32, (c) => runReference(ref, c.bytes + PROBE));
  ref.close();
  const expected = cases.map((c, i) => expectation(c, refs[i]));

  let verdicts, describe;
  if (mode === '--probe') {
    const decisions = runProbe(cases);
    verdicts = expected.map((exp, i) => compareProbe(exp, decisions[i]));
    describe = (i) => describeProbe(decisions[i]);
  } else {
    const latch = await startLatch();
    let got;
    try {
      // Which responses have no body (HEAD): as llhttp read the requests, else the case's first.
      const methods = (c, ref) => ref.served.length ? ref.served.map((s) => s.method)
        : [/^[\r\n]*([^ \r\n]*)/.exec(c.bytes)[1]];
      got = await pool(cases, 24, (c, i) => runLatch(latch, c, methods(c, refs[i])));
    } finally {
      await latch.stop();
    }
    verdicts = expected.map((exp, i) => compareLatch(exp, got[i]));
    describe = (i) => describeLatch(got[i]);
  }

  const failures = [];
  const classes = new Map(), divergences = new Map();
  let accepted = 0;
  const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
  for (let i = 0; i < cases.length; i++) {
    const exp = expected[i];
    if (exp.served.length > 0 && !exp.divergence) accepted++;
    if (exp.divergence) count(divergences, exp.divergence);
    if (verdicts[i]) {
      failures.push(i);
      count(classes, verdicts[i].replace(/after \d+ /g, 'after N ').replace(/\(.*\)/, ''));
    } else if (exp.end === 'refused' && !exp.divergence) {
      const why = mode === '--probe' ? describe(i).split('; ').pop().replace(/^refused /, '')
        : `llhttp ${refs[i].error?.code ?? `${refs[i].limit ?? 'CONNECT'} refused`}`;
      count(classes, `both refuse: ${why}`);
    }
  }
  if (process.env.LATCH_FRAMING_VERBOSE === '1')
    for (let i = 0; i < cases.length && !cases[i].name.startsWith('generated'); i++)
      console.log(`${verdicts[i] ? 'DIFF' : 'ok  '} ${cases[i].name}\n       llhttp: ${describeReference(refs[i])}\n       latch:  ${describe(i)}`);
  for (const i of failures.slice(0, Number(process.env.LATCH_FRAMING_SHOW ?? 25))) {
    console.log(`\nDISAGREEMENT in ${cases[i].name}: ${verdicts[i]}`);
    console.log(`  bytes:  ${show(cases[i].bytes + PROBE)}`);
    console.log(`  llhttp: ${describeReference(refs[i])}${expected[i].divergence ? ` [expected difference: ${expected[i].divergence}]` : ''}`);
    console.log(`  latch:  ${describe(i)}`);
  }
  if (failures.length > 25) console.log(`\n... and more: ${failures.length} disagreements in all`);
  console.log(`\nframing: ${cases.length} cases, ${accepted} accepted by llhttp, ` +
              `${expected.filter((e) => e.end === 'refused' && !e.divergence).length} refused; ` +
              `expected differences: ${[...divergences].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
  const sorted = [...classes].sort((a, b) => b[1] - a[1]);
  for (const [k, v] of sorted) console.log(`  ${String(v).padStart(5)}  ${k}`);
  console.log(`framing: ${failures.length} disagreements (${((Date.now() - started) / 1000).toFixed(1)} s, seed ${seed})`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
