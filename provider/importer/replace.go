package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
	"github.com/p11kms/p11kms/provider"
)

// How a persistent import survives being killed (SIGKILL, power loss) at
// any point, on SoftHSM2 2.6.1, whose only atomic change to a token is the
// removal of an object file: creating an object writes its file several
// times, and changing one truncates and rewrites it in place (a kill in
// between leaves an empty file: the object is gone).
//
//  1. The key is made as a pending key: labelled KeyLabel, with the CKA_ID
//     pendingIDPrefix + its final ID. No lookup uses a pending key, so an
//     unverified key (token-unwrap path) or a replacement is never used
//     before it is settled. It is a token object from its first write that
//     holds a value (C_UnwrapKey or C_CreateObject into the token: SoftHSM
//     writes the value after the template), so no file ever holds key
//     material without the label.
//  2. The verified pending key is copied with its final ID and usage
//     (C_CopyObject of a token object: its first write is another pending
//     key). The label now has the old keys and the new one; the pending
//     key tells them apart.
//  3. The old keys are destroyed — the moment the import takes effect —
//     then the pending key.
//
// A kill leaves the label's keys in one of these states, and repairLabel
// settles every one the same way: if a key has the final ID of a pending
// key, the import had reached step 2 and is finished (the other keys are
// destroyed); otherwise it is undone (the pending keys are destroyed). A
// fresh import on a host path has nothing to replace and nothing to verify
// in the token: it creates the final key directly, whose file holds the
// value only once it holds everything.
//
// Every process that imports, deletes or repairs a label holds the label's
// host-wide lock (lockLabelOnHost), so a repair never meets an import in
// progress. A lookup that finds anything but one settled key waits for the
// lock and repairs: the label is never ambiguous to its users, and whatever
// a kill left is gone after the label's next use.

// pendingIDPrefix starts the CKA_ID of a pending key; the final ID follows.
var pendingIDPrefix = []byte("p11kms-import-pending:")

// pendingID is the CKA_ID of the pending key for the final ID id.
func pendingID(id []byte) []byte {
	return append(bytes.Clone(pendingIDPrefix), id...)
}

// labelled is an object that carries a label, with its class and CKA_ID.
type labelled struct {
	h     hsm.ObjectHandle
	class uint
	id    []byte
}

// pending reports whether o is the pending key of an import, and the final
// ID it will have.
func (o labelled) pending() (finalID []byte, ok bool) {
	if o.class != pkcs11.CKO_SECRET_KEY || !bytes.HasPrefix(o.id, pendingIDPrefix) {
		return nil, false
	}
	return o.id[len(pendingIDPrefix):], true
}

// settledKey returns the key of objs if objs is exactly one secret key and
// it is not pending: what a lookup may use without the label's lock.
func settledKey(objs []labelled) (hsm.ObjectHandle, bool) {
	if len(objs) != 1 || objs[0].class != pkcs11.CKO_SECRET_KEY {
		return 0, false
	}
	if _, ok := objs[0].pending(); ok {
		return 0, false
	}
	return objs[0].h, true
}

// repairLabel settles what an interrupted import left under label (see
// above) and returns the objects that remain. The caller holds the label's
// locks (in-process and host-wide).
func (s *Service) repairLabel(ctx context.Context, label string) ([]labelled, error) {
	objs, err := s.objectsLabelled(ctx, label)
	if err != nil {
		return nil, internal("checking the label", err)
	}
	finals := map[string]bool{}
	for _, o := range objs {
		if id, ok := o.pending(); ok {
			finals[string(id)] = true
		}
	}
	if len(finals) == 0 {
		return objs, nil
	}
	// The import finished step 2 if a key has a pending key's final ID; of
	// several (two interrupted imports cannot leave that, but a rule must
	// hold for anything), the lowest ID wins.
	var winner []byte
	for _, o := range objs {
		if _, pend := o.pending(); !pend && o.class == pkcs11.CKO_SECRET_KEY && finals[string(o.id)] &&
			(winner == nil || bytes.Compare(o.id, winner) < 0) {
			winner = o.id
		}
	}
	var kept []labelled
	for _, o := range objs {
		_, pend := o.pending()
		doomed := pend || (winner != nil && o.class == pkcs11.CKO_SECRET_KEY && !bytes.Equal(o.id, winner))
		if !doomed {
			kept = append(kept, o)
			continue
		}
		if err := s.tok.DestroyObject(ctx, o.h); err != nil && !isStale(err) {
			return nil, internal("settling an interrupted import", err)
		}
	}
	return kept, nil
}

