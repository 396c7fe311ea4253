// Package hsmtest injects faults into the real PKCS#11 module for tests:
// a Faults value wraps the module (through hsm.Config.Wrap), forwards every
// call to SoftHSM2, and at chosen calls returns a CKR code instead, or adds
// latency. Nothing is mocked: the calls that are not faulted run for real.
package hsmtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/p11kms/p11kms/hsm"
)

// Fault makes the Nth call (1-based, counted from when the fault is added)
// of Call (e.g. "C_Encrypt") fail with Code instead of reaching the module,
// or, with Code 0, reach it after Delay. Times > 1 repeats it on the
// following calls.
type Fault struct {
	Call  string
	Nth   int
	Code  uint
	Delay time.Duration
	Times int
	// Panic makes the call panic (with Panicked) instead of returning:
	// a bug in the code around a module call, for tests of recovery.
	Panic bool
}

// Codes are the failures a fault-injection test tries at each call, by
// name: the device and memory failures and the token removal that must end
// in InternalFailure, and the lost session and login that are retried once.
var Codes = map[string]uint{
	"CKR_DEVICE_ERROR":           pkcs11.CKR_DEVICE_ERROR,
	"CKR_TOKEN_NOT_PRESENT":      pkcs11.CKR_TOKEN_NOT_PRESENT,
	"CKR_DEVICE_MEMORY":          pkcs11.CKR_DEVICE_MEMORY,
	"CKR_SESSION_HANDLE_INVALID": pkcs11.CKR_SESSION_HANDLE_INVALID,
	"CKR_USER_NOT_LOGGED_IN":     pkcs11.CKR_USER_NOT_LOGGED_IN,
}

// Retried reports whether the code is a lost session or login, which the
// hsm package retries once on a fresh session.
func Retried(code uint) bool {
	return code == pkcs11.CKR_SESSION_HANDLE_INVALID || code == pkcs11.CKR_USER_NOT_LOGGED_IN
}

// Panicked is the value an armed Panic fault panics with.
const Panicked = "hsmtest: injected panic"

// Faults is a fault-injecting wrapper; safe for concurrent use.
type Faults struct {
	mu     sync.Mutex
	faults []*armed
	calls  map[string]int
	hits   int
}

type armed struct {
	Fault
	seen, fired int
}

// New returns an empty set of faults.
func New() *Faults { return &Faults{calls: map[string]int{}} }

// Open opens the token cfg names through a new Faults wrapper (with no
// fault armed) and closes it when the test ends.
func Open(tb testing.TB, cfg hsm.Config) (*hsm.Token, *Faults) {
	tb.Helper()
	f := New()
	cfg.Wrap = f.Wrap
	tok, err := hsm.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tok.Close() })
	return tok, f
}

// Wrap is for hsm.Config.Wrap.
func (f *Faults) Wrap(m hsm.Module) hsm.Module { return &faulty{m: m, f: f} }

// Add arms a fault.
func (f *Faults) Add(x Fault) {
	if x.Nth < 1 {
		x.Nth = 1
	}
	if x.Times < 1 {
		x.Times = 1
	}
	f.mu.Lock()
	f.faults = append(f.faults, &armed{Fault: x})
	f.mu.Unlock()
}

// Clear disarms every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Hits returns how many faults fired.
func (f *Faults) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// Calls returns how many times call was made (faulted or not).
func (f *Faults) Calls(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[call]
}

func (f *Faults) hit(call string) error {
	f.mu.Lock()
	f.calls[call]++
	var delay time.Duration
	var code uint
	var panics bool
	for _, a := range f.faults {
		if a.Call != call || a.fired >= a.Times {
			continue
		}
		a.seen++
		if a.seen >= a.Nth {
			a.fired++
			f.hits++
			delay, code, panics = a.Delay, a.Code, a.Panic
			break
		}
	}
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if panics {
		panic(Panicked)
	}
	if code != 0 {
		return pkcs11.Error(code)
	}
	return nil
}

type faulty struct {
	m hsm.Module
	f *Faults
}

func (x *faulty) GetSlotList(tokenPresent bool) ([]uint, error) {
	if err := x.f.hit("C_GetSlotList"); err != nil {
		return nil, err
	}
	return x.m.GetSlotList(tokenPresent)
}

func (x *faulty) GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error) {
	if err := x.f.hit("C_GetTokenInfo"); err != nil {
		return pkcs11.TokenInfo{}, err
	}
	return x.m.GetTokenInfo(slotID)
}

func (x *faulty) GetInfo() (pkcs11.Info, error) {
	if err := x.f.hit("C_GetInfo"); err != nil {
		return pkcs11.Info{}, err
	}
	return x.m.GetInfo()
}

func (x *faulty) GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error) {
	if err := x.f.hit("C_GetMechanismList"); err != nil {
		return nil, err
	}
	return x.m.GetMechanismList(slotID)
}

