package hsm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/miekg/pkcs11"
)

// DataObject is one version of a CKO_DATA object, identified by its
// CKA_APPLICATION and CKA_LABEL. Replacing it creates a newer generation
// and then destroys the older one, so at every instant at least one
// generation is findable and readers take the newest.
type DataObject struct {
	Handle      ObjectHandle
	Application string
	Label       string
	Value       []byte
	Generation  uint64 // 1 for a new object, +1 on each replacement
	nonce       uint64
}

// The stored CKA_VALUE is dataFormat ‖ generation(8) ‖ nonce(8) ‖ value.
const (
	dataFormat    = 0x01
	dataHeaderLen = 17
	// MaxDataValue bounds a data object's value.
	MaxDataValue = 1 << 20
)

func encodeData(gen, nonce uint64, value []byte) []byte {
	b := make([]byte, dataHeaderLen, dataHeaderLen+len(value))
	b[0] = dataFormat
	binary.BigEndian.PutUint64(b[1:], gen)
	binary.BigEndian.PutUint64(b[9:], nonce)
	return append(b, value...)
}

func decodeData(b []byte) (gen, nonce uint64, value []byte, err error) {
	if len(b) < dataHeaderLen || b[0] != dataFormat {
		return 0, 0, nil, errors.New("hsm: data object is not in p11kms format")
	}
	return binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint64(b[9:]), b[dataHeaderLen:], nil
}

func dataTemplate(app, label string) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, app)}
	if label != "" {
		t = append(t, attr(pkcs11.CKA_LABEL, label))
	}
	return t
}

// readData reads every generation of app (and label, if given). If an
// object vanishes between the search and the read (a concurrent replace
// destroyed it), the read starts over, so a reader never sees a moment with
// neither the old nor the new generation.
func (t *Token) readData(ctx context.Context, app, label string) ([]*DataObject, error) {
	for attempt := 0; ; attempt++ {
		objs, vanished, err := t.readDataOnce(ctx, app, label)
		if err != nil || !vanished || attempt == 8 {
			return objs, err
		}
	}
}

func (t *Token) readDataOnce(ctx context.Context, app, label string) ([]*DataObject, bool, error) {
	vanished := false
	objs, err := Do(ctx, t, func(s *Session) ([]*DataObject, error) {
		vanished = false
		hs, err := s.find(dataTemplate(app, label))
		if err != nil {
			return nil, err
		}
		out := make([]*DataObject, 0, len(hs))
		for _, h := range hs {
			a, err := t.api.GetAttributeValue(s.handle, h, []*pkcs11.Attribute{
				attr(pkcs11.CKA_LABEL, nil), attr(pkcs11.CKA_VALUE, nil)})
			if err != nil {
				// SoftHSM answers CKR_GENERAL_ERROR (or HANDLE_INVALID) for an
				// object another session destroyed meanwhile.
				if gone, ferr := s.gone(h, dataTemplate(app, label)); ferr == nil && gone {
					vanished = true
					continue
				}
				return nil, ckr("C_GetAttributeValue", err)
			}
			gen, nonce, value, err := decodeData(a[1].Value)
			if err != nil {
				continue // not ours: ignore rather than fail every listing
			}
			out = append(out, &DataObject{Handle: h, Application: app, Label: string(a[0].Value),
				Value: value, Generation: gen, nonce: nonce})
		}
		return out, nil
	})
	return objs, vanished, err
}

// newest picks the newest generation (ties: the lower nonce, deterministic
// across processes).
func newest(objs []*DataObject) *DataObject {
	var best *DataObject
	for _, o := range objs {
		if best == nil || o.Generation > best.Generation ||
			(o.Generation == best.Generation && o.nonce < best.nonce) {
			best = o
		}
	}
	return best
}

// FindData returns the newest generation of the data object app/label, or
// ErrNotFound.
func (t *Token) FindData(ctx context.Context, app, label string) (*DataObject, error) {
	if app == "" || label == "" {
		return nil, errors.New("hsm: FindData: application and label must not be empty")
	}
	objs, err := t.readData(ctx, app, label)
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%w: data object %s/%s", ErrNotFound, app, label)
	}
	return newest(objs), nil
}

