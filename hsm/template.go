package hsm

import (
	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// ObjectHandle is a PKCS#11 object handle, valid in every session of this
// process on the token that issued it.
type ObjectHandle = pkcs11.ObjectHandle

// template builds an attribute template: the given attributes first, then
// defaults only where the caller did not set the same attribute type.
func template(attrs []*pkcs11.Attribute, defaults ...*pkcs11.Attribute) []*pkcs11.Attribute {
	set := crypto11.NewAttributeSet()
	set.AddIfNotPresent(attrs)
	set.AddIfNotPresent(defaults)
	return set.ToSlice()
}

func attr(t uint, v any) *pkcs11.Attribute { return pkcs11.NewAttribute(t, v) }
