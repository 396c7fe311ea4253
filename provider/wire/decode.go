package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/p11kms/p11kms/provider"
)

// The strict decoders of request parameters into a dialect's request
// structs, for JSON bodies (DecodeJSON) and flattened name=value lists
// (DecodeFlat: "Tags.0.TagKey"). A struct's field names are the wire's
// parameter names, exact and case-sensitive; supported kinds: string,
// uint64, int64, bool, pointers to them, slices and structs. A field
// tagged wire:"required" must be given (CheckRequired). Errors are
// *DecodeError, whose Kind the dialect maps to its own code.

// DecodeKind is why a decoder refused a request.
type DecodeKind int

const (
	// Malformed: not valid JSON, a value of the wrong type, a parameter
	// given twice, a list with gaps.
	Malformed DecodeKind = iota
	// UnknownParameter: a name the request struct does not have.
	UnknownParameter
	// TooLong: a list longer than MaxListLen.
	TooLong
	// MissingParameter: a required parameter is absent.
	MissingParameter
	// Unsupported: the request struct has a field of a kind the decoder
	// does not handle (a programming error).
	Unsupported
)

// DecodeError is a decoder's refusal; Msg names the parameter.
type DecodeError struct {
	Kind DecodeKind
	Msg  string
}

// Error returns the message, which names the parameter.
func (e *DecodeError) Error() string { return e.Msg }

func decodeErr(kind DecodeKind, format string, args ...any) error {
	return &DecodeError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// MaxListLen bounds a list parameter (Tencent's largest lists hold 200).
const MaxListLen = 200

// Request structs name their fields exactly as Tencent's wire does; a
// field's name is its parameter name, case-sensitive. Supported kinds:
// string, uint64, int64, bool, pointers to them, slices and structs.

// fieldIndex finds the field of struct type t whose parameter name is name.
func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && f.Name == name {
			return i, true
		}
	}
	return 0, false
}

// DecodeJSON decodes a JSON request body into v strictly: parameter names are
// exact and known (UnknownParameter), none repeats, types match (a number is
// a JSON number: Malformed), and nothing follows the object.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := checkNames(dec, reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return decodeErr(Malformed, "the body holds data after the JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return decodeErr(Malformed, "%s: expected %s", provider.Clip(te.Field, 64), kindName(te.Type))
		}
		return decodeErr(Malformed, "the body is not valid JSON")
	}
	return nil
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Uint64, reflect.Uint:
		return "a non-negative integer"
	case reflect.Int64, reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return t.Kind().String()
}

// checkNames walks one JSON value with the decoder's tokens against type t.
func checkNames(dec *json.Decoder, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return decodeErr(Malformed, "the body is not valid JSON")
	}
	d, isDelim := tok.(json.Delim)
	switch {
	case t.Kind() == reflect.Struct && isDelim && d == '{':
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return decodeErr(Malformed, "the body is not valid JSON")
			}
			name, _ := kt.(string)
			i, ok := fieldIndex(t, name)
			if !ok {
				return decodeErr(UnknownParameter, "unknown parameter %s%s", path, provider.Clip(name, 64))
			}
			if seen[name] {
				return decodeErr(Malformed, "the parameter %s%s appears more than once", path, name)
			}
			seen[name] = true
			if err := checkNames(dec, t.Field(i).Type, path+name+"."); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
	case t.Kind() == reflect.Slice && isDelim && d == '[':
		n := 0
		for dec.More() {
			if n++; n > MaxListLen {
				return decodeErr(TooLong, "%s: at most %d elements", strings.TrimSuffix(path, "."), MaxListLen)
			}
			if err := checkNames(dec, t.Elem(), path+strconv.Itoa(n-1)+"."); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
	case t.Kind() == reflect.Struct && path == "":
		return decodeErr(Malformed, "the body must be a JSON object")
	case isDelim && (d == '{' || d == '['):
		// A type mismatch: json.Unmarshal reports it; skip the value.
		for depth := 1; depth > 0 && err == nil; {
			tok, err = dec.Token()
			if d, ok := tok.(json.Delim); ok {
				if d == '{' || d == '[' {
					depth++
				} else {
					depth--
				}
			}
		}
	}
	if err != nil {
		return decodeErr(Malformed, "the body is not valid JSON")
	}
	return nil
}