// ListData returns the newest generation of every data object of app,
// sorted by label.
func (t *Token) ListData(ctx context.Context, app string) ([]*DataObject, error) {
	if app == "" {
		return nil, errors.New("hsm: ListData: application must not be empty")
	}
	objs, err := t.readData(ctx, app, "")
	if err != nil {
		return nil, err
	}
	byLabel := map[string][]*DataObject{}
	for _, o := range objs {
		byLabel[o.Label] = append(byLabel[o.Label], o)
	}
	out := make([]*DataObject, 0, len(byLabel))
	for _, group := range byLabel {
		out = append(out, newest(group))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}

// CreateData creates the data object app/label holding value. It fails with
// ErrExists if one exists (also when another process creates it at the same
// moment).
func (t *Token) CreateData(ctx context.Context, app, label string, value []byte) (*DataObject, error) {
	return t.writeData(ctx, app, label, nil, value)
}

// ReplaceData replaces old (as read by FindData or ListData) with value: it
// creates generation old.Generation+1, then destroys the older ones. If
// another writer replaced old first it fails with ErrConflict and leaves the
// other writer's object in place: re-read and retry.
func (t *Token) ReplaceData(ctx context.Context, old *DataObject, value []byte) (*DataObject, error) {
	if old == nil {
		return nil, errors.New("hsm: ReplaceData: old object is nil")
	}
	return t.writeData(ctx, old.Application, old.Label, old, value)
}

func (t *Token) writeData(ctx context.Context, app, label string, base *DataObject, value []byte) (*DataObject, error) {
	if app == "" || label == "" {
		return nil, errors.New("hsm: data object: application and label must not be empty")
	}
	if len(value) > MaxDataValue {
		return nil, fmt.Errorf("hsm: data object value of %d bytes: at most %d", len(value), MaxDataValue)
	}
	rnd, err := t.Random(ctx, 8)
	if err != nil {
		return nil, err
	}
	obj := &DataObject{Application: app, Label: label, Value: value, Generation: 1, nonce: binary.BigEndian.Uint64(rnd)}
	if base != nil {
		obj.Generation = base.Generation + 1
	}
	tmpl := append(dataTemplate(app, label),
		attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_PRIVATE, true), attr(pkcs11.CKA_MODIFIABLE, false),
		attr(pkcs11.CKA_VALUE, encodeData(obj.Generation, obj.nonce, value)))
	// SoftHSM 2.6.1 sometimes fails a creation that races a destroy in
	// another session with CKR_GENERAL_ERROR (and may still create it):
	// remove what it left and try again, a bounded number of times.
	for attempt := 1; ; attempt++ {
		obj.Handle, err = t.create(ctx, nil, func(s *Session) (ObjectHandle, error) {
			h, err := t.api.CreateObject(s.handle, tmpl)
			return h, ckr("C_CreateObject(CKO_DATA)", err)
		})
		if err == nil {
			break
		}
		t.destroyOrphan(ctx, app, label, obj.nonce)
		if !IsCode(err, pkcs11.CKR_GENERAL_ERROR) || attempt == 3 {
			return nil, err
		}
	}
	// Decide whether this write won: the base must still exist (or, for a
	// create, nothing else may), and no other object of this generation or
	// newer may exist.
	all, err := t.readData(ctx, app, label)
	if err != nil {
		t.destroyOrphan(ctx, app, label, obj.nonce)
		return nil, err
	}
	baseSeen, rival := false, false
	for _, o := range all {
		switch {
		case o.nonce == obj.nonce && o.Generation == obj.Generation:
		case base != nil && o.nonce == base.nonce && o.Generation == base.Generation:
			baseSeen = true
		case o.Generation >= obj.Generation || base == nil:
			rival = true
		}
	}
	if rival || (base != nil && !baseSeen) {
		_ = t.DestroyObject(context.WithoutCancel(ctx), obj.Handle)
		if base == nil {
			return nil, fmt.Errorf("%w: data object %s/%s", ErrExists, app, label)
		}
		return nil, fmt.Errorf("%w: %s/%s", ErrConflict, app, label)
	}
	for _, o := range all {
		if o.Generation < obj.Generation {
			_ = t.DestroyObject(context.WithoutCancel(ctx), o.Handle)
		}
	}
	return obj, nil
}

// destroyOrphan removes the object a failed write may have created.
func (t *Token) destroyOrphan(ctx context.Context, app, label string, nonce uint64) {
	ctx = context.WithoutCancel(ctx)
	all, err := t.readData(ctx, app, label)
	if err != nil {
		return
	}
	for _, o := range all {
		if o.nonce == nonce {
			_ = t.DestroyObject(ctx, o.Handle)
		}
	}
}

// DestroyData destroys every generation of the data object app/label.
func (t *Token) DestroyData(ctx context.Context, app, label string) error {
	all, err := t.readData(ctx, app, label)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return fmt.Errorf("%w: data object %s/%s", ErrNotFound, app, label)
	}
	for _, o := range all {
		if err := t.DestroyObject(ctx, o.Handle); err != nil && !IsCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			return err
		}
	}
	return nil
}

// gone reports whether h no longer matches tmpl.
func (s *Session) gone(h ObjectHandle, tmpl []*pkcs11.Attribute) (bool, error) {
	hs, err := s.find(tmpl)
	if err != nil {
		return false, err
	}
	for _, x := range hs {
		if x == h {
			return false, nil
		}
	}
	return true, nil
}
