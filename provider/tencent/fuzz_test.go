package tencent

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p11kms/p11kms/provider/wire"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz seeds from testdata/captures")

// fuzzTime is the captures' time: seeds verify at it.
var fuzzTime = time.Date(2026, 11, 23, 6, 1, 54, 0, time.UTC)

// seedFile is the go-fuzz corpus encoding of one []byte argument.
func seedFile(b []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
}

// TestFuzzSeeds checks that testdata/fuzz holds every capture as a seed of
// FuzzRequest and its parameters (body or query) as a seed of FuzzParams;
// -update-seeds writes them.
func TestFuzzSeeds(t *testing.T) {
	for _, dir := range []string{"tc3", "tcv1"} {
		for _, c := range loadCaptures(t, dir) {
			r, body, err := readRequest(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			params := body
			if len(params) == 0 {
				params = []byte(r.URL.RawQuery)
			}
			name := strings.ReplaceAll(strings.TrimSuffix(c.name, ".txt"), "/", "-")
			for target, data := range map[string][]byte{"FuzzRequest": c.raw, "FuzzParams": params} {
				file := filepath.Join("testdata", "fuzz", target, "capture-"+name)
				want := seedFile(data)
				if *updateSeeds {
					if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, want, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if got, err := os.ReadFile(file); err != nil || string(got) != string(want) {
					t.Fatalf("%s is missing or stale (go test -run TestFuzzSeeds -update-seeds): %v", file, err)
				}
			}
		}
	}
}

// FuzzRequest feeds raw HTTP requests to the signature verifier and the
// parameter decoders: nothing panics, every refusal carries a Tencent code
// and no secret, and only correctly signed requests pass.
func FuzzRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, body, err := readRequest(raw)
		if err != nil {
			return
		}
		h := authOnly(fuzzTime)
		p, err := h.authenticate(r, body, fuzzTime)
		if err != nil {
			code, msg := codeAndMessage(err)
			if code == "" || code == CodeInternalError || strings.Contains(msg, captureSecretKey) {
				t.Fatalf("refusal %q %q", code, msg)
			}
			return
		}
		if p.secretID != captureSecretID || p.key.AccessKeyId != captureSecretID {
			t.Fatalf("authenticated as %q", p.secretID)
		}
		for name, a := range actions {
			checkDecode(t, name, a, p.isJSON, p.json, p.flat)
		}
		// The same request again: a v1 replay is refused; a TC3 repeat
		// passes for a read and is refused for a state change.
		r, body, _ = readRequest(raw)
		_, err = h.authenticate(r, body, fuzzTime)
		switch {
		case p.scheme != SchemeTC3 && codeOf(err) != CodeSignatureExpire,
			p.scheme == SchemeTC3 && repeatable[p.action] && err != nil,
			p.scheme == SchemeTC3 && !repeatable[p.action] && codeOf(err) != CodeSignatureFailure:
			t.Fatalf("repeat of a %s %s request: %v", p.scheme, p.action, err)
		}
	})
}

// FuzzParams feeds parameter text, as a JSON body and as a query string,
// to every action's decoder and its checks (wire.CheckRequired, the
// request's check).
func FuzzParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		flat, ferr := flatParams(string(data))
		for name, a := range actions {
			checkDecode(t, name, a, true, data, nil)
			if ferr == nil {
				checkDecode(t, name, a, false, nil, flat)
			}
		}
	})
}

func checkDecode(t *testing.T, name string, a *wire.Action, isJSON bool, body []byte, flat map[string]string) {
	t.Helper()
	req := a.New()
	var err error
	if isJSON {
		err = decodeJSON(body, req)
	} else {
		err = decodeFlat(flat, req)
	}
	if err == nil {
		// What decoded validates without a panic, refusing with a code
		// that names the caller's fault, never InternalError.
		if err = wire.CheckRequired(req); err == nil {
			if c, ok := req.(checker); ok {
				err = c.check()
			}
		}
		if err == nil {
			return
		}
		if code, msg := codeAndMessage(err); code == CodeInternalError || msg == "" {
			t.Fatalf("%s: check error %v", name, err)
		}
		return
	}
	switch code, _ := codeAndMessage(err); code {
	case CodeInvalidParameter, CodeInvalidParameterVal, CodeUnknownParameter:
	default:
		t.Fatalf("%s: decode error %v", name, fmt.Sprint(err))
	}
}
