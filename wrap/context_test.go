package wrap

import (
	"bytes"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	if EncryptionContext(nil).Canonical() != nil || len(EncryptionContext{}.Canonical()) != 0 {
		t.Error("empty context is not empty bytes")
	}
	got := EncryptionContext{"b": "2", "a": "1", "": ""}.Canonical()
	want := []byte{0, 0, 1, 'a', 1, '1', 1, 'b', 1, '2'}
	if !bytes.Equal(got, want) {
		t.Errorf("Canonical = %x, want %x", got, want)
	}
	// Lengths ≥ 128 take two uvarint bytes.
	long := strings.Repeat("v", 200)
	got = EncryptionContext{"k": long}.Canonical()
	if !bytes.Equal(got[:4], []byte{1, 'k', 0xC8, 0x01}) || len(got) != 4+200 {
		t.Errorf("long value: %x", got[:8])
	}
	// Length prefixes keep pairs apart: {"ab":"c"} ≠ {"a":"bc"}.
	if bytes.Equal(EncryptionContext{"ab": "c"}.Canonical(), EncryptionContext{"a": "bc"}.Canonical()) {
		t.Error("ambiguous encoding")
	}
	// AAD = header ‖ canonical, never empty.
	h := (&Blob{}).Header()
	if a := AAD(h, nil); !bytes.Equal(a, h) {
		t.Error("AAD with no context is not the header")
	}
	if a := AAD(h, EncryptionContext{"a": "1"}); !bytes.Equal(a, append(append([]byte{}, h...), 1, 'a', 1, '1')) {
		t.Errorf("AAD = %x", a)
	}
}

func TestParseEncryptionContextJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want EncryptionContext
	}{
		{"", EncryptionContext{}},
		{"  \n", EncryptionContext{}},
		{"{}", EncryptionContext{}},
		{` { "a" : "1", "b":"" } `, EncryptionContext{"a": "1", "b": ""}},
		{`{"k\u00e9y":"v\n"}`, EncryptionContext{"kéy": "v\n"}},
		{`{"":"empty key"}`, EncryptionContext{"": "empty key"}},
	} {
		got, err := ParseEncryptionContextJSON(tc.in, 100)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !bytes.Equal(got.Canonical(), tc.want.Canonical()) || got == nil {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in, msg string
	}{
		{`{"a":"1","a":"2"}`, `duplicate key "a"`},
		{`{"a":"1","\u0061":"2"}`, `duplicate key "a"`},
		{`{"a":{"b":"c"}}`, `value of "a" is not a string`},
		{`{"a":["b"]}`, "not a string"},
		{`{"a":1}`, "not a string"},
		{`{"a":null}`, "not a string"},
		{`{"a":true}`, "not a string"},
		{`["a"]`, "must be a JSON object"},
		{`"a"`, "must be a JSON object"},
		{`null`, "must be a JSON object"},
		{`{"a":"1"`, "not valid JSON"},
		{`{"a":"1",}`, "not valid JSON"},
		{`{"a" "1"}`, "not valid JSON"},
		{`{"a":"1"} {}`, "data after the JSON object"},
		{`{"a":"1"}x`, "data after the JSON object"},
		{"{\"a\":\"\xff\"}", "not valid UTF-8"},
		{`{"a":"` + strings.Repeat("é", 95) + `"}`, "is 103 characters; at most 100 accepted"},
	} {
		_, err := ParseEncryptionContextJSON(tc.in, 100)
		if err == nil {
			t.Errorf("%q: accepted", tc.in)
			continue
		}
		wantParamError(t, err, FieldContext, tc.msg)
	}
	// Exactly at the limit (counted in characters, not bytes) is fine;
	// maxChars <= 0 means no limit.
	at := `{"a":"` + strings.Repeat("é", 92) + `"}`
	if _, err := ParseEncryptionContextJSON(at, 100); err != nil {
		t.Errorf("100 characters: %v", err)
	}
	if _, err := ParseEncryptionContextJSON(`{"a":"`+strings.Repeat("x", 10000)+`"}`, 0); err != nil {
		t.Errorf("no limit: %v", err)
	}
}
