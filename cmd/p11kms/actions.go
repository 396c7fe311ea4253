package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/p11kms/p11kms/provider"
	"github.com/p11kms/p11kms/wrap"
)

// action is one API operation exposed as `p11kms <group> <Action> --Param v`,
// in the grammar of the cloud CLIs: flags named exactly as the request
// struct's fields, map and list parameters as JSON, the response printed as
// the API's JSON on stdout, errors as {"Code","Message","RequestId"} on
// stderr (exit 1; 2 for usage errors).
type action struct {
	Name  string
	Short string
	// New returns a pointer to a zero request struct. Fields tagged
	// `cli:"file"` also accept @path to read the value from a file; fields
	// tagged `cli:"required"` must be given.
	New func() any
	// Run performs the operation with the filled request.
	Run func(ctx context.Context, req any) (any, error)
}

// actionCommands turns actions into cobra commands.
func actionCommands(actions []action) []*cobra.Command {
	var cmds []*cobra.Command
	for _, a := range actions {
		a := a
		req := a.New()
		cmd := &cobra.Command{
			Use:   a.Name,
			Short: a.Short,
			Args:  noArgs,
		}
		fields := bindFields(cmd, req)
		cmd.RunE = func(cmd *cobra.Command, _ []string) error {
			for _, f := range fields {
				if f.required && !cmd.Flags().Changed(f.name) {
					return usageError{fmt.Errorf("%s: missing required parameter --%s", a.Name, f.name)}
				}
			}
			for _, f := range fields {
				if f.err != nil {
					return printAPIError(provider.InvalidParam(f.name, "%v", f.err))
				}
			}
			resp, err := a.Run(cmd.Context(), req)
			if err != nil {
				return printAPIError(err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false)
			return enc.Encode(resp)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// printAPIError prints err as the API's error JSON on stderr and returns
// an exit status 1 marker.
func printAPIError(err error) error {
	e := provider.AsError(err)
	out := struct {
		Code      string
		Message   string
		RequestId string
	}{e.Code, e.Message, uuid.NewString()}
	b, _ := json.Marshal(out)
	fmt.Fprintln(os.Stderr, string(b))
	return exitError{1}
}

type boundField struct {
	name     string
	required bool
	err      error // a value that could not be parsed, reported as InvalidParameter
}

// bindFields adds one flag per exported field of the struct req points to.
func bindFields(cmd *cobra.Command, req any) []*boundField {
	v := reflect.ValueOf(req).Elem()
	t := v.Type()
	var out []*boundField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Tag.Get("cli") == "-" {
			continue
		}
		tags := sf.Tag.Get("cli")
		bf := &boundField{name: sf.Name, required: strings.Contains(tags, "required")}
		fv := &fieldValue{f: v.Field(i), file: strings.Contains(tags, "file"), bf: bf}
		usage := sf.Tag.Get("help")
		if fv.file {
			usage += " (or @file)"
		}
		cmd.Flags().Var(fv, sf.Name, usage)
		if sf.Type.Kind() == reflect.Bool {
			cmd.Flags().Lookup(sf.Name).NoOptDefVal = "true"
		}
		out = append(out, bf)
	}
	return out
}

// fieldValue is a pflag.Value that sets one struct field from a string.
type fieldValue struct {
	f    reflect.Value
	file bool
	bf   *boundField
}

func (v *fieldValue) String() string {
	if !v.f.IsValid() || v.f.IsZero() {
		return ""
	}
	return fmt.Sprint(v.f.Interface())
}

func (v *fieldValue) Type() string {
	switch v.f.Kind() {
	case reflect.Map, reflect.Slice:
		return "json"
	}
	return v.f.Kind().String()
}

// Set parses s into the field. A parse error becomes an InvalidParameter
// error of the API (reported when the command runs), not a usage error.
func (v *fieldValue) Set(s string) error {
	if v.file && strings.HasPrefix(s, "@") {
		b, err := os.ReadFile(s[1:])
		if err != nil {
			return err // a missing file is a usage error
		}
		s = strings.TrimRight(string(b), "\r\n")
	}
	var err error
	if v.f.Type() == reflect.TypeOf(wrap.EncryptionContext(nil)) {
		var c wrap.EncryptionContext
		if c, err = wrap.ParseEncryptionContextJSON(s, provider.MaxEncryptionContextChars); err == nil {
			v.f.Set(reflect.ValueOf(c))
		} else {
			v.bf.err = err
		}
		return nil
	}
	switch v.f.Kind() {
	case reflect.String:
		v.f.SetString(s)
	case reflect.Int, reflect.Int32, reflect.Int64:
		var n int64
		if n, err = strconv.ParseInt(s, 10, 64); err == nil {
			v.f.SetInt(n)
		}
	case reflect.Bool:
		var b bool
		if b, err = strconv.ParseBool(s); err == nil {
			v.f.SetBool(b)
		}
	case reflect.Map, reflect.Slice, reflect.Struct:
		p := reflect.New(v.f.Type())
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err = dec.Decode(p.Interface()); err == nil {
			v.f.Set(p.Elem())
		}
	default:
		err = fmt.Errorf("unsupported parameter type %s", v.f.Type())
	}
	if err != nil {
		v.bf.err = fmt.Errorf("cannot parse %q as %s: %v", truncate(s, 40), v.Type(), err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
