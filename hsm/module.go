package hsm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// Module lists the PKCS#11 functions p11kms calls, nothing more. *pkcs11.Ctx
// implements it; a test or an instrumentation layer may wrap it (forwarding
// to the real module) through [Config].Wrap.
type Module interface {
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	GetInfo() (pkcs11.Info, error)
	GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error)
	InitToken(slotID uint, pin string, label string) error
	InitPIN(sh pkcs11.SessionHandle, pin string) error
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	Logout(sh pkcs11.SessionHandle) error
	GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error)
	GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)
	CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error
	EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Decrypt(sh pkcs11.SessionHandle, cypher []byte) ([]byte, error)
	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Verify(sh pkcs11.SessionHandle, data []byte, signature []byte) error
	UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DeriveKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, basekey pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
}

var _ Module = (*pkcs11.Ctx)(nil)

// Library is one loaded and initialised PKCS#11 module, shared by every
// token of that module in the process. Each [LoadLibrary] or [Open] takes a
// reference; the module is finalised and unloaded when the last is released.
type Library struct {
	path        string
	ctx         *pkcs11.Ctx
	refs        int  // guarded by libraries.mu
	initialized bool // we called C_Initialize successfully (so we finalise)
}

var libraries = struct {
	mu sync.Mutex
	m  map[string]*Library
}{m: map[string]*Library{}}

// LoadLibrary loads and initialises the PKCS#11 module at path, or takes
// another reference to it if this process already has it loaded. It
// tolerates a module that another component initialised
// (CKR_CRYPTOKI_ALREADY_INITIALIZED); such a module is not finalised by us.
// Release the reference with [Library.Close].
func LoadLibrary(path string) (*Library, error) {
	if path == "" {
		return nil, errors.New("hsm: module path is empty: set a PKCS#11 module path (e.g. /usr/lib/softhsm/libsofthsm2.so)")
	}
	libraries.mu.Lock()
	defer libraries.mu.Unlock()
	if l, ok := libraries.m[path]; ok {
		l.refs++
		return l, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("hsm: cannot load PKCS#11 module %q (missing file or not a PKCS#11 library)", path)
	}
	l := &Library{path: path, ctx: ctx, refs: 1, initialized: true}
	if err := ctx.Initialize(); err != nil {
		if !IsCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			ctx.Destroy()
			return nil, ckr("C_Initialize", err)
		}
		l.initialized = false
	}
	libraries.m[path] = l
	return l, nil
}

// Path returns the module's file path.
func (l *Library) Path() string { return l.path }

// Close releases one reference; the last one finalises and unloads the module.
func (l *Library) Close() error {
	libraries.mu.Lock()
	defer libraries.mu.Unlock()
	if l.refs <= 0 {
		return nil
	}
	l.refs--
	if l.refs > 0 {
		return nil
	}
	delete(libraries.m, l.path)
	var err error
	if l.initialized {
		err = ckr("C_Finalize", l.ctx.Finalize())
	}
	l.ctx.Destroy()
	return err
}

// Info returns the module's manufacturer, description and versions.
func (l *Library) Info() (pkcs11.Info, error) {
	info, err := l.ctx.GetInfo()
	return info, ckr("C_GetInfo", err)
}

// Slot describes a slot that holds a token.
type Slot struct {
	ID    uint
	Token pkcs11.TokenInfo
}

// Slots lists the slots that have a token present, initialised or not.
func (l *Library) Slots() ([]Slot, error) {
	ids, err := l.ctx.GetSlotList(true)
	if err != nil {
		return nil, ckr("C_GetSlotList", err)
	}
	out := make([]Slot, 0, len(ids))
	for _, id := range ids {
		ti, err := l.ctx.GetTokenInfo(id)
		if err != nil {
			return nil, ckr("C_GetTokenInfo", err)
		}
		out = append(out, Slot{ID: id, Token: ti})
	}
	return out, nil
}

// InitToken initialises the first uninitialised token of the module with
// label, sets its SO PIN, logs in as SO and sets the user PIN. It returns
// the slot ID. It fails with ErrExists if an initialised token already has
// that label, and when the module has no free slot.
func (l *Library) InitToken(label, soPIN, userPIN string) (uint, error) {
	if label == "" || len(label) > 32 {
		return 0, fmt.Errorf("hsm: token label %q: must be 1 to 32 characters", label)
	}
	if soPIN == "" || userPIN == "" {
		return 0, errors.New("hsm: InitToken: SO PIN and user PIN must not be empty")
	}
	slots, err := l.Slots()
	if err != nil {
		return 0, err
	}
	free := -1
	for i, s := range slots {
		if s.Token.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			if trimLabel(s.Token.Label) == label {
				return 0, fmt.Errorf("%w: a token labelled %q exists in slot %d", ErrExists, label, s.ID)
			}
			continue
		}
		if free < 0 {
			free = i
		}
	}
	if free < 0 {
		return 0, errors.New("hsm: InitToken: the module has no uninitialised token slot")
	}
	slot := slots[free].ID
	if err := l.ctx.InitToken(slot, soPIN, label); err != nil {
		return 0, ckr("C_InitToken", err)
	}
	sh, err := l.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, ckr("C_OpenSession", err)
	}
	defer l.ctx.CloseSession(sh)
	if err := l.ctx.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return 0, ckr("C_Login(SO)", err)
	}
	defer l.ctx.Logout(sh)
	if err := l.ctx.InitPIN(sh, userPIN); err != nil {
		return 0, ckr("C_InitPIN", err)
	}
	// The slot ID of a freshly initialised SoftHSM token changes: find it by label.
	slots, err = l.Slots()
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		if s.Token.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 && trimLabel(s.Token.Label) == label {
			return s.ID, nil
		}
	}
	return slot, nil
}

func trimLabel(s string) string {
	// Token labels are blank-padded to 32 characters.
	end := len(s)
	for end > 0 && (s[end-1] == ' ' || s[end-1] == 0) {
		end--
	}
	return s[:end]
}
