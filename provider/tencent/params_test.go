package tencent

import (
	"reflect"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	ok := []struct {
		body string
		want createKeyRequest
	}{
		{``, createKeyRequest{}},
		{`{}`, createKeyRequest{}},
		{`{"Alias":"a","Type":1,"Tags":[{"TagKey":"k","TagValue":"v"}],"Description":null}`,
			createKeyRequest{Alias: "a", Type: ptr(uint64(1)), Tags: []tagParam{{"k", "v"}}}},
	}
	for _, tc := range ok {
		var got createKeyRequest
		if err := decodeJSON([]byte(tc.body), &got); err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v %v", tc.body, got, err)
		}
	}
	bad := map[string]string{
		`{"alias":"a"}`:                       CodeUnknownParameter,
		`{"Alias":"a","Extra":1}`:             CodeUnknownParameter,
		`{"Tags":[{"TagKey":"k","Other":1}]}`: CodeUnknownParameter,
		`{"Alias":"a","Alias":"b"}`:           CodeInvalidParameter,
		`{"Type":"1"}`:                        CodeInvalidParameter,
		`{"Type":-1}`:                         CodeInvalidParameter,
		`{"Type":1.5}`:                        CodeInvalidParameter,
		`{"Alias":1}`:                         CodeInvalidParameter,
		`{"Tags":{"TagKey":"k"}}`:             CodeInvalidParameter,
		`{"Alias":"a"} {}`:                    CodeInvalidParameter,
		`{"Alias":"a"`:                        CodeInvalidParameter,
		`[]`:                                  CodeInvalidParameter,
		`"x"`:                                 CodeInvalidParameter,
		`{"Alias":{"x":[1,{"y":2}]}}`:         CodeInvalidParameter,
		`{"Tags":[` + repeat(`{},`, 200) + `{}]}`: CodeInvalidParameterVal,
	}
	for body, code := range bad {
		var got createKeyRequest
		if err := decodeJSON([]byte(body), &got); codeOf(err) != code {
			t.Errorf("%.60s: %v, want %s", body, err, code)
		}
	}
}

func TestDecodeFlat(t *testing.T) {
	var got createKeyRequest
	err := decodeFlat(map[string]string{"Alias": "a", "Type": "1", "Tags.0.TagKey": "k", "Tags.1.TagKey": "k2", "Tags.1.TagValue": "v"}, &got)
	want := createKeyRequest{Alias: "a", Type: ptr(uint64(1)), Tags: []tagParam{{"k", ""}, {"k2", "v"}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v %v", got, err)
	}
	var ids keyIDsRequest
	if err := decodeFlat(map[string]string{"KeyIds.0": "a", "KeyIds.1": "b"}, &ids); err != nil || len(ids.KeyIds) != 2 {
		t.Fatalf("%+v %v", ids, err)
	}
	bad := []struct {
		params map[string]string
		code   string
	}{
		{map[string]string{"alias": "a"}, CodeUnknownParameter},
		{map[string]string{"Alias.0": "a"}, CodeUnknownParameter},
		{map[string]string{"Type": "x"}, CodeInvalidParameter},
		{map[string]string{"Type": "-1"}, CodeInvalidParameter},
		{map[string]string{"Tags": "x"}, CodeInvalidParameter},
		{map[string]string{"Tags.0": "x"}, CodeInvalidParameter},
		{map[string]string{"Tags.1.TagKey": "k"}, CodeInvalidParameter},
		{map[string]string{"Tags.01.TagKey": "k"}, CodeUnknownParameter},
		{map[string]string{"Tags.x.TagKey": "k"}, CodeUnknownParameter},
		{map[string]string{"Tags.0.TagKey.x": "k"}, CodeUnknownParameter},
		{map[string]string{"Tags.200.TagKey": "k"}, CodeInvalidParameterVal},
	}
	for _, tc := range bad {
		var got createKeyRequest
		if err := decodeFlat(tc.params, &got); codeOf(err) != tc.code {
			t.Errorf("%v: %v, want %s", tc.params, err, tc.code)
		}
	}
	var r rotationBool
	if err := decodeFlat(map[string]string{"On": "true"}, &r); err != nil || !r.On {
		t.Fatal(err)
	}
	if err := decodeFlat(map[string]string{"On": "1"}, &r); codeOf(err) != CodeInvalidParameter {
		t.Fatal(err)
	}
}

type rotationBool struct{ On bool }

func ptr[T any](v T) *T { return &v }

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}