func (x *faulty) InitToken(slotID uint, pin string, label string) error {
	if err := x.f.hit("C_InitToken"); err != nil {
		return err
	}
	return x.m.InitToken(slotID, pin, label)
}

func (x *faulty) InitPIN(sh pkcs11.SessionHandle, pin string) error {
	if err := x.f.hit("C_InitPIN"); err != nil {
		return err
	}
	return x.m.InitPIN(sh, pin)
}

func (x *faulty) OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error) {
	if err := x.f.hit("C_OpenSession"); err != nil {
		return 0, err
	}
	return x.m.OpenSession(slotID, flags)
}

func (x *faulty) CloseSession(sh pkcs11.SessionHandle) error {
	if err := x.f.hit("C_CloseSession"); err != nil {
		return err
	}
	return x.m.CloseSession(sh)
}

func (x *faulty) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	if err := x.f.hit("C_Login"); err != nil {
		return err
	}
	return x.m.Login(sh, userType, pin)
}

func (x *faulty) Logout(sh pkcs11.SessionHandle) error {
	if err := x.f.hit("C_Logout"); err != nil {
		return err
	}
	return x.m.Logout(sh)
}

func (x *faulty) GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error) {
	if err := x.f.hit("C_GenerateRandom"); err != nil {
		return nil, err
	}
	return x.m.GenerateRandom(sh, length)
}

func (x *faulty) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if err := x.f.hit("C_GenerateKey"); err != nil {
		return 0, err
	}
	return x.m.GenerateKey(sh, m, temp)
}

func (x *faulty) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	if err := x.f.hit("C_GenerateKeyPair"); err != nil {
		return 0, 0, err
	}
	return x.m.GenerateKeyPair(sh, m, public, private)
}

func (x *faulty) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if err := x.f.hit("C_CreateObject"); err != nil {
		return 0, err
	}
	return x.m.CreateObject(sh, temp)
}

func (x *faulty) CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if err := x.f.hit("C_CopyObject"); err != nil {
		return 0, err
	}
	return x.m.CopyObject(sh, o, temp)
}

func (x *faulty) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	if err := x.f.hit("C_DestroyObject"); err != nil {
		return err
	}
	return x.m.DestroyObject(sh, oh)
}

func (x *faulty) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	if err := x.f.hit("C_FindObjectsInit"); err != nil {
		return err
	}
	return x.m.FindObjectsInit(sh, temp)
}

func (x *faulty) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	if err := x.f.hit("C_FindObjects"); err != nil {
		return nil, false, err
	}
	return x.m.FindObjects(sh, max)
}

func (x *faulty) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	if err := x.f.hit("C_FindObjectsFinal"); err != nil {
		return err
	}
	return x.m.FindObjectsFinal(sh)
}

func (x *faulty) SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error {
	if err := x.f.hit("C_SetAttributeValue"); err != nil {
		return err
	}
	return x.m.SetAttributeValue(sh, o, a)
}

func (x *faulty) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	if err := x.f.hit("C_GetAttributeValue"); err != nil {
		return nil, err
	}
	return x.m.GetAttributeValue(sh, o, a)
}

func (x *faulty) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := x.f.hit("C_EncryptInit"); err != nil {
		return err
	}
	return x.m.EncryptInit(sh, m, o)
}

func (x *faulty) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	if err := x.f.hit("C_Encrypt"); err != nil {
		return nil, err
	}
	return x.m.Encrypt(sh, message)
}

func (x *faulty) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := x.f.hit("C_DecryptInit"); err != nil {
		return err
	}
	return x.m.DecryptInit(sh, m, o)
}

func (x *faulty) Decrypt(sh pkcs11.SessionHandle, cypher []byte) ([]byte, error) {
	if err := x.f.hit("C_Decrypt"); err != nil {
		return nil, err
	}
	return x.m.Decrypt(sh, cypher)
}

func (x *faulty) UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if err := x.f.hit("C_UnwrapKey"); err != nil {
		return 0, err
	}
	return x.m.UnwrapKey(sh, m, unwrappingkey, wrappedkey, a)
}

func (x *faulty) DeriveKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, basekey pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if err := x.f.hit("C_DeriveKey"); err != nil {
		return 0, err
	}
	return x.m.DeriveKey(sh, m, basekey, a)
}

func (x *faulty) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := x.f.hit("C_SignInit"); err != nil {
		return err
	}
	return x.m.SignInit(sh, m, o)
}

func (x *faulty) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	if err := x.f.hit("C_Sign"); err != nil {
		return nil, err
	}
	return x.m.Sign(sh, message)
}

func (x *faulty) VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := x.f.hit("C_VerifyInit"); err != nil {
		return err
	}
	return x.m.VerifyInit(sh, m, o)
}

func (x *faulty) Verify(sh pkcs11.SessionHandle, data []byte, signature []byte) error {
	if err := x.f.hit("C_Verify"); err != nil {
		return err
	}
	return x.m.Verify(sh, data, signature)
}
