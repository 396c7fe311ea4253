package wrap

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// EncryptionContext is the caller's key-value context, bound to a
// CiphertextBlob through the AES-GCM additional data. Nil and empty are
// the same context.
type EncryptionContext map[string]string

// Canonical returns the context's one byte encoding: pairs sorted by key
// bytes, each as uvarint(len(k)) ‖ k ‖ uvarint(len(v)) ‖ v. A nil or empty
// context encodes as no bytes.
func (c EncryptionContext) Canonical() []byte {
	if len(c) == 0 {
		return nil
	}
	keys := make([]string, 0, len(c))
	size := 0
	for k, v := range c {
		keys = append(keys, k)
		size += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	slices.Sort(keys) // string order is byte order
	out := make([]byte, 0, size)
	for _, k := range keys {
		v := c[k]
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
	}
	return out
}

// AAD returns the AES-GCM additional data for a CiphertextBlob:
// header ‖ ctx.Canonical(), where header is Blob.Header(). This is the only
// place the AAD is built; sealing and opening must both call it. The
// result is never empty (the header is 29 bytes).
func AAD(header []byte, ctx EncryptionContext) []byte {
	canon := ctx.Canonical()
	out := make([]byte, 0, len(header)+len(canon))
	out = append(out, header...)
	return append(out, canon...)
}

// ParseEncryptionContextJSON parses the EncryptionContext request
// parameter: a JSON object whose values are all strings. "" (or only
// white space) is the empty context. Input longer than maxChars characters
// (Unicode code points; maxChars <= 0 means no limit), invalid UTF-8,
// anything but an object, non-string (nested, number, null) values,
// duplicate keys (compared after unescaping) and data after the object
// are each a *ParamError for FieldContext.
func ParseEncryptionContextJSON(s string, maxChars int) (EncryptionContext, error) {
	const param = FieldContext
	if maxChars > 0 {
		if n := utf8.RuneCountInString(s); n > maxChars {
			return nil, paramErr(param, "is %d characters; at most %d accepted", n, maxChars)
		}
	}
	if !utf8.ValidString(s) {
		return nil, paramErr(param, "is not valid UTF-8")
	}
	if strings.TrimSpace(s) == "" {
		return EncryptionContext{}, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, paramErr(param, "must be a JSON object of string values, like {\"k\":\"v\"}")
	}
	ctx := EncryptionContext{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, paramErr(param, "is not valid JSON: %v", err)
		}
		key := tok.(string) // object keys are always strings
		if _, dup := ctx[key]; dup {
			return nil, paramErr(param, "has duplicate key %q", key)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, paramErr(param, "is not valid JSON: %v", err)
		}
		val, ok := tok.(string)
		if !ok {
			return nil, paramErr(param, "value of %q is not a string; only string values are accepted", key)
		}
		ctx[key] = val
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, paramErr(param, "is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, paramErr(param, "has data after the JSON object")
	}
	return ctx, nil
}
