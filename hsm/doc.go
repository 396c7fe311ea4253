// Package hsm is p11kms's access to a PKCS#11 token, and nothing above it:
// module loading, token selection, login, a bounded session pool, the token
// RNG, AES key generation and AES-GCM in the token, CKO_DATA objects, RSA and
// SM2-curve key pairs, C_UnwrapKey, C_DeriveKey (ECDH1), raw RSA decryption,
// secret-key creation, mechanism probing, and the mapping of CKR codes to Go
// errors.
//
// # Libraries
//
// All token calls go through github.com/miekg/pkcs11, behind the narrow
// [Module] interface that lists exactly the C_ functions p11kms uses (so a
// fault-injection test can wrap the real module, never replace it).
//
// github.com/ThalesGroup/crypto11 is used where it does the job well and
// fits beside code that needs raw sessions: its AttributeSet builds our
// object templates (caller attributes first, defaults added only where
// absent, no duplicates). Its Context (module loading, session pool, RNG,
// AEAD) is deliberately not used, because:
//   - it calls C_Initialize itself and fails on CKR_CRYPTOKI_ALREADY_INITIALIZED,
//     and finalises the module on its own reference count, so it cannot share
//     one module with the code that must run C_UnwrapKey, C_DeriveKey,
//     CKM_RSA_X_509 and CKO_DATA calls — none of which it offers — on sessions
//     it keeps private;
//   - its pool never evicts a session that came back CKR_SESSION_HANDLE_INVALID
//     and waits without bound by default;
//   - its GCM uses a 16-byte IV by default and its Seal panics on a PKCS#11
//     error, where p11kms needs a 12-byte IV, a 128-bit tag and an error.
//
// # Concurrency contract
//
// A [Token] is safe for concurrent use by many goroutines. Each operation
// borrows one session from a bounded pool for the duration of the call and
// returns it; a session that fails with CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED or CKR_USER_NOT_LOGGED_IN is dropped, replaced by a
// freshly opened and logged-in session, and the operation is retried once.
// No Go lock is held across a token call, except that object creation is
// serialised per token (SoftHSM2 < 2.7 can report CKR_GENERAL_ERROR from a
// concurrent C_GenerateKey and still create the key); after any failed
// creation the objects it may have left, found by their known label and ID,
// are destroyed.
//
// Several tokens of one module may be open at once: the module is loaded and
// initialised once per path, shared, and finalised when the last token (or
// [OpenModule] reference) closes.
//
// # Errors
//
// Every error names the operation ("hsm: C_Login: ...") and wraps the CKR code
// as a [pkcs11.Error], so errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT))
// works through any number of wrappings. PINs are never part of an error or a
// log line.
package hsm
