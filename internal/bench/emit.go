package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// EmitWrk writes n requests for the server operation op (a name from
// ServerOpsFor(s.Scheme)), each signed by s now with a fresh nonce, as a
// wrk Lua script: a table of raw HTTP/1.1 requests and the request hook
// that sends each of them once. Thread k of T (T is the script argument,
// default 1: `wrk -t2 ... -s FILE URL -- 2`) sends requests k+1, k+1+T,
// ...; when its share is sent it stops, sending GET /healthz meanwhile
// rather than a replay. Alibaba requests are accepted within 15 minutes of
// signing, TC3 ones within 5 (docs/WIRE.md).
func (f *Fixture) EmitWrk(w io.Writer, op string, s Signer, n int) error {
	sc, ok := f.serverCalls(s.Scheme)[op]
	if !ok {
		return fmt.Errorf("operation %q: accepted %s", op, strings.Join(ServerOpsFor(s.Scheme), ", "))
	}
	bw := bufio.NewWriter(w)
	now := time.Now()
	fmt.Fprintf(bw, "-- p11kms bench --emit: %d pre-signed %s requests (%s) for %s, signed %s.\n",
		n, sc.action, s.Scheme, s.Host, now.UTC().Format(time.RFC3339))
	fmt.Fprintf(bw, "-- Each is sent once. Run: wrk -t T -c C -d D -s THIS_FILE http://%s -- T\n", s.Host)
	bw.WriteString("local requests = {\n")
	var raw bytes.Buffer
	for range n {
		req, err := s.Sign(sc.action, sc.params, now, NewNonce())
		if err != nil {
			return err
		}
		raw.Reset()
		if err := req.Write(&raw); err != nil {
			return err
		}
		bw.WriteString(luaQuote(raw.Bytes()) + ",\n")
	}
	bw.WriteString("}\n")
	fmt.Fprintf(bw, "local idle = %s\n", luaQuote([]byte("GET /healthz HTTP/1.1\r\nHost: "+s.Host+"\r\n\r\n")))
	bw.WriteString(wrkHooks)
	return bw.Flush()
}

// wrkHooks number the threads (setup runs in wrk's main state, init and
// request in each thread's) and hand each thread its share of requests.
const wrkHooks = `local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local step, nextIndex
function init(args)
  step = tonumber(args[1]) or 1
  nextIndex = (id or 0) + 1
end
function request()
  local r = requests[nextIndex]
  if r == nil then
    wrk.thread:stop()
    return idle
  end
  nextIndex = nextIndex + step
  return r
end
`

// luaQuote is b as a Lua string literal: printable ASCII as it is, CR and
// LF as \r and \n, every other byte as a decimal \ddd escape.
func luaQuote(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		switch {
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '"' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\%03d`, c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}
