package wrap

import "strings"

// KeySpec names the kind of public key a data key is wrapped under, spelled
// as the cloud APIs spell WrappingKeySpec.
type KeySpec string

// The accepted key specs.
const (
	SpecRSA2048 KeySpec = "RSA_2048"
	SpecRSA3072 KeySpec = "RSA_3072"
	SpecRSA4096 KeySpec = "RSA_4096"
	SpecSM2     KeySpec = "EC_SM2"
)

// keySpecs is the closed list of specs, in the order error messages list them.
var keySpecs = [...]KeySpec{SpecRSA2048, SpecRSA3072, SpecRSA4096, SpecSM2}

// KeySpecs returns every accepted key spec.
func KeySpecs() []KeySpec { return append([]KeySpec(nil), keySpecs[:]...) }

// ParseKeySpec checks that s is one of the accepted key specs (exact
// spelling). An unknown spec gives a *ParamError for FieldKeySpec
// listing the valid ones.
func ParseKeySpec(s string) (KeySpec, error) {
	for _, k := range keySpecs {
		if string(k) == s {
			return k, nil
		}
	}
	return "", paramErr(FieldKeySpec, "unknown key spec %q; valid: %s", s, keySpecList())
}

// IsRSA reports whether k is one of the RSA specs.
func (k KeySpec) IsRSA() bool { return k.RSABits() != 0 }

// RSABits returns the modulus size of an RSA spec, or 0 for other specs.
func (k KeySpec) RSABits() int {
	switch k {
	case SpecRSA2048:
		return 2048
	case SpecRSA3072:
		return 3072
	case SpecRSA4096:
		return 4096
	}
	return 0
}

// valid reports whether k is one of the accepted specs.
func (k KeySpec) valid() bool {
	_, err := ParseKeySpec(string(k))
	return err == nil
}

func keySpecList() string {
	names := make([]string, len(keySpecs))
	for i, k := range keySpecs {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