// DecodeFlat decodes flattened parameters (GET query, v1 form: "Tags.0.TagKey")
// into v strictly: known, exact names (UnknownParameter), numbers in
// decimal, booleans as true/false, list indexes 0..n-1 without gaps.
func DecodeFlat(params map[string]string, v any) error {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lists := map[string]map[int]bool{}
	root := reflect.ValueOf(v).Elem()
	for _, k := range keys {
		if err := setFlat(root, strings.Split(k, "."), params[k], k, 0, lists); err != nil {
			return err
		}
	}
	for prefix, idx := range lists {
		for i := range len(idx) {
			if !idx[i] {
				return decodeErr(Malformed, "%s: list elements must be numbered from 0 without gaps", provider.Clip(prefix, 64))
			}
		}
	}
	return nil
}

func setFlat(v reflect.Value, segs []string, val, full string, depth int, lists map[string]map[int]bool) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return setFlat(v.Elem(), segs, val, full, depth, lists)
	case reflect.Struct:
		if depth == len(segs) {
			return decodeErr(Malformed, "%s is an object: send its fields as %s.<Name>", provider.Clip(full, 64), provider.Clip(full, 64))
		}
		i, ok := fieldIndex(v.Type(), segs[depth])
		if !ok {
			return decodeErr(UnknownParameter, "unknown parameter %s", provider.Clip(full, 64))
		}
		return setFlat(v.Field(i), segs, val, full, depth+1, lists)
	case reflect.Slice:
		if depth == len(segs) {
			return decodeErr(Malformed, "%s is a list: send its elements as %s.0, %s.1, ...", provider.Clip(full, 64), provider.Clip(full, 64), provider.Clip(full, 64))
		}
		s := segs[depth]
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 || strconv.Itoa(i) != s {
			return decodeErr(UnknownParameter, "unknown parameter %s", provider.Clip(full, 64))
		}
		if i >= MaxListLen {
			return decodeErr(TooLong, "%s: at most %d elements", provider.Clip(strings.Join(segs[:depth], "."), 64), MaxListLen)
		}
		if v.Len() <= i {
			v.Set(reflect.AppendSlice(v, reflect.MakeSlice(v.Type(), i+1-v.Len(), i+1-v.Len())))
		}
		prefix := strings.Join(segs[:depth], ".")
		if lists[prefix] == nil {
			lists[prefix] = map[int]bool{}
		}
		lists[prefix][i] = true
		return setFlat(v.Index(i), segs, val, full, depth+1, lists)
	}
	if depth != len(segs) {
		return decodeErr(UnknownParameter, "unknown parameter %s", provider.Clip(full, 64))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(val)
	case reflect.Uint64:
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return decodeErr(Malformed, "%s: expected a non-negative integer", provider.Clip(full, 64))
		}
		v.SetUint(n)
	case reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return decodeErr(Malformed, "%s: expected an integer", provider.Clip(full, 64))
		}
		v.SetInt(n)
	case reflect.Bool:
		switch val {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return decodeErr(Malformed, "%s: expected true or false", provider.Clip(full, 64))
		}
	default:
		return decodeErr(Unsupported, "unsupported parameter type")
	}
	return nil
}

// CheckRequired refuses a request whose fields tagged wire:"required" are
// absent (an empty string or list, a nil number): MissingParameter naming
// the first, in field order.
func CheckRequired(v any) error {
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f := s.Type().Field(i)
		if f.Tag.Get("wire") != "required" {
			continue
		}
		if fv := s.Field(i); (fv.Kind() == reflect.Pointer && fv.IsNil()) || (fv.Kind() != reflect.Pointer && fv.Len() == 0) {
			return decodeErr(MissingParameter, "the parameter %s is required", f.Name)
		}
	}
	return nil
}
