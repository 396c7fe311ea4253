package hsm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

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

// readData reads every generation of app (and label, if given). An object
// that cannot be read right now — destroyed by a concurrent replace, or
// findable before SoftHSM has set its value — makes the read start over;
// if some stay unreadable, their number is returned so callers can be
// conservative (a writer counts them as rivals; a reader that found nothing
// else reports a conflict, never "not found").
func (t *Token) readData(ctx context.Context, app, label string) ([]*DataObject, int, error) {
	for attempt := 0; ; attempt++ {
		objs, unreadable, err := t.readDataOnce(ctx, app, label)
		if err != nil || unreadable == 0 || attempt == 20 {
			return objs, unreadable, err
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
}

func (t *Token) readDataOnce(ctx context.Context, app, label string) ([]*DataObject, int, error) {
	unreadable := 0
	objs, err := Do(ctx, t, func(s *Session) ([]*DataObject, error) {
		unreadable = 0
		hs, err := s.find(dataTemplate(app, label))
		if err != nil {
			return nil, err
		}
		out := make([]*DataObject, 0, len(hs))
		for _, h := range hs {
			a, err := t.api.GetAttributeValue(s.handle, h, []*pkcs11.Attribute{
				attr(pkcs11.CKA_LABEL, nil), attr(pkcs11.CKA_VALUE, nil)})
			if err != nil {
				if sessionBroken(err) {
					return nil, ckr("C_GetAttributeValue", err)
				}
				// SoftHSM answers CKR_OBJECT_HANDLE_INVALID, CKR_GENERAL_ERROR
				// or CKR_ATTRIBUTE_VALUE_INVALID for an object another
				// session is destroying or creating.
				unreadable++
				continue
			}
			gen, nonce, value, err := decodeData(a[1].Value)
			if err != nil {
				unreadable++ // being created (value not yet set), or not ours
				continue
			}
			out = append(out, &DataObject{Handle: h, Application: app, Label: string(a[0].Value),
				Value: value, Generation: gen, nonce: nonce})
		}
		return out, nil
	})
	return objs, unreadable, err
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
	return t.findData(ctx, app, label, false)
}

// findData is FindData; locked says the caller holds the object lock.
func (t *Token) findData(ctx context.Context, app, label string, locked bool) (*DataObject, error) {
	if app == "" || label == "" {
		return nil, errors.New("hsm: FindData: application and label must not be empty")
	}
	objs, unreadable, err := t.readData(ctx, app, label)
	if err == nil && len(objs) == 0 && unreadable == 0 {
		// Confirm "not found" with this process's view brought up to date
		// and no writer of this host mid-write (see lockObjects), a few
		// times: SoftHSM2 re-reads an object file whose generation moved
		// by first emptying the object's attributes, and a search by
		// another thread at that moment does not match it.
		retry := 1 // a caller holding the lock has read under it already
		if !locked {
			t.lockObjects()
			defer t.unlockObjects()
			retry = 0
		}
		for ; err == nil && len(objs) == 0 && unreadable == 0 && retry < 3; retry++ {
			time.Sleep(time.Duration(retry) * 300 * time.Microsecond)
			objs, unreadable, err = t.readData(ctx, app, label)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		if unreadable > 0 {
			return nil, fmt.Errorf("%w: data object %s/%s is being written", ErrConflict, app, label)
		}
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
	objs, _, err := t.readData(ctx, app, "")
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
	return t.writeData(ctx, app, label, nil, value, true)
}

// CreateFreshData is CreateData for a label the caller has just drawn at
// random (a new UUID), which no other writer can be creating: it skips the
// search CreateData makes before creating (linear in the token's objects)
// and keeps the check after.
func (t *Token) CreateFreshData(ctx context.Context, app, label string, value []byte) (*DataObject, error) {
	return t.writeData(ctx, app, label, nil, value, false)
}

// ReplaceData replaces old (as read by FindData or ListData) with value: it
// creates generation old.Generation+1, then destroys the older ones. If
// another writer replaced old first it fails with ErrConflict and leaves the
// other writer's object in place: re-read and retry.
func (t *Token) ReplaceData(ctx context.Context, old *DataObject, value []byte) (*DataObject, error) {
	if old == nil {
		return nil, errors.New("hsm: ReplaceData: old object is nil")
	}
	return t.writeData(ctx, old.Application, old.Label, old, value, true)
}

// UpdateData reads the newest generation of app/label, calls change with
// it and writes what change returns as the next generation, all while
// holding the token's object lock: writers of this host cannot interleave,
// so none of them loses to another. A writer on another host sharing a
// network token can still win first: then UpdateData fails with
// ErrConflict and the caller calls it again. An error from change is
// returned as is and nothing is written. change must not keep cur.Value.
func (t *Token) UpdateData(ctx context.Context, app, label string, change func(cur *DataObject) ([]byte, error)) (*DataObject, error) {
	t.lockObjects()
	defer t.unlockObjects()
	cur, err := t.findData(ctx, app, label, true)
	if err != nil {
		return nil, err
	}
	value, err := change(cur)
	if err != nil {
		return nil, err
	}
	return t.writeDataLocked(ctx, app, label, cur, value, false) // cur was read under this lock
}

// writeData writes value as the generation after base (nil: creates
// app/label) under the object lock; see writeDataLocked.
func (t *Token) writeData(ctx context.Context, app, label string, base *DataObject, value []byte, precheck bool) (*DataObject, error) {
	// Writers of this host take turns (and see each other's objects, see
	// lockObjects); writers on other hosts sharing a network token are
	// ordered by the create-then-check protocol of writeDataLocked.
	t.lockObjects()
	defer t.unlockObjects()
	return t.writeDataLocked(ctx, app, label, base, value, precheck)
}

// writeDataLocked is writeData for a caller holding the object lock.
// precheck makes it check, before creating, that the write can win
// (checkWritable); a caller that has just read base under the same lock, or
// creates a label no one else can know, passes false.
func (t *Token) writeDataLocked(ctx context.Context, app, label string, base *DataObject, value []byte, precheck bool) (*DataObject, error) {
	if app == "" || label == "" {
		return nil, errors.New("hsm: data object: application and label must not be empty")
	}
	if len(value) > MaxDataValue {
		return nil, fmt.Errorf("hsm: data object value of %d bytes: at most %d", len(value), MaxDataValue)
	}
	// Writers of this host cannot interleave (the caller holds the object
	// lock): check before creating, so that a write that would lose is never
	// created — a reader would see it until the check after the creation
	// (for writers on other hosts) removes it.
	if precheck {
		if err := t.checkWritable(ctx, app, label, base); err != nil {
			return nil, err
		}
	}
	rnd, err := t.Random(ctx, 8)
	if err != nil {
		return nil, err
	}
	obj := &DataObject{Application: app, Label: label, Value: value, Generation: 1, nonce: binary.BigEndian.Uint64(rnd)}
	if base != nil {
		obj.Generation = base.Generation + 1
	}
	if err := t.createDataLocked(ctx, obj); err != nil {
		return nil, err
	}
	return t.settleWriteLocked(ctx, base, obj)
}

// createDataLocked creates obj (its generation and nonce set) in the
// token and sets its handle. SoftHSM 2.6.1 sometimes fails a creation that
// races a destroy in another session with CKR_GENERAL_ERROR or
// CKR_TEMPLATE_INCONSISTENT (and may still create it): it removes what was
// left and tries again, a bounded number of times. A failure wraps
// ErrNotWritten when nothing of obj is left behind.
func (t *Token) createDataLocked(ctx context.Context, obj *DataObject) error {
	app, label := obj.Application, obj.Label
	tmpl := append(dataTemplate(app, label),
		attr(pkcs11.CKA_TOKEN, true), attr(pkcs11.CKA_PRIVATE, true), attr(pkcs11.CKA_MODIFIABLE, false),
		attr(pkcs11.CKA_VALUE, encodeData(obj.Generation, obj.nonce, obj.Value)))
	for attempt := 1; ; attempt++ {
		var err error
		obj.Handle, err = t.createLocked(ctx, nil, t.excludingSearches(func(s *Session) (ObjectHandle, error) {
			h, err := t.api.CreateObject(s.handle, tmpl)
			return h, ckr("C_CreateObject(CKO_DATA)", err)
		}))
		if err == nil {
			return nil
		}
		clean := t.destroyOrphan(ctx, app, label, obj.nonce)
		transient := IsCode(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_TEMPLATE_INCONSISTENT)
		if !transient || attempt == 3 {
			if clean {
				return fmt.Errorf("%w (%w)", err, ErrNotWritten)
			}
			return err
		}
	}
}

// settleWriteLocked decides whether obj, just created as the generation
// after base (nil: a creation), won: the base must still exist (or, for a
// create, nothing else may), and no other object of this generation or
// newer may exist. A loser is destroyed (ErrExists or ErrConflict, with
// ErrNotWritten); a winner's older generations are removed.
func (t *Token) settleWriteLocked(ctx context.Context, base, obj *DataObject) (*DataObject, error) {
	app, label := obj.Application, obj.Label
	all, unreadable, err := t.readData(ctx, app, label)
	if err != nil {
		if t.destroyOrphan(ctx, app, label, obj.nonce) {
			return nil, fmt.Errorf("%w (%w)", err, ErrNotWritten)
		}
		return nil, err
	}
	baseSeen, rival := false, unreadable > 0 // an object we cannot read may be a rival
	if base != nil {
		// Another process's SoftHSM may still list an object this one has
		// destroyed: the base counts as current only if it reads by handle.
		if _, err := t.RereadData(ctx, base); err != nil {
			all = slices.DeleteFunc(all, func(o *DataObject) bool { return o.nonce == base.nonce && o.Generation == base.Generation })
		}
	}
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
		if err := t.destroySurely(context.WithoutCancel(ctx), obj.Handle); err != nil {
			return nil, err // may still be there: not ErrNotWritten
		}
		if base == nil {
			return nil, fmt.Errorf("%w: data object %s/%s (%w)", ErrExists, app, label, ErrNotWritten)
		}
		return nil, fmt.Errorf("%w: %s/%s (%w)", ErrConflict, app, label, ErrNotWritten)
	}
	for _, o := range all {
		if o.Generation < obj.Generation {
			_ = t.destroy(context.WithoutCancel(ctx), o.Handle)
		}
	}
	return obj, nil
}

// checkWritable reports whether a write of app/label on base (nil: a
// creation) can win: ErrExists if a creation finds an object, ErrConflict if
// base is no longer the newest generation. Both wrap ErrNotWritten.
func (t *Token) checkWritable(ctx context.Context, app, label string, base *DataObject) error {
	cur, unreadable, err := t.readData(ctx, app, label)
	if err != nil {
		return err
	}
	if base == nil {
		if len(cur) > 0 || unreadable > 0 {
			return fmt.Errorf("%w: data object %s/%s (%w)", ErrExists, app, label, ErrNotWritten)
		}
		return nil
	}
	if n := newest(cur); n == nil || n.nonce != base.nonce || n.Generation != base.Generation {
		return fmt.Errorf("%w: %s/%s (%w)", ErrConflict, app, label, ErrNotWritten)
	}
	return nil
}

// destroyOrphan removes the object a failed write may have created and
// reports whether it is sure none is left.
func (t *Token) destroyOrphan(ctx context.Context, app, label string, nonce uint64) bool {
	ctx = context.WithoutCancel(ctx)
	all, unreadable, err := t.readData(ctx, app, label)
	if err != nil || unreadable > 0 {
		return false
	}
	for _, o := range all {
		if o.nonce == nonce {
			if t.destroySurely(ctx, o.Handle) != nil {
				return false
			}
		}
	}
	return true
}

// DestroyData destroys every generation of the data object app/label.
func (t *Token) DestroyData(ctx context.Context, app, label string) error {
	t.lockObjects()
	defer t.unlockObjects()
	all, _, err := t.readData(ctx, app, label)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return fmt.Errorf("%w: data object %s/%s", ErrNotFound, app, label)
	}
	for _, o := range all {
		if err := t.destroy(ctx, o.Handle); err != nil && !IsCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			return err
		}
	}
	return nil
}

// destroySurely destroys h, retrying SoftHSM's transient failures under
// concurrent writes; an object already gone counts as destroyed. A losing
// writer must not leave its generation behind, or it would be applied twice.
// The caller holds the object lock.
func (t *Token) destroySurely(ctx context.Context, h ObjectHandle) error {
	var err error
	for attempt := 0; attempt < 6; attempt++ {
		err = t.destroy(ctx, h)
		if err == nil || IsCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
	return err
}

// RereadData reads obj again by its handle, without a search: the cheap way
// to refresh a cached object (C_FindObjects is linear in the token's object
// count). It fails with ErrNotFound when the handle no longer names that
// data object (destroyed, e.g. replaced by another process): search again
// with FindData then.
func (t *Token) RereadData(ctx context.Context, obj *DataObject) (*DataObject, error) {
	a, err := Do(ctx, t, func(s *Session) ([]*pkcs11.Attribute, error) {
		a, err := t.api.GetAttributeValue(s.handle, obj.Handle, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, nil), attr(pkcs11.CKA_APPLICATION, nil), attr(pkcs11.CKA_LABEL, nil), attr(pkcs11.CKA_VALUE, nil)})
		return a, ckr("C_GetAttributeValue", err)
	})
	if err != nil {
		if _, isCKR := CodeOf(err); isCKR && !sessionBroken(err) {
			return nil, fmt.Errorf("%w: data object %s/%s (handle gone: %v)", ErrNotFound, obj.Application, obj.Label, err)
		}
		return nil, err
	}
	class, _ := decodeULong(a[0].Value)
	if class != pkcs11.CKO_DATA || string(a[1].Value) != obj.Application || string(a[2].Value) != obj.Label {
		return nil, fmt.Errorf("%w: handle no longer names data object %s/%s", ErrNotFound, obj.Application, obj.Label)
	}
	gen, nonce, value, err := decodeData(a[3].Value)
	if err != nil {
		return nil, fmt.Errorf("%w: data object %s/%s unreadable", ErrNotFound, obj.Application, obj.Label)
	}
	return &DataObject{Handle: obj.Handle, Application: obj.Application, Label: obj.Label, Value: value, Generation: gen, nonce: nonce}, nil
}