// promote finishes a persistent import from its verified pending key p
// (steps 2 and 3 above) and returns the final key. If the first old key
// cannot be destroyed, the import is undone: nothing has taken effect, and
// no lookup used the new key meanwhile, since the label held more than one
// key, so lookups waited for the label's lock. If the new key cannot be
// destroyed either, p stays: without it the label would hold two keys
// nothing tells apart, with it the label's next repair finishes the import.
// Once an old key is gone, the import has taken effect and only goes
// forward: p stays as the mark that makes the label's next repair destroy
// the old keys that remain, and the import reports success, since the key
// it names is the new one from then on.
func (s *Service) promote(ctx context.Context, p hsm.ObjectHandle, opt hsm.SecretKeyOptions, old []hsm.ObjectHandle) (hsm.ObjectHandle, error) {
	bg := context.WithoutCancel(ctx)
	final, err := s.tok.CopyObject(ctx, p, finalTemplate(opt), identity(opt))
	if err != nil {
		s.destroyPending(bg, p)
		return 0, internal("storing the imported key", err)
	}
	for i, o := range old {
		err := s.tok.DestroyObject(ctx, o)
		if err == nil || isStale(err) {
			continue
		}
		if i > 0 {
			return final, nil // taken effect: p stays for the repair
		}
		if err := s.tok.DestroyObject(bg, final); err == nil || isStale(err) {
			s.destroyPending(bg, p)
		}
		return 0, internal("destroying the replaced key", err)
	}
	// The import has taken effect; a pending key left here is removed by
	// the label's next import, deletion or lookup.
	s.destroyPending(bg, p)
	return final, nil
}

// destroyPending destroys a pending key, trying twice more on a failure.
func (s *Service) destroyPending(ctx context.Context, p hsm.ObjectHandle) {
	for attempt := 1; attempt <= 3; attempt++ {
		err := s.tok.DestroyObject(ctx, p)
		if err == nil || isStale(err) || ctx.Err() != nil {
			return
		}
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
}

// labelLockBuckets is how many host-wide lock files a token's labels share
// (by a hash of the label): bounded files, few unrelated labels waiting on
// each other.
const labelLockBuckets = 64

// lockLabelOnHost takes the host-wide lock of label in this token and
// returns its release: an flock on a lock file in lockDir, so every process
// of this user on the host (and every Service of this one: each lock is its
// own open file) takes turns. It fails closed: an import or repair that
// cannot take the lock does not go ahead without it.
func (s *Service) lockLabelOnHost(label string) (unlock func(), err error) {
	dir, err := lockDir()
	if err != nil {
		return nil, lockFailed(err)
	}
	h := fnv.New32a()
	h.Write([]byte(label))
	sum := sha256.Sum256([]byte(s.tok.ModulePath() + "\x00" + s.tok.Serial()))
	name := fmt.Sprintf("labels-%s-%02d.lock", hex.EncodeToString(sum[:8]), h.Sum32()%labelLockBuckets)
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, lockFailed(err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err == nil {
			break
		}
		if err != syscall.EINTR {
			f.Close()
			return nil, lockFailed(err)
		}
	}
	return func() { f.Close() }, nil
}

// lockFailed is the InternalFailure of a host-wide lock that could not be
// taken. It names the cause, a setting of this host for its operator to
// fix (the lock directory), not a fault of the token.
func lockFailed(err error) error {
	e := provider.NewError(provider.CodeInternalFailure, "taking the label's host-wide lock: %v", err)
	e.Err = err
	return e
}

// lockDir returns the directory of the host-wide label locks,
// $TMPDIR/p11kms-<uid>, made if missing. It must be a real directory (not a
// symbolic link) that this user owns and no one else can write, so another
// user of the host can neither plant the lock files nor hold them.
func lockDir() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("p11kms-%d", os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a directory (a symbolic link or a file someone else made): remove it", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return "", fmt.Errorf("%s belongs to another user: remove it or set TMPDIR", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return "", fmt.Errorf("%s is writable by other users (mode %v): chmod 700 it", dir, fi.Mode().Perm())
	}
	return dir, nil
}

// lockLabel takes both locks of label, in-process then host-wide.
func (s *Service) lockLabel(label string) (unlock func(), err error) {
	release := s.labels.lock(label)
	unlockHost, err := s.lockLabelOnHost(label)
	if err != nil {
		release()
		return nil, err
	}
	return func() {
		unlockHost()
		release()
	}, nil
}

// secretKeys returns the secret keys among objs.
func secretKeys(objs []labelled) []labelled {
	return slices.DeleteFunc(slices.Clone(objs), func(o labelled) bool { return o.class != pkcs11.CKO_SECRET_KEY })
}
