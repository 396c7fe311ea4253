package wire_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/p11kms/p11kms/internal/softhsmtest"
	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
)

// toyDialect is a third dialect made of only what docs/ARCHITECTURE.md
// says a dialect supplies: a table (two rows of the core's), a verifier
// (a shared secret in a header, for the test), an error map and encoder.
type toyDialect struct {
	keys   *wire.AccessKeys
	claims int // replay claims spent
}

func (d *toyDialect) NewRecord(*wire.Request) wire.Record {
	return wire.Record{RequestId: provider.NewRequestID(), API: "toy"}
}

func (d *toyDialect) Verify(req *wire.Request, rec *wire.Record) (*wire.Auth, error) {
	h := req.HTTP.Header
	rec.AccessKeyId = provider.Clip(h.Get("X-Toy-Key"), 64)
	k, ok := d.keys.Lookup(h.Get("X-Toy-Key"))
	if !ok || h.Get("X-Toy-Secret") != k.AccessKeySecret {
		return nil, provider.NewError("Toy.BadSignature", "not signed")
	}
	body, err := req.Body()
	if err != nil {
		return nil, provider.NewError("Toy.TooLarge", "too large")
	}
	replay := wire.NewReplayClaim(func() error { d.claims++; return nil })
	return &wire.Auth{AccessKey: k, Action: h.Get("X-Toy-Action"), Replay: replay, Params: body}, nil
}

var toyTable = map[string]bool{"DescribeKey": true, "Encrypt": true}

func (d *toyDialect) Lookup(a *wire.Auth) (*wire.Action, bool, error) {
	if !toyTable[a.Action] {
		return nil, false, provider.NewError("Toy.NoSuchAction", "no action %s", provider.Clip(a.Action, 32))
	}
	act := wire.Actions[a.Action]
	return &act, true, nil
}

func (d *toyDialect) Decode(a *wire.Auth, act *wire.Action) (any, error) {
	req := act.New()
	if err := json.Unmarshal(a.Params.([]byte), req); err != nil {
		return nil, provider.InvalidParam("body", "not JSON")
	}
	return req, nil
}

func (d *toyDialect) Refuse(kind wire.Refusal, _ *wire.Auth) error {
	if kind == wire.AuditUnavailable {
		return provider.NewError("Toy.Unavailable", "the audit log cannot be written")
	}
	return provider.NewError("Toy.Throttled", "slow down")
}

func (d *toyDialect) Write(w http.ResponseWriter, _ *wire.Request, rec *wire.Record, resp any, err error) {
	if err != nil {
		rec.Code = provider.AsError(err).Code
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(rec.Code))
		return
	}
	json.NewEncoder(w).Encode(resp)
}

// toyObserver keeps the records and reports the health the test sets.
type toyObserver struct {
	mu      sync.Mutex
	recs    []wire.Record
	healthy bool
}

func (o *toyObserver) Observe(r wire.Record) { o.mu.Lock(); o.recs = append(o.recs, r); o.mu.Unlock() }
func (o *toyObserver) Healthy() bool         { o.mu.Lock(); defer o.mu.Unlock(); return o.healthy }

type toyLimiter struct{ allow bool }

func (l *toyLimiter) Allow(context.Context, string) (bool, error) { return l.allow, nil }

// A dialect that is only a table, a verifier and an error map runs
// through wire.Serve with every check of the pipeline: the policy on the
// key the request names (the replay memory spent only once it passed),
// the audit log's health (fail closed), the rate limit, one record per
// request.
func TestAThirdDialectIsATableAVerifierAndAnErrorMap(t *testing.T) {
	tok := softhsmtest.New(t)
	kms := provider.New(tok.Token, provider.Options{})
	var a, b string
	for _, id := range []*string{&a, &b} {
		k, err := kms.CreateKey(t.Context(), &provider.CreateKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		*id = k.KeyMetadata.KeyId
	}
	d := &toyDialect{keys: wire.NewAccessKeys(wire.AccessKey{AccessKeyId: "toy", AccessKeySecret: "s3cret",
		Policy: wire.Policy{Actions: []string{"DescribeKey"}, Keys: []string{a}}})}
	obs, lim := &toyObserver{healthy: true}, &toyLimiter{allow: true}
	send := func(action, body string) (int, string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("X-Toy-Key", "toy")
		r.Header.Set("X-Toy-Secret", "s3cret")
		r.Header.Set("X-Toy-Action", action)
		w := httptest.NewRecorder()
		wire.Serve(w, wire.NewRequest(r, 1<<16), d, wire.Pipeline{KMS: kms, Limiter: lim, Observer: obs})
		return w.Code, w.Body.String()
	}
	for _, c := range []struct {
		name, action, body string
		healthy, allow     bool
		wantStatus         int
		want               string
		claims             int
	}{
		{"allowed key", "DescribeKey", `{"KeyId":"` + a + `"}`, true, true, 200, a, 1},
		{"key outside the policy", "DescribeKey", `{"KeyId":"` + b + `"}`, true, true, 400, provider.CodeNoPermission, 1},
		{"action outside the policy", "Encrypt", `{"KeyId":"` + a + `","Plaintext":"AA=="}`, true, true, 400, provider.CodeNoPermission, 1},
		{"not in the table", "Decrypt", `{}`, true, true, 400, "Toy.NoSuchAction", 1},
		{"audit log failing", "DescribeKey", `{"KeyId":"` + a + `"}`, false, true, 400, "Toy.Unavailable", 1},
		{"throttled", "DescribeKey", `{"KeyId":"` + a + `"}`, true, false, 400, "Toy.Throttled", 1},
		{"allowed again", "DescribeKey", `{"KeyId":"` + a + `"}`, true, true, 200, a, 2},
	} {
		obs.healthy, lim.allow = c.healthy, c.allow
		status, body := send(c.action, c.body)
		if status != c.wantStatus || !strings.Contains(body, c.want) || d.claims != c.claims {
			t.Errorf("%s: %d %q, %d replay claims; want %d %q, %d", c.name, status, body, d.claims, c.wantStatus, c.want, c.claims)
		}
	}
	if len(obs.recs) != 7 || obs.recs[0].KeyId != a || obs.recs[0].Action != "DescribeKey" || obs.recs[3].Action != wire.UnknownAction {
		t.Errorf("records: %+v", obs.recs)
	}
}
