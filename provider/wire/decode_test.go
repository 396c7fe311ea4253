package wire

import (
	"errors"
	"net/url"
	"testing"
)

// fuzzRequest has every kind the decoders handle.
type fuzzRequest struct {
	Name  string `wire:"required"`
	Count *uint64
	Delta int64
	On    bool
	Tags  []struct{ Key, Value string }
	Inner struct{ Id string }
}

// The strict decoders never panic, and every refusal is a *DecodeError
// (which each dialect maps to its code).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"Name":"a","Count":1,"Tags":[{"Key":"k"}]}`, `{"Inner":{"Id":"x"}}`, `[]`, `{"Name":1}`,
		"Name=a&Count=1&Tags.0.Key=k&Inner.Id=x", "Tags.1.Key=k", "On=maybe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(err error) {
			var de *DecodeError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("%q: %T %v", s, err, err)
			}
		}
		var j fuzzRequest
		if err := DecodeJSON([]byte(s), &j); err == nil {
			check(CheckRequired(&j))
		} else {
			check(err)
		}
		if v, err := url.ParseQuery(s); err == nil {
			flat := map[string]string{}
			for k, vs := range v {
				flat[k] = vs[0]
			}
			var r fuzzRequest
			check(DecodeFlat(flat, &r))
		}
	})
}

func TestDecodeRefusalsHaveKinds(t *testing.T) {
	var r fuzzRequest
	for body, want := range map[string]DecodeKind{`{"Nme":"a"}`: UnknownParameter, `{"Count":"1"}`: Malformed, `x`: Malformed} {
		var de *DecodeError
		if err := DecodeJSON([]byte(body), &r); !errors.As(err, &de) || de.Kind != want {
			t.Errorf("%s: %v, want kind %d", body, err, want)
		}
	}
	var de *DecodeError
	if err := CheckRequired(&fuzzRequest{}); !errors.As(err, &de) || de.Kind != MissingParameter || de.Msg != "the parameter Name is required" {
		t.Errorf("required: %v", err)
	}
}
