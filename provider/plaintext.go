package provider

import "sync"

// Pooled plaintext buffers come in two sizes: data keys (at most
// MaxDataKeyBytes) and everything else up to MaxPlaintextBytes (Encrypt
// input, a decrypted blob). Clearing a buffer costs in proportion to its
// size, and most operations hold a 32-byte data key.
var plaintextClasses = [...]int{MaxDataKeyBytes, MaxPlaintextBytes}

// maxPooledPlaintexts bounds what the pool keeps per size between
// operations (64 x 7 KiB in all); more buffers in flight are allocated and
// dropped.
const maxPooledPlaintexts = 64

// plaintextPool hands out the buffers that hold plaintext — data keys,
// decrypted blobs, Encrypt input — and takes them back cleared. Every
// plaintext the service holds lives in one of its buffers from the moment
// it leaves the token (or the request) until the operation returns, so
// "zeroed after use" is one place to check: a buffer in the free lists is
// all zero, whatever operation used it and however it ended.
//
// Free lists under a mutex rather than sync.Pool: sync.Pool may drop a
// buffer at any GC (under -race it drops some on purpose), and then a test
// could not look at the buffers the operations handed back.
type plaintextPool struct {
	mu   sync.Mutex
	free [len(plaintextClasses)][][]byte // by class; each buffer all zero
	out  int                             // handed out, not yet returned
	gets uint64                          // handed out since the service started
}

// class returns the index of the smallest class that holds n bytes, or -1.
func class(n int) int {
	for i, size := range plaintextClasses {
		if n <= size {
			return i
		}
	}
	return -1
}

// get returns a buffer of length n (0 <= n), from a free list when n fits
// a class. The caller must give it back with put.
func (p *plaintextPool) get(n int) []byte {
	c := class(n)
	p.mu.Lock()
	p.out++
	p.gets++
	var b []byte
	if c >= 0 {
		if k := len(p.free[c]); k > 0 {
			b = p.free[c][k-1]
			p.free[c][k-1] = nil
			p.free[c] = p.free[c][:k-1]
		}
	}
	p.mu.Unlock()
	if b == nil {
		size := n
		if c >= 0 {
			size = plaintextClasses[c]
		}
		b = make([]byte, size)
	}
	return b[:n]
}

// put clears the whole of b (not only its length) and keeps it for reuse
// if it is of a class size and its free list has room. nil is ignored.
func (p *plaintextPool) put(b []byte) {
	if b == nil {
		return
	}
	b = b[:cap(b)]
	clear(b)
	c := class(len(b))
	p.mu.Lock()
	p.out--
	if c >= 0 && len(b) == plaintextClasses[c] && len(p.free[c]) < maxPooledPlaintexts {
		p.free[c] = append(p.free[c], b)
	}
	p.mu.Unlock()
}

// fill returns a pool buffer holding a copy of src and clears src, which
// came from the token (the module's allocation, not the pool's).
func (p *plaintextPool) fill(src []byte) []byte {
	b := p.get(len(src))
	copy(b, src)
	clear(src)
	return b
}
