package aliyun

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/provider/wire"
	"github.com/p11kms/p11kms/wrap"
)

// APIVersion is the Alibaba Cloud KMS API version served.
const APIVersion = "2016-01-20"

// maxParamName bounds a parameter name quoted in an error.
const maxParamName = 64

// rawRequest is a request's parameters before authentication: the query
// string (what ACS3/ACS4 sign) and, for the legacy SDK, a form body
// (which RPC signs together with the query).
type rawRequest struct {
	Query map[string]string
	Form  map[string]string
	// All is Query and Form together; a name in both is refused.
	All map[string]string
}

// quoteName renders an untrusted parameter name for an error message.
func quoteName(s string) string {
	if len(s) > maxParamName {
		s = s[:maxParamName] + "..."
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return strconv.Quote(s)
}

// flatParams checks a parsed URL-encoded parameter list (where: "query
// string" or "body"): a list that did not parse, or a name given twice, is
// an InvalidParameter error.
func flatParams(where string, v url.Values, parseErr error) (map[string]string, error) {
	if parseErr != nil {
		return nil, provider.InvalidParam(where, "not a valid URL-encoded parameter list")
	}
	m := make(map[string]string, len(v))
	for k, vs := range v {
		if len(vs) != 1 {
			e := provider.NewError(provider.CodeInvalidParameter, "the parameter %s is given %d times", quoteName(k), len(vs))
			e.Param = k
			return nil, e
		}
		m[k] = vs[0]
	}
	return m, nil
}

// parseRaw reads the parameters of a request whose body has been read,
// from the pipeline's one parse of the query and the form. Only an empty
// body or a form body (application/x-www-form-urlencoded) is accepted.
func parseRaw(req *wire.Request, body []byte) (*rawRequest, error) {
	qv, perr := req.Query()
	q, err := flatParams("query string", qv, perr)
	if err != nil {
		return nil, err
	}
	rr := &rawRequest{Query: q, Form: map[string]string{}}
	if len(body) > 0 {
		if !req.IsForm() {
			return nil, provider.InvalidParam("Content-Type", "a request body must be application/x-www-form-urlencoded")
		}
		fv, perr := req.Form()
		if rr.Form, err = flatParams("body", fv, perr); err != nil {
			return nil, err
		}
	}
	if len(rr.Form) == 0 {
		rr.All = rr.Query // what the SDKs send: parameters in the query only
		return rr, nil
	}
	rr.All = make(map[string]string, len(rr.Query)+len(rr.Form))
	for k, v := range rr.Query {
		rr.All[k] = v
	}
	for k, v := range rr.Form {
		if _, dup := rr.All[k]; dup {
			e := provider.NewError(provider.CodeInvalidParameter, "the parameter %s is given in both the query and the body", quoteName(k))
			e.Param = k
			return nil, e
		}
		rr.All[k] = v
	}
	return rr, nil
}

// fieldKind is how a request struct field is decoded from its string.
type fieldKind int

const (
	kindString fieldKind = iota
	kindInt
	kindInt64       // int64: a Unix time
	kindOptionalInt // *int: nil when the parameter is absent or empty
	kindBool
	kindContext
)

type fieldSpec struct {
	index   int
	kind    fieldKind
	accepts string // the field's help text: what values it accepts
}

// actionSpec is what one action accepts: the provider request's fields,
// and the Alibaba parameters p11kms does not model, each with a check.
type actionSpec struct {
	action    wire.Action
	fields    map[string]fieldSpec
	tolerated map[string]func(name, v string) error
}

var contextType = reflect.TypeFor[wrap.EncryptionContext]()

// oneOf accepts the empty string or one of the values.
func oneOf(vals ...string) func(name, v string) error {
	return func(name, v string) error {
		for _, ok := range vals {
			if v == "" || v == ok {
				return nil
			}
		}
		return provider.InvalidParam(name, "p11kms accepts only %s", strings.Join(vals, " or "))
	}
}

// mustBeEmpty accepts only the empty string (a feature p11kms lacks).
func mustBeEmpty(why string) func(name, v string) error {
	return func(name, v string) error {
		if v != "" {
			return provider.InvalidParam(name, "not supported: %s", why)
		}
		return nil
	}
}

// jsonArray accepts the empty string or a JSON array (Tags).
func jsonArray(name, v string) error {
	if v == "" {
		return nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		return provider.InvalidParam(name, "must be a JSON array")
	}
	return nil
}

// emptyFilters accepts no filter ("" or "[]").
func emptyFilters(name, v string) error {
	if s := strings.TrimSpace(v); s == "" || s == "[]" {
		return nil
	}
	return provider.InvalidParam(name, "not supported: p11kms lists all keys")
}

// toleratedParams are Alibaba parameters the SDKs may send that the provider
// does not model: accepted and ignored when harmless, refused when ignoring
// them would change the meaning of the call.
var toleratedParams = map[string]map[string]func(name, v string) error{
	"CreateKey": {
		"ProtectionLevel": oneOf("HSM", "SOFTWARE"),
		"Tags":            jsonArray,
		"DKMSInstanceId":  mustBeEmpty("p11kms has no dedicated KMS instances"),
		"Policy":          mustBeEmpty("key policies are set per access key in p11kms"),
	},
	"ListKeys": {"Filters": emptyFilters},
	"ReEncrypt": {
		"SourceKeyId":               mustBeEmpty("only for asymmetric keys, which p11kms does not have"),
		"SourceKeyVersionId":        mustBeEmpty("only for asymmetric keys, which p11kms does not have"),
		"SourceEncryptionAlgorithm": mustBeEmpty("only for asymmetric keys, which p11kms does not have"),
	},
}

// actionSpecs is built once from wire.Actions.
var actionSpecs = buildSpecs()

func buildSpecs() map[string]*actionSpec {
	out := make(map[string]*actionSpec, len(wire.Actions))
	for name, a := range wire.Actions {
		a = withWireNames(a)
		t := reflect.TypeOf(a.New()).Elem()
		s := &actionSpec{action: a, fields: map[string]fieldSpec{}, tolerated: map[string]func(string, string) error{}}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Tag.Get("cli") == "-" {
				continue
			}
			var k fieldKind
			switch {
			case f.Type == contextType:
				k = kindContext
			case f.Type.Kind() == reflect.String:
				k = kindString
			case f.Type.Kind() == reflect.Int:
				k = kindInt
			case f.Type.Kind() == reflect.Int64:
				k = kindInt64
			case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Int:
				k = kindOptionalInt
			case f.Type.Kind() == reflect.Bool:
				k = kindBool
			default:
				panic(fmt.Sprintf("aliyun: %s.%s has type %s, which the wire decoder does not handle", t.Name(), f.Name, f.Type))
			}
			s.fields[wireName(name, f.Name)] = fieldSpec{index: i, kind: k, accepts: f.Tag.Get("help")}
		}
		for p, check := range toleratedParams[name] {
			s.tolerated[p] = check
		}
		out[name] = s
	}
	return out
}

