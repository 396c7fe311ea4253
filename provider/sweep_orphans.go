package provider

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
)

// versionClasses are the token object classes of CMK versions, with the
// names Sweep reports: an AES key, or the two halves of a key pair.
var versionClasses = []struct {
	class uint
	name  string
}{{pkcs11.CKO_SECRET_KEY, "secret key"}, {pkcs11.CKO_PRIVATE_KEY, "private key"}, {pkcs11.CKO_PUBLIC_KEY, "public key"}}

// parseVersionLabel splits a CMK version's label, p11kms/<KeyId>/<version
// UUID>, into its key and version; ok is false for any other label (the
// service keys p11kms/audit-hmac, p11kms/access-keys, ... are not versions).
func parseVersionLabel(label string) (ref string, ok bool) {
	rest, found := strings.CutPrefix(label, "p11kms/")
	keyID, ver, two := strings.Cut(rest, "/")
	if !found || !two || keyID == "" || strings.Contains(ver, "/") {
		return "", false
	}
	if id, err := uuid.Parse(ver); err != nil || id.String() != ver {
		return "", false
	}
	return rest, true
}

// parseWrappingLabel splits a BYOK wrapping key's label,
// p11kms-import/<KeyId>/<expiry in Unix seconds> (wrappingLabel).
func parseWrappingLabel(label string) (keyID string, expires time.Time, ok bool) {
	rest, found := strings.CutPrefix(label, "p11kms-import/")
	i := strings.LastIndexByte(rest, '/')
	if !found || i <= 0 {
		return "", time.Time{}, false
	}
	sec, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || strconv.FormatInt(sec, 10) != rest[i+1:] {
		return "", time.Time{}, false
	}
	return rest[:i], time.Unix(sec, 0), true
}

// namedVersionObjects is every version object the metadata names, as
// "<class name> <KeyId>/<KeyVersionId>": an AES key's secret key, an
// asymmetric key's private and public keys. An EXTERNAL key without
// material names none.
func namedVersionObjects(keys []*keyMeta) map[string]bool {
	named := map[string]bool{}
	for _, m := range keys {
		if m.KeyState == StatePendingImport {
			continue
		}
		classes := versionClasses[:1]
		if m.KeySpec != KeySpecAES256 {
			classes = versionClasses[1:]
		}
		for _, v := range m.Versions {
			for _, c := range classes {
				named[c.name+" "+m.KeyId+"/"+v.KeyVersionId] = true
			}
		}
	}
	return named
}

// sweepObject is one token object Sweep looks at.
type sweepObject struct {
	h         hsm.ObjectHandle
	class     string
	label     string
	repairNow bool
}

// repairOrphans finds the token objects no key's metadata names — version
// objects and key pairs left by a crash between creating them and writing
// the metadata, wrapping keys of keys that no longer exist — and destroys
// them once seen for the grace period (at once with repairNow; they are
// listed in Orphans meanwhile); it destroys expired wrapping keys at once,
// and reports metadata naming a version whose object is missing.
func (s *Service) repairOrphans(ctx context.Context, keys []*keyMeta, res *SweepResult, repairNow bool) error {
	named := namedVersionObjects(keys)
	exists := map[string]bool{}
	for _, m := range keys {
		exists[m.KeyId] = true
	}
	present, seen := map[string]bool{}, map[string]bool{}
	for _, c := range versionClasses {
		hs, err := s.tok.FindObjects(ctx, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, c.class), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
		if err != nil {
			return Internal("listing key versions", err)
		}
		for _, h := range hs {
			a, err := s.tok.Attributes(ctx, h, hsm.CKA_LABEL)
			if err != nil {
				continue // destroyed meanwhile
			}
			o := sweepObject{h: h, class: c.name, label: string(a[hsm.CKA_LABEL]), repairNow: repairNow}
			if ref, ok := parseVersionLabel(o.label); ok {
				present[c.name+" "+ref] = true
				if named[c.name+" "+ref] {
					continue
				}
				if err := s.sweepOrphan(ctx, o, "orphaned key version object", "no metadata names it", seen, res); err != nil {
					return err
				}
			} else if keyID, expires, ok := parseWrappingLabel(o.label); ok && c.class != pkcs11.CKO_SECRET_KEY {
				if err := s.sweepWrappingKey(ctx, o, keyID, expires, exists[keyID], seen, res); err != nil {
					return err
				}
			}
		}
	}
	s.forgetOrphans(seen)
	for ref := range named {
		if !present[ref] {
			res.Missing = append(res.Missing, "key version "+ref+" is named by metadata but its object is missing from the token")
		}
	}
	return nil
}

// sweepWrappingKey destroys an expired wrapping key half at once, and one
// whose key does not exist as an orphan.
func (s *Service) sweepWrappingKey(ctx context.Context, o sweepObject, keyID string, expires time.Time, keyExists bool, seen map[string]bool, res *SweepResult) error {
	switch {
	case !s.now().Before(expires):
		o.repairNow = true
		return s.sweepOrphan(ctx, o, "expired import wrapping key", "its import token expired at "+fmtTime(expires.UTC()), seen, res)
	case !keyExists:
		return s.sweepOrphan(ctx, o, "orphaned import wrapping key", "the key "+keyID+" does not exist", seen, res)
	}
	return nil
}

// sweepOrphan destroys o if it is due (orphanDue), else lists it in
// Orphans.
func (s *Service) sweepOrphan(ctx context.Context, o sweepObject, what, why string, seen map[string]bool, res *SweepResult) error {
	desc := what + " " + o.label + " (" + o.class + "; " + why + ")"
	if !s.orphanDue(o.class+" "+o.label, o.repairNow, seen) {
		res.Orphans = append(res.Orphans, desc+": destroyed by a sweep of this process "+s.graceText()+" after it was first seen, or by p11kms kms Sweep --RepairOrphans")
		return nil
	}
	if err := s.tok.DestroyObject(ctx, o.h); err != nil && !hsm.IsHandleInvalid(err) {
		return Internal("destroying an orphaned object", err)
	}
	res.Repaired = append(res.Repaired, "destroyed "+desc)
	return nil
}

// graceText is the orphan grace period, for messages.
func (s *Service) graceText() string {
	if s.opt.OrphanGrace != 0 {
		return s.opt.OrphanGrace.String()
	}
	return DefaultOrphanGrace.String()
}
