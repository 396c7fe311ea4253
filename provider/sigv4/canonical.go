package sigv4

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// canonicalRequest is the SigV4 canonical request of r for the signed
// header names (lower-case, sorted) and the payload hash (hex).
func canonicalRequest(r *http.Request, signed []string, payloadHash string, normalize bool) (string, error) {
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	values, err := canonicalHeaders(r, signed)
	if err != nil {
		return "", err
	}
	p := rawPath(r)
	if normalize {
		p = normalizePath(p)
	}
	return CanonicalRequest(r.Method, uriEncode(p, true), query, signed, values, payloadHash), nil
}

// rawPath is the path as the client sent it: the request-target up to
// '?' when it is in origin form, else the URL's escaped path.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if !strings.HasPrefix(p, "/") {
		p = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	return p
}

// normalizePath removes "." and ".." segments and empty segments, keeping
// a trailing slash (RFC 3986 section 5.2.4, as SigV4 does for every
// service but S3).
func normalizePath(p string) string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	n := "/" + strings.Join(out, "/")
	if len(out) > 0 && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
		n += "/"
	}
	return n
}

// canonicalQuery decodes each name and value of the raw query, encodes
// them the SigV4 way and sorts the pairs by name, then value.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	var pairs [][2]string
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		dk, err1 := url.PathUnescape(k)
		dv, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return "", fail(Incomplete, "query", "the query string holds a malformed percent-encoding")
		}
		pairs = append(pairs, [2]string{uriEncode(dk, false), uriEncode(dv, false)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0] + "=" + p[1]
	}
	return strings.Join(out, "&"), nil
}

// canonicalHeaders is the value of each signed header, trimmed with inner
// runs of spaces collapsed, repeated headers joined with commas in the
// order received.
func canonicalHeaders(r *http.Request, signed []string) ([]string, error) {
	out := make([]string, 0, len(signed))
	for _, name := range signed {
		var vals []string
		if name == "host" {
			vals = []string{r.Host}
		} else {
			vals = append([]string(nil), r.Header.Values(name)...)
		}
		if len(vals) == 0 || (name == "host" && r.Host == "") {
			return nil, fail(Incomplete, name, "the signed header %s is not in the request", name)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		out = append(out, strings.Join(vals, ","))
	}
	return out, nil
}

// uriEncode percent-encodes every byte but the unreserved characters
// (A-Z a-z 0-9 - . _ ~), and '/' when keepSlash, with upper-case hex.
func uriEncode(s string, keepSlash bool) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', keepSlash && c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexdigits[c>>4])
			b.WriteByte(hexdigits[c&15])
		}
	}
	return b.String()
}