// decodeParams fills the action's provider request from its parameters
// (protocol parameters already removed).
func decodeParams(s *actionSpec, params map[string]string) (any, error) {
	req := s.action.New()
	v := reflect.ValueOf(req).Elem()
	// Deterministic order: the first bad parameter by name is the one reported.
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		val := params[name]
		if check, ok := s.tolerated[name]; ok {
			if err := check(name, val); err != nil {
				return nil, err
			}
			continue
		}
		f, ok := s.fields[name]
		if !ok {
			e := provider.NewError(provider.CodeInvalidParameter, "%s does not take the parameter %s", s.action.Name, quoteName(name))
			e.Param = name
			return nil, e
		}
		fv := v.Field(f.index)
		switch f.kind {
		case kindString:
			if !utf8.ValidString(val) {
				return nil, provider.InvalidParam(name, "must be valid UTF-8")
			}
			fv.SetString(val)
		case kindInt, kindInt64, kindOptionalInt:
			if val == "" {
				continue
			}
			bits := 32
			if f.kind == kindInt64 {
				bits = 64
			}
			n, err := strconv.ParseInt(val, 10, bits)
			if err != nil {
				return nil, provider.InvalidParam(name, "must be a decimal integer; accepted: %s", f.accepts)
			}
			if f.kind == kindOptionalInt {
				fv.Set(reflect.New(fv.Type().Elem()))
				fv = fv.Elem()
			}
			fv.SetInt(n)
		case kindBool:
			switch strings.ToLower(val) {
			case "", "false":
				fv.SetBool(false)
			case "true":
				fv.SetBool(true)
			default:
				return nil, provider.InvalidParam(name, "must be true or false")
			}
		case kindContext:
			if val == "" {
				continue
			}
			ec, err := provider.ParseEncryptionContext(name, val, provider.MaxEncryptionContextChars)
			if err != nil {
				return nil, err
			}
			fv.Set(reflect.ValueOf(ec))
		}
	}
	return req, nil
}
