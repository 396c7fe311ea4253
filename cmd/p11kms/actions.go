package main

import (
	"context"
	"encoding/json"
	"errors"
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
	// PrintError, if set, prints an API error in the group's own shape
	// (default printAPIError) and returns the exit status marker.
	PrintError func(error) error
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
		printErr := a.PrintError
		if printErr == nil {
			printErr = printAPIError
		}
		cmd.RunE = func(cmd *cobra.Command, _ []string) error {
			for _, f := range fields {
				if f.required && !cmd.Flags().Changed(f.name) {
					return usageError{fmt.Errorf("%s: missing required parameter --%s", a.Name, f.name)}
				}
			}
			for _, f := range fields {
				if f.err != nil {
					return printErr(f.err)
				}
			}
			resp, err := a.Run(cmd.Context(), req)
			if err != nil {
				return printErr(err)
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
	accepts  string // the flag's help: what values it accepts
	required bool
	err      error // InvalidParameter for a value that could not be parsed
}

// bindFields adds one flag per exported field of the struct req points to
// (and of the structs it embeds).
func bindFields(cmd *cobra.Command, req any) []*boundField {
	v := reflect.ValueOf(req).Elem()
	t := v.Type()
	var out []*boundField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			out = append(out, bindFields(cmd, v.Field(i).Addr().Interface())...) // an embedded request: its flags
			continue
		}
		if !sf.IsExported() || sf.Tag.Get("cli") == "-" {
			continue
		}
		tags := sf.Tag.Get("cli")
		usage := sf.Tag.Get("help")
		bf := &boundField{name: sf.Name, accepts: usage, required: strings.Contains(tags, "required")}
		fv := &fieldValue{f: v.Field(i), file: strings.Contains(tags, "file"), bf: bf}
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
	f := v.f
	if f.IsValid() && f.Kind() == reflect.Pointer && !f.IsNil() {
		f = f.Elem()
	}
	if !f.IsValid() || f.IsZero() {
		return ""
	}
	return fmt.Sprint(f.Interface())
}

func (v *fieldValue) Type() string {
	t := v.f.Type()
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Map, reflect.Slice:
		return "json"
	}
	return t.Kind().String()
}

var contextType = reflect.TypeFor[wrap.EncryptionContext]()

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
	if err := v.parse(s); err != nil && v.bf.err == nil {
		v.bf.err = err
	}
	return nil
}

// parse sets the field from s. An optional (pointer) field given on the
// command line is set, even to its zero value: a given 0 is a value, not
// "absent". A value that does not parse is InvalidParameter naming the
// parameter and what it accepts.
func (v *fieldValue) parse(s string) error {
	if v.f.Type() == contextType {
		c, err := provider.ParseEncryptionContext(v.bf.name, s, provider.MaxEncryptionContextChars)
		if err == nil {
			v.f.Set(reflect.ValueOf(c))
		}
		return err
	}
	f := v.f
	if f.Kind() == reflect.Pointer {
		p := reflect.New(f.Type().Elem())
		if err := v.parseInto(p.Elem(), s); err != nil {
			return err
		}
		f.Set(p)
		return nil
	}
	return v.parseInto(f, s)
}

// parseInto sets f, a string, integer, bool or JSON-valued field, from s.
func (v *fieldValue) parseInto(f reflect.Value, s string) error {
	accepted := ""
	if v.bf.accepts != "" {
		accepted = "; accepted: " + v.bf.accepts
	}
	quoted := strconv.Quote(truncate(s, 40))
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) || err == nil && f.OverflowInt(n) {
			return provider.InvalidParam(v.bf.name, "%s is out of range%s", quoted, accepted)
		}
		if err != nil {
			return provider.InvalidParam(v.bf.name, "%s is not an integer%s", quoted, accepted)
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return provider.InvalidParam(v.bf.name, "%s: accepted true or false", quoted)
		}
		f.SetBool(b)
	case reflect.Map, reflect.Slice, reflect.Struct:
		p := reflect.New(f.Type())
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(p.Interface()); err != nil {
			return provider.InvalidParam(v.bf.name, "%s is not valid JSON for this parameter (%v)%s", quoted, err, accepted)
		}
		f.Set(p.Elem())
	default:
		return provider.InvalidParam(v.bf.name, "unsupported parameter type %s", f.Type())
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
