package hsm

import (
	"time"

	"github.com/miekg/pkcs11"
)

// Instrument wraps m so that observe receives the name and duration of
// every PKCS#11 call (for token-call latency metrics). Pass it as
// [Config].Wrap: Wrap: func(m Module) Module { return Instrument(m, f) }.
func Instrument(m Module, observe func(call string, d time.Duration)) Module {
	return &instrumented{m: m, observe: observe}
}

type instrumented struct {
	m       Module
	observe func(string, time.Duration)
}

func (i *instrumented) GetSlotList(tokenPresent bool) ([]uint, error) {
	defer i.time("C_GetSlotList", time.Now())
	return i.m.GetSlotList(tokenPresent)
}

func (i *instrumented) GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error) {
	defer i.time("C_GetTokenInfo", time.Now())
	return i.m.GetTokenInfo(slotID)
}

func (i *instrumented) GetInfo() (pkcs11.Info, error) {
	defer i.time("C_GetInfo", time.Now())
	return i.m.GetInfo()
}

func (i *instrumented) GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error) {
	defer i.time("C_GetMechanismList", time.Now())
	return i.m.GetMechanismList(slotID)
}

func (i *instrumented) InitToken(slotID uint, pin string, label string) error {
	defer i.time("C_InitToken", time.Now())
	return i.m.InitToken(slotID, pin, label)
}

func (i *instrumented) InitPIN(sh pkcs11.SessionHandle, pin string) error {
	defer i.time("C_InitPIN", time.Now())
	return i.m.InitPIN(sh, pin)
}

func (i *instrumented) OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error) {
	defer i.time("C_OpenSession", time.Now())
	return i.m.OpenSession(slotID, flags)
}

func (i *instrumented) CloseSession(sh pkcs11.SessionHandle) error {
	defer i.time("C_CloseSession", time.Now())
	return i.m.CloseSession(sh)
}

func (i *instrumented) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	defer i.time("C_Login", time.Now())
	return i.m.Login(sh, userType, pin)
}

func (i *instrumented) Logout(sh pkcs11.SessionHandle) error {
	defer i.time("C_Logout", time.Now())
	return i.m.Logout(sh)
}

func (i *instrumented) GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error) {
	defer i.time("C_GenerateRandom", time.Now())
	return i.m.GenerateRandom(sh, length)
}

func (i *instrumented) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer i.time("C_GenerateKey", time.Now())
	return i.m.GenerateKey(sh, m, temp)
}

func (i *instrumented) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	defer i.time("C_GenerateKeyPair", time.Now())
	return i.m.GenerateKeyPair(sh, m, public, private)
}

func (i *instrumented) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer i.time("C_CreateObject", time.Now())
	return i.m.CreateObject(sh, temp)
}

func (i *instrumented) CopyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer i.time("C_CopyObject", time.Now())
	return i.m.CopyObject(sh, o, temp)
}

func (i *instrumented) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	defer i.time("C_DestroyObject", time.Now())
	return i.m.DestroyObject(sh, oh)
}

func (i *instrumented) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	defer i.time("C_FindObjectsInit", time.Now())
	return i.m.FindObjectsInit(sh, temp)
}

func (i *instrumented) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	defer i.time("C_FindObjects", time.Now())
	return i.m.FindObjects(sh, max)
}

func (i *instrumented) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	defer i.time("C_FindObjectsFinal", time.Now())
	return i.m.FindObjectsFinal(sh)
}

func (i *instrumented) SetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) error {
	defer i.time("C_SetAttributeValue", time.Now())
	return i.m.SetAttributeValue(sh, o, a)
}

func (i *instrumented) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	defer i.time("C_GetAttributeValue", time.Now())
	return i.m.GetAttributeValue(sh, o, a)
}

func (i *instrumented) EncryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	defer i.time("C_EncryptInit", time.Now())
	return i.m.EncryptInit(sh, m, o)
}

func (i *instrumented) Encrypt(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	defer i.time("C_Encrypt", time.Now())
	return i.m.Encrypt(sh, message)
}

func (i *instrumented) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	defer i.time("C_DecryptInit", time.Now())
	return i.m.DecryptInit(sh, m, o)
}

func (i *instrumented) Decrypt(sh pkcs11.SessionHandle, cypher []byte) ([]byte, error) {
	defer i.time("C_Decrypt", time.Now())
	return i.m.Decrypt(sh, cypher)
}

func (i *instrumented) UnwrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, unwrappingkey pkcs11.ObjectHandle, wrappedkey []byte, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer i.time("C_UnwrapKey", time.Now())
	return i.m.UnwrapKey(sh, m, unwrappingkey, wrappedkey, a)
}

func (i *instrumented) DeriveKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, basekey pkcs11.ObjectHandle, a []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer i.time("C_DeriveKey", time.Now())
	return i.m.DeriveKey(sh, m, basekey, a)
}

func (i *instrumented) time(call string, start time.Time) { i.observe(call, time.Since(start)) }

func (i *instrumented) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	defer i.time("C_SignInit", time.Now())
	return i.m.SignInit(sh, m, o)
}

func (i *instrumented) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	defer i.time("C_Sign", time.Now())
	return i.m.Sign(sh, message)
}

func (i *instrumented) VerifyInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	defer i.time("C_VerifyInit", time.Now())
	return i.m.VerifyInit(sh, m, o)
}

func (i *instrumented) Verify(sh pkcs11.SessionHandle, data []byte, signature []byte) error {
	defer i.time("C_Verify", time.Now())
	return i.m.Verify(sh, data, signature)
}
