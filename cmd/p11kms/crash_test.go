package main

// Crash consistency: `p11kms serve` (and the importer CLI) killed with
// SIGKILL at random points of a burst of writes, restarted, and checked
// against a ledger of what was acknowledged. Real processes on real
// SoftHSM2 tokens; nothing mocked. RELIABILITY.md describes it.

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	alikms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/p11kms/p11kms/softhsm"
	"github.com/p11kms/p11kms/wrap"
)

// relRig is a p11kms home on tmpfs with the binary built, for the tests
// that run p11kms as real processes (crash and soak).
type relRig struct {
	t                *testing.T
	bin, dir, home   string
	akID, akSecret   string
	module           string
	mu               sync.Mutex
	procs            []*relServe
	nlogs            int
	requireCleanLogs bool
}

// newRelRig builds p11kms, makes a home with the "kms" token and the
// extra tokens named, and reads the admin access key init wrote.
func newRelRig(t *testing.T, extraTokens ...string) *relRig {
	t.Helper()
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "p11kms-rel-")
	if err != nil {
		t.Fatal(err)
	}
	r := &relRig{t: t, dir: dir, home: filepath.Join(dir, "home"), bin: buildBinary(t)}
	t.Cleanup(r.cleanup)
	r.akID, r.akSecret = initPrintedKey(t, r.mustRun("init")) // the file holds the secret sealed
	for _, tok := range extraTokens {
		r.mustRun("init", "--token-label", tok)
	}
	if r.module, err = softhsm.FindModule(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *relRig) cleanup() {
	r.mu.Lock()
	procs := r.procs
	r.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	r.scanLogs()
	os.RemoveAll(r.dir)
}

// scanLogs fails the test on a panic, fatal error or data race in any
// serve log and reports ERROR lines.
func (r *relRig) scanLogs() {
	logs, _ := filepath.Glob(filepath.Join(r.dir, "serve-*.log"))
	errorLines := 0
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") || strings.Contains(line, "DATA RACE"):
				r.t.Errorf("%s: %s", filepath.Base(l), line)
			case strings.Contains(line, `"level":"ERROR"`):
				errorLines++
				if errorLines <= 10 {
					r.t.Logf("%s: %s", filepath.Base(l), line)
				}
				if r.requireCleanLogs {
					r.t.Errorf("ERROR logged by serve: %s", line)
				}
			}
		}
	}
	if errorLines > 0 {
		r.t.Logf("%d ERROR lines in serve logs", errorLines)
	}
}

// run runs the p11kms binary on the home and returns stdout, stderr and
// the exit error.
func (r *relRig) run(args ...string) (string, string, error) {
	cmd := exec.Command(r.bin, append([]string{"--home", r.home}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

func (r *relRig) mustRun(args ...string) string {
	r.t.Helper()
	out, errOut, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("p11kms %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// relServe is one `p11kms serve` process.
type relServe struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	err  error
}

// serve starts `p11kms serve` on a free port, its output in a log file,
// and waits until /healthz answers.
func (r *relRig) serve(extra ...string) *relServe {
	r.t.Helper()
	r.mu.Lock()
	r.nlogs++
	logPath := filepath.Join(r.dir, fmt.Sprintf("serve-%03d.log", r.nlogs))
	r.mu.Unlock()
	logf, err := os.Create(logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	addr := freePort(r.t)
	args := append([]string{"--home", r.home, "serve", "--listen", addr, "--sweep-interval", "0"}, extra...)
	p := &relServe{cmd: exec.Command(r.bin, args...), addr: addr, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			r.t.Fatalf("serve exited at start-up: %v\n%s", p.err, b)
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			r.t.Fatalf("serve on %s did not start", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and reaps the process.
func (p *relServe) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *relServe) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("serve exited after SIGTERM: %v", p.err)
		}
	case <-time.After(30 * time.Second):
		p.kill()
		t.Error("serve did not stop on SIGTERM")
	}
}

// client is an official Alibaba SDK client for one server; no retries
// (the SDK default), so an answer is exactly one request.
func (r *relRig) client(addr string) *alikms.Client {
	c, err := alikms.NewClient(&openapi.Config{Endpoint: tea.String(addr), Protocol: tea.String("HTTP"),
		RegionId: tea.String("cn-hangzhou"), AccessKeyId: tea.String(r.akID), AccessKeySecret: tea.String(r.akSecret),
		ReadTimeout: tea.Int(30000), ConnectTimeout: tea.Int(5000)})
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// sdkCode is the API error code of an SDK error, "" for nil, and
// "Transport" for an error without an answer from the server.
func sdkCode(err error) string {
	if err == nil {
		return ""
	}
	var se *tea.SDKError
	if errors.As(err, &se) && tea.StringValue(se.Code) != "" {
		return tea.StringValue(se.Code)
	}
	return "Transport"
}

// relSeed returns the seed from the environment variable, or a new one;
// the test logs it so a failing run can be replayed.
func relSeed(t *testing.T, env string) uint64 {
	if v := os.Getenv(env); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

func relEnvInt(env string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		return v
	}
	return def
}

// tokenObject is one object pkcs11-tool lists.
type tokenObject struct{ Kind, Label, App string }

// listObjects lists every object of a token (logged in), with pkcs11-tool.
func (r *relRig) listObjects(tokenLabel string) ([]tokenObject, error) {
	pin, err := os.ReadFile(filepath.Join(r.home, "user.pin"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("pkcs11-tool", "--module", r.module, "--token-label", tokenLabel, "--login",
		"--pin", strings.TrimSpace(string(pin)), "--list-objects")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(r.home, "softhsm2.conf"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pkcs11-tool --list-objects on %q: %v\n%s%s", tokenLabel, err, out.String(), errOut.String())
	}
	var objs []tokenObject
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			kind := line
			if i := strings.IndexAny(kind, ";0123456789"); i > 0 {
				kind = strings.TrimSpace(kind[:i])
			}
			objs = append(objs, tokenObject{Kind: kind})
			continue
		}
		if len(objs) == 0 {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), "'")
		switch k {
		case "label":
			objs[len(objs)-1].Label = v
		case "application":
			objs[len(objs)-1].App = v
		}
	}
	return objs, nil
}

// keepEvidence copies the home (tokens, PINs, a softhsm2.conf pointing at
// the copy) out of the temporary directory, for inspection with
// pkcs11-tool, and returns where it is.
func (r *relRig) keepEvidence(name string) string {
	dst := name
	if !filepath.IsAbs(dst) {
		dst = filepath.Join(os.TempDir(), name)
	}
	os.MkdirAll(filepath.Dir(dst), 0o700)
	os.RemoveAll(dst)
	if out, err := exec.Command("cp", "-a", r.home, dst).CombinedOutput(); err != nil {
		return fmt.Sprintf("(could not copy the home: %v %s)", err, out)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Join(dst, "tokens"))
	os.WriteFile(filepath.Join(dst, "softhsm2.conf"), []byte(conf), 0o600)
	return dst
}

// objectFile is what a SoftHSM2 2.6 object file holds, read from its
// format (ObjectFile::writeAttributes): a u64 generation, then per
// attribute a u64 type, a u64 kind and the value (bool: 1 byte; ulong: 8
// bytes; byte string and attribute map: u64 length and bytes; mechanism
// set: u64 count and 8 bytes each), integers big-endian. Byte strings of
// private objects (labels, values) are encrypted, so only their lengths
// say anything here.
type objectFile struct {
	Name   string
	Size   int
	State  string // complete, empty, attributeless, or why it is broken
	Class  uint64
	Token  bool // CKA_TOKEN as stored: false while SoftHSM2 has written only the defaults
	HasVal bool // CKA_VALUE is not empty
}

// HalfMade reports an object SoftHSM2 wrote only part of: C_GenerateKey,
// C_CreateObject and C_CopyObject each write the file several times
// (defaults, then the template, then the value), so a kill in between
// leaves an object still carrying the default CKA_TOKEN = false and an
// empty label.
func (o objectFile) HalfMade() bool { return o.State == "complete" && !o.Token }

func parseObjectFile(name string, b []byte) objectFile {
	o := objectFile{Name: name, Size: len(b)}
	switch {
	case len(b) == 0:
		o.State = "empty"
		return o
	case len(b) == 8:
		o.State = "attributeless"
		return o
	case len(b) < 8:
		o.State = fmt.Sprintf("truncated (%d bytes)", len(b))
		return o
	}
	u64 := func(off int) uint64 {
		var v uint64
		for _, c := range b[off : off+8] {
			v = v<<8 | uint64(c)
		}
		return v
	}
	hasClass := false
	for off := 8; off < len(b); {
		if off+16 > len(b) {
			o.State = fmt.Sprintf("truncated inside an attribute header at byte %d of %d", off, len(b))
			return o
		}
		typ, kind := u64(off), u64(off+8)
		off += 16
		var n uint64
		switch kind {
		case 1:
			n = 1
		case 2:
			n = 8
		case 3, 4, 5:
			if off+8 > len(b) {
				o.State = fmt.Sprintf("truncated inside the length of attribute %#x", typ)
				return o
			}
			n = u64(off)
			if kind == 5 {
				n *= 8
			}
			off += 8
		default:
			o.State = fmt.Sprintf("corrupt: attribute %#x has kind %d", typ, kind)
			return o
		}
		if n > uint64(len(b)-off) {
			o.State = fmt.Sprintf("truncated inside the value of attribute %#x (%d of %d bytes)", typ, len(b)-off, n)
			return o
		}
		switch {
		case typ == 0 && kind == 2: // CKA_CLASS
			hasClass, o.Class = true, u64(off)
		case typ == 1 && kind == 1: // CKA_TOKEN
			o.Token = b[off] != 0
		case typ == 0x11: // CKA_VALUE
			o.HasVal = n > 0
		}
		off += int(n)
	}
	if !hasClass {
		o.State = "incomplete: no CKA_CLASS"
		return o
	}
	o.State = "complete"
	return o
}

// objectFiles reads the object files of the token labelled label.
func (r *relRig) objectFiles(label string) ([]objectFile, error) {
	dirs, err := filepath.Glob(filepath.Join(r.home, "tokens", "*"))
	if err != nil {
		return nil, err
	}
	padded := []byte(label + strings.Repeat(" ", 32-len(label)))
	for _, d := range dirs {
		if tb, err := os.ReadFile(filepath.Join(d, "token.object")); err != nil || !bytes.Contains(tb, padded) {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(d, "*.object"))
		var out []objectFile
		for _, f := range files {
			if filepath.Base(f) == "token.object" {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, parseObjectFile(filepath.Base(f), b))
		}
		return out, nil
	}
	return nil, fmt.Errorf("no token directory holds token %q", label)
}

// crashBlob is a CiphertextBlob the server acknowledged, with what it
// must decrypt to.
type crashBlob struct {
	blob, plaintext string
	ctx             map[string]interface{}
}

// crashExport is a data key exported to the device's wrapping key,
// prepared before the rounds, for the importer.
type crashExport struct {
	wrapLabel, alg, file, kcv string
	key                       []byte
}

// crashLedger is what the test knows was acknowledged, and what was in
// flight when the server died.
type crashLedger struct {
	mu             sync.Mutex
	keys           map[string]bool   // CreateKey acknowledged
	pending        map[string]bool   // ScheduleKeyDeletion acknowledged
	scheduling     map[string]bool   // ScheduleKeyDeletion in flight at a kill
	versions       map[string]bool   // CreateKeyVersion on rot acknowledged
	aliasAck       map[string]string // alias -> target of the last acknowledged CreateAlias/UpdateAlias
	aliasInflight  map[string]string // alias -> target of a request in flight at the kill
	blobs          []crashBlob
	requestIDs     []string
	unexpected     []string
	inflightCreate int  // CreateKey requests without an answer in this round
	inflightRotate bool // a CreateKeyVersion without an answer in this round
	acked          int  // writes acknowledged in all rounds
	aliasWrites    int  // of which CreateAlias and UpdateAlias
}

func (l *crashLedger) ack(requestID *string) {
	l.requestIDs = append(l.requestIDs, tea.StringValue(requestID))
}

// fail records an answer that should not have happened (an API error
// during a burst). The request counts as in flight.
func (l *crashLedger) fail(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unexpected = append(l.unexpected, fmt.Sprintf("%s: %v", op, err))
}

// TestCrashConsistency kills `p11kms serve` with SIGKILL at a random point
// (0-30 ms) of a burst of CreateKey, CreateKeyVersion, UpdateAlias,
// CreateAlias, ScheduleKeyDeletion, GenerateDataKey and Encrypt requests,
// and kills `p11kms importer ImportDataKey` processes at random points of
// an import; then restarts serve and checks that everything acknowledged
// is there, every CiphertextBlob still decrypts to its plaintext, no
// metadata names a missing object, any version object no metadata names
// was in flight at a kill, every token object file is readable, no file
// holds key material without its label, an interrupted import leaves its
// label with the old key or the new one and the label's next lookup
// removes whatever else the kill left under it.
// P11KMS_CRASH_SEED replays the kill delays of a run; P11KMS_CRASH_ROUNDS
// sets the rounds (default 14); P11KMS_CRASH_EVIDENCE=<dir> keeps a copy
// of the home for every half-made object file.
func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: kills and restarts real serve processes")
	}
	seed := relSeed(t, "P11KMS_CRASH_SEED")
	rounds := relEnvInt("P11KMS_CRASH_ROUNDS", 14)
	t.Logf("seed %d (replay: P11KMS_CRASH_SEED=%d), %d rounds", seed, seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	start := time.Now()

	r := newRelRig(t, "device")
	L := &crashLedger{keys: map[string]bool{}, pending: map[string]bool{}, scheduling: map[string]bool{},
		versions: map[string]bool{}, aliasAck: map[string]string{}, aliasInflight: map[string]string{}}
	p := r.serve()
	c := r.client(p.addr)

	// The keys the bursts work on: rot gets versions, t0-t3 are alias
	// targets, alias/crash-flip moves between them.
	newKey := func(desc string) string {
		ck, err := c.CreateKey(&alikms.CreateKeyRequest{Description: tea.String(desc)})
		if err != nil {
			t.Fatalf("CreateKey: %v", err)
		}
		id := tea.StringValue(ck.Body.KeyMetadata.KeyId)
		L.keys[id] = true
		return id
	}
	rot := newKey("crash: rotated")
	if vs, err := crashVersions(c, rot); err != nil || len(vs) != 1 {
		t.Fatalf("versions of a new key: %v %v", vs, err)
	} else {
		L.versions[vs[0]] = true
	}
	var targets []string
	for i := 0; i < 4; i++ {
		targets = append(targets, newKey(fmt.Sprintf("crash: alias target %d", i)))
	}
	const flip = "alias/crash-flip"
	if _, err := c.CreateAlias(&alikms.CreateAliasRequest{AliasName: tea.String(flip), KeyId: tea.String(targets[0])}); err != nil {
		t.Fatal(err)
	}
	L.aliasAck[flip] = targets[0]
	// Enough versions that rot's metadata object outgrows one 4 KiB write.
	for i := 0; i < 60; i++ {
		v, err := c.CreateKeyVersion(&alikms.CreateKeyVersionRequest{KeyId: tea.String(rot)})
		if err != nil {
			t.Fatal(err)
		}
		L.versions[tea.StringValue(v.Body.KeyVersion.KeyVersionId)] = true
	}

	// The receiving side: wrapping keys in token "device", and data keys
	// exported to them through the server (two per round, plus a base key
	// for the label that rounds replace).
	dev := "--token=pkcs11:token=device"
	wrapping := map[string]struct{ spec, alg, blob string }{}
	for label, sa := range map[string][2]string{"crash-rsa": {"RSA_2048", "RSAES_OAEP_SHA_1"}, "crash-sm2": {"EC_SM2", "SM2PKE"}} {
		out := r.mustRun(dev, "importer", "CreateWrappingKey", "--WrappingKeySpec", sa[0], "--KeyLabel", label)
		var wk struct{ PublicKeyBlob string }
		if err := json.Unmarshal([]byte(out), &wk); err != nil {
			t.Fatalf("CreateWrappingKey: %v %s", err, out)
		}
		wrapping[label] = struct{ spec, alg, blob string }{sa[0], sa[1], wk.PublicKeyBlob}
	}
	exports := make([]crashExport, 2*rounds+1)
	for i := range exports {
		label := []string{"crash-rsa", "crash-sm2"}[i%2]
		w := wrapping[label]
		ex, err := c.GenerateAndExportDataKey(&alikms.GenerateAndExportDataKeyRequest{KeyId: tea.String(targets[1]),
			PublicKeyBlob: tea.String(w.blob), WrappingKeySpec: tea.String(w.spec), WrappingAlgorithm: tea.String(w.alg)})
		if err != nil {
			t.Fatalf("GenerateAndExportDataKey %s: %v", w.alg, err)
		}
		d, err := c.Decrypt(&alikms.DecryptRequest{CiphertextBlob: ex.Body.CiphertextBlob})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := base64.StdEncoding.DecodeString(tea.StringValue(d.Body.Plaintext))
		kcv, err := wrap.KCV(key)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(r.dir, fmt.Sprintf("export-%02d.b64", i))
		os.WriteFile(f, []byte(tea.StringValue(ex.Body.ExportedDataKey)), 0o600)
		exports[i] = crashExport{wrapLabel: label, alg: w.alg, file: f, kcv: kcv, key: key}
		L.blobs = append(L.blobs, crashBlob{blob: tea.StringValue(ex.Body.CiphertextBlob), plaintext: tea.StringValue(d.Body.Plaintext)})
	}
	importArgs := func(ex crashExport, label string, replace bool) []string {
		a := []string{dev, "importer", "ImportDataKey", "--WrappingKeyLabel", ex.wrapLabel, "--WrappingAlgorithm", ex.alg,
			"--ExportedDataKey", "@" + ex.file, "--KeyLabel", label, "--ExpectedKeyCheckValue", ex.kcv}
		if replace {
			a = append(a, "--Replace")
		}
		return a
	}
	const replaceLabel = "crash-dk-replace"
	t0 := time.Now()
	r.mustRun(importArgs(exports[0], replaceLabel, false)...)
	importTime := time.Since(t0)
	t.Logf("an import takes %v: importers are killed 0-%v after they start", importTime, 2*importTime)
	replaceAck, replaceInflight := exports[0].key, []byte(nil)
	imports := map[string]*importState{}

	var orphans = map[string]bool{} // version objects no metadata names, seen so far
	var named = map[string]bool{}   // keyId/versionId named by metadata, seen so far
	stats := struct{ kills, unackedCommitted, importKills, importAcked, labelsSettled, truncated int }{}
	halfMade := map[string]string{} // token/file -> what a kill left half-made

	for round := 1; round <= rounds; round++ {
		// Everything random in this round is drawn here, in order, so a
		// seed replays the same kill delays (where in the server's work a
		// delay lands still depends on scheduling).
		killAfter := time.Duration(rng.IntN(30001)) * time.Microsecond
		importKill := [2]time.Duration{
			time.Duration(rng.Int64N(int64(importTime) * 2)),
			time.Duration(rng.Int64N(int64(importTime) * 2)),
		}
		workerSeeds := make([]uint64, 6)
		for i := range workerSeeds {
			workerSeeds[i] = rng.Uint64()
		}
		L.inflightCreate, L.inflightRotate = 0, false

		var wg sync.WaitGroup
		burst := func(seed uint64, fn func(c *alikms.Client, rng *rand.Rand)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(r.client(p.addr), rand.New(rand.NewPCG(seed, 1)))
			}()
		}
		// CreateKey
		burst(workerSeeds[0], func(c *alikms.Client, _ *rand.Rand) {
			for {
				L.mu.Lock()
				L.inflightCreate++
				L.mu.Unlock()
				ck, err := c.CreateKey(&alikms.CreateKeyRequest{Description: tea.String(fmt.Sprintf("crash round %d", round))})
				if sdkCode(err) == "Transport" {
					return
				} else if err != nil {
					L.fail("CreateKey", err)
					return
				}
				L.mu.Lock()
				L.inflightCreate--
				L.keys[tea.StringValue(ck.Body.KeyMetadata.KeyId)] = true
				L.ack(ck.Body.RequestId)
				L.acked++
				L.mu.Unlock()
			}
		})
		// CreateKeyVersion
		burst(workerSeeds[1], func(c *alikms.Client, _ *rand.Rand) {
			for {
				L.mu.Lock()
				L.inflightRotate = true
				L.mu.Unlock()
				v, err := c.CreateKeyVersion(&alikms.CreateKeyVersionRequest{KeyId: tea.String(rot)})
				if sdkCode(err) == "Transport" {
					return
				} else if err != nil {
					L.fail("CreateKeyVersion", err)
					return
				}
				L.mu.Lock()
				L.inflightRotate = false
				L.versions[tea.StringValue(v.Body.KeyVersion.KeyVersionId)] = true
				L.ack(v.Body.RequestId)
				L.acked++
				L.mu.Unlock()
			}
		})
		// UpdateAlias (alias/crash-flip to a target it does not point at)
		// and CreateAlias (a new alias each time).
		burst(workerSeeds[2], func(c *alikms.Client, rng *rand.Rand) {
			for n := 0; ; n++ {
				name, target := flip, targets[rng.IntN(len(targets))]
				L.mu.Lock()
				if n%3 == 2 {
					name = fmt.Sprintf("alias/crash-r%02d-%d", round, n)
				} else {
					for target == L.aliasAck[flip] {
						target = targets[rng.IntN(len(targets))]
					}
				}
				L.aliasInflight[name] = target
				L.mu.Unlock()
				var err error
				var rid *string
				if name == flip {
					var resp *alikms.UpdateAliasResponse
					if resp, err = c.UpdateAlias(&alikms.UpdateAliasRequest{AliasName: tea.String(name), KeyId: tea.String(target)}); err == nil {
						rid = resp.Body.RequestId
					}
				} else {
					var resp *alikms.CreateAliasResponse
					if resp, err = c.CreateAlias(&alikms.CreateAliasRequest{AliasName: tea.String(name), KeyId: tea.String(target)}); err == nil {
						rid = resp.Body.RequestId
					}
				}
				if sdkCode(err) == "Transport" {
					return
				} else if err != nil {
					L.fail(map[bool]string{true: "UpdateAlias", false: "CreateAlias"}[name == flip]+" "+name, err)
					return
				}
				L.mu.Lock()
				delete(L.aliasInflight, name)
				L.aliasAck[name] = target
				L.ack(rid)
				L.acked++
				L.aliasWrites++
				L.mu.Unlock()
			}
		})
		// CreateKey then ScheduleKeyDeletion
		burst(workerSeeds[3], func(c *alikms.Client, _ *rand.Rand) {
			for {
				L.mu.Lock()
				L.inflightCreate++
				L.mu.Unlock()
				ck, err := c.CreateKey(&alikms.CreateKeyRequest{Description: tea.String("crash: to delete")})
				if sdkCode(err) == "Transport" {
					return
				} else if err != nil {
					L.fail("CreateKey", err)
					return
				}
				id := tea.StringValue(ck.Body.KeyMetadata.KeyId)
				L.mu.Lock()
				L.inflightCreate--
				L.keys[id] = true
				L.scheduling[id] = true
				L.ack(ck.Body.RequestId)
				L.acked++
				L.mu.Unlock()
				sd, err := c.ScheduleKeyDeletion(&alikms.ScheduleKeyDeletionRequest{KeyId: tea.String(id), PendingWindowInDays: tea.Int32(7)})
				if sdkCode(err) == "Transport" {
					return
				} else if err != nil {
					L.fail("ScheduleKeyDeletion", err)
					return
				}
				L.mu.Lock()
				delete(L.scheduling, id)
				L.pending[id] = true
				L.ack(sd.Body.RequestId)
				L.acked++
				L.mu.Unlock()
			}
		})
		// GenerateDataKey and Encrypt, on rot, the targets and the alias.
		for w := 4; w < 6; w++ {
			burst(workerSeeds[w], func(c *alikms.Client, rng *rand.Rand) {
				refs := append([]string{rot, flip}, targets...)
				for n := 0; ; n++ {
					ref := refs[rng.IntN(len(refs))]
					ctx := map[string]interface{}{"round": strconv.Itoa(round), "n": strconv.Itoa(n)}
					var b crashBlob
					if n%2 == 0 {
						g, err := c.GenerateDataKey(&alikms.GenerateDataKeyRequest{KeyId: tea.String(ref), EncryptionContext: ctx})
						if sdkCode(err) == "Transport" {
							return
						} else if err != nil {
							L.fail("GenerateDataKey", err)
							return
						}
						b = crashBlob{blob: tea.StringValue(g.Body.CiphertextBlob), plaintext: tea.StringValue(g.Body.Plaintext), ctx: ctx}
					} else {
						pt := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("crash %d/%d %x", round, n, rng.Uint64())))
						e, err := c.Encrypt(&alikms.EncryptRequest{KeyId: tea.String(ref), Plaintext: tea.String(pt), EncryptionContext: ctx})
						if sdkCode(err) == "Transport" {
							return
						} else if err != nil {
							L.fail("Encrypt", err)
							return
						}
						b = crashBlob{blob: tea.StringValue(e.Body.CiphertextBlob), plaintext: pt, ctx: ctx}
					}
					L.mu.Lock()
					L.blobs = append(L.blobs, b)
					L.mu.Unlock()
				}
			})
		}
		// Two importer processes, each killed at its own random point:
		// one imports under a new label, one replaces replaceLabel.
		newLabel := fmt.Sprintf("crash-dk-%02d", round)
		exNew, exRep := exports[2*round-1], exports[2*round]
		var impAcked [2]bool
		for i, args := range [][]string{importArgs(exNew, newLabel, false), importArgs(exRep, replaceLabel, true)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(r.bin, append([]string{"--home", r.home}, args...)...)
				var out bytes.Buffer
				cmd.Stdout = &out
				if err := cmd.Start(); err != nil {
					L.fail("importer", err)
					return
				}
				timer := time.AfterFunc(importKill[i], func() { cmd.Process.Signal(syscall.SIGKILL) })
				err := cmd.Wait()
				timer.Stop()
				var res struct{ KeyCheckValue string }
				impAcked[i] = err == nil && json.Unmarshal(out.Bytes(), &res) == nil && res.KeyCheckValue == []string{exNew.kcv, exRep.kcv}[i]
				if err == nil && !impAcked[i] {
					L.fail("importer", fmt.Errorf("exit 0 without the expected answer: %s", out.String()))
				}
			}()
		}

		time.Sleep(killAfter)
		p.kill()
		wg.Wait()
		stats.kills++
		stats.importKills += 2
		if impAcked[0] {
			stats.importAcked++
		}
		if impAcked[1] {
			stats.importAcked++
		}
		if len(L.unexpected) > 0 {
			t.Fatalf("round %d: unexpected answers during the burst: %v", round, L.unexpected)
		}

		// The tokens as the crash left them: every object file complete
		// or left half-made by SoftHSM2 (see objectFile), every complete
		// object listed, every unlabelled one half-made, no stray key in
		// the device token.
		var kmsObjs, devObjs []tokenObject
		evidence := func() string { return r.keepEvidence(fmt.Sprintf("p11kms-crash-%d-r%d", seed, round)) }
		for _, tok := range []string{"kms", "device"} {
			files, err := r.objectFiles(tok)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := r.listObjects(tok)
			if err != nil {
				t.Fatalf("round %d: token %s after the kill: %v (evidence: %s)", round, tok, err, evidence())
			}
			if tok == "kms" {
				kmsObjs = objs
			} else {
				devObjs = objs
			}
			listable, halfMadeFiles, attributeless := 0, 0, 0
			for _, f := range files {
				// SoftHSM2 creates a secret key by setting one attribute at a
				// time, each rewriting the file, CKA_KEY_TYPE before
				// CKA_CLASS (P11SecretKeyObj::init sets its own attribute and
				// then calls its parent's): a kill between the two leaves a
				// file holding only the key type — an interrupted creation
				// like an attributeless one, with no key material.
				classless := f.State == "incomplete: no CKA_CLASS" && !f.HasVal
				switch {
				case f.State == "complete" || f.State == "attributeless" || classless:
					listable++
				case f.State == "empty" || strings.HasPrefix(f.State, "truncated"):
					// Not an object to SoftHSM2: it skips the file.
				default:
					t.Errorf("round %d: token %s: object file %s (%d bytes) is %s (evidence: %s)", round, tok, f.Name, f.Size, f.State, evidence())
				}
				if f.HalfMade() {
					halfMadeFiles++
				}
				if f.State == "attributeless" || classless {
					attributeless++ // pkcs11-tool's rendering of it varies
				}
				key := tok + "/" + f.Name
				if f.State == "complete" && !f.HalfMade() || halfMade[key] != "" {
					continue
				}
				switch {
				case f.HalfMade() && f.Class == 4 && f.HasVal:
					// Key material no label names and nothing would ever
					// destroy: what a kill inside a C_CopyObject from a
					// session key to the token left (SoftHSM2 writes the
					// copy with the source's attributes first, CKA_TOKEN
					// false and no label, and applies the template after).
					// The importer no longer copies a session key into the
					// token; nothing else writes a key's value before its
					// template.
					halfMade[key] = "secret key with its value, no label (interrupted C_CopyObject)"
					t.Errorf("round %d: token %s: %s: a stray copy of a key (evidence: %s)", round, tok, f.Name, evidence())
				case f.HalfMade():
					halfMade[key] = fmt.Sprintf("object of class %d without value or label (interrupted creation)", f.Class)
				case strings.HasPrefix(f.State, "truncated"):
					// SoftHSM2 writes an object file through a 4 KiB stdio
					// buffer: a kill between two write(2) calls of one
					// file leaves its first 4096 bytes.
					halfMade[key] = fmt.Sprintf("%d bytes, %s (a kill between two writes of one object file)", f.Size, f.State)
					stats.truncated++
				default:
					halfMade[key] = f.State + " file (interrupted creation)"
				}
				t.Logf("round %d: token %s: %s: %s", round, tok, f.Name, halfMade[key])
				if dir := os.Getenv("P11KMS_CRASH_EVIDENCE"); dir != "" && (f.State != "empty" && f.State != "attributeless") {
					t.Logf("  evidence: %s", r.keepEvidence(filepath.Join(dir, fmt.Sprintf("p11kms-crash-%d-r%d", seed, round))))
				}
			}
			unlabelled := 0
			for _, o := range objs {
				if o.Label == "" {
					unlabelled++
				}
				if tok == "device" && o.Kind == "Secret Key Object" && o.Label != "" && o.Label != replaceLabel && !strings.HasPrefix(o.Label, "crash-dk-") {
					t.Errorf("round %d: stray secret key %q in the device token (evidence: %s)", round, o.Label, evidence())
				}
			}
			if listable != len(objs) || unlabelled < halfMadeFiles || unlabelled > halfMadeFiles+attributeless {
				t.Errorf("round %d: token %s: %d listable object files (%d half-made, %d without attributes) but pkcs11-tool lists %d objects (%d unlabelled) (evidence: %s)",
					round, tok, listable, halfMadeFiles, attributeless, len(objs), unlabelled, evidence())
			}
		}

		// No metadata names a missing object (Sweep, run by the CLI on
		// the home, reports it as Missing).
		out := r.mustRun("kms", "Sweep")
		var sw struct{ Deleted, Rotated, Repaired, Missing []string }
		if err := json.Unmarshal([]byte(out), &sw); err != nil {
			t.Fatalf("Sweep: %v %s", err, out)
		}
		if len(sw.Missing) > 0 || len(sw.Deleted) > 0 || len(sw.Rotated) > 0 {
			t.Errorf("round %d: Sweep after the kill: %s", round, out)
		}

		p = r.serve()
		c = r.client(p.addr)
		addr := p.addr
		if err := crashCheckKMS(c, func() *alikms.Client { return r.client(addr) }, L, rot, round); err != nil {
			t.Fatalf("round %d (kill after %v): %v", round, killAfter, err)
		}

		// Version objects no metadata names: each new one must be the
		// version of a CreateKey or CreateKeyVersion in flight at the kill.
		keyIDs, err := crashListKeys(c)
		if err != nil {
			t.Fatal(err)
		}
		newOrphans, orphanKeys, orphanRot := []string{}, 0, 0
		for _, o := range kmsObjs {
			ref, ok := strings.CutPrefix(o.Label, "p11kms/")
			// p11kms/audit-hmac and p11kms/access-keys are the token's fixed
			// keys (audit MACs, sealed access-key secrets), not versions.
			if o.Kind != "Secret Key Object" || !ok || named[ref] || orphans[ref] || ref == "audit-hmac" || ref == "access-keys" {
				continue
			}
			keyID, _, _ := strings.Cut(ref, "/")
			if keyIDs[keyID] {
				vs, err := crashVersions(c, keyID)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range vs {
					named[keyID+"/"+v] = true
				}
				if named[ref] {
					continue
				}
			}
			orphans[ref] = true
			newOrphans = append(newOrphans, ref)
			switch {
			case !keyIDs[keyID]:
				orphanKeys++
			case keyID == rot:
				orphanRot++
			default:
				t.Errorf("round %d: version object %s is not named by its key's metadata, and no CreateKeyVersion on that key was in flight", round, ref)
			}
		}
		rotating := 0
		if L.inflightRotate {
			rotating = 1
		}
		if orphanKeys > L.inflightCreate || orphanRot > rotating {
			t.Errorf("round %d: new orphaned version objects %v, but only %d CreateKey and %d CreateKeyVersion were in flight", round, newOrphans, L.inflightCreate, rotating)
		}

		// The importer: an acknowledged import is there with its key; an
		// interrupted one is there with its key or not at all; the
		// replaced label holds the last acknowledged key or the one in
		// flight.
		if impAcked[0] {
			imports[newLabel] = &importState{key: exNew.key, acked: true}
		} else {
			imports[newLabel] = &importState{key: exNew.key}
		}
		for label, st := range imports {
			got, code := r.importedKey(label, [][]byte{st.key})
			switch {
			case got == 0:
				if !st.acked {
					stats.unackedCommitted++
					st.acked = true
				}
			case code == "Forbidden.KeyNotFound" && !st.acked:
				delete(imports, label) // never happened
			default:
				t.Errorf("round %d: imported key %q (acknowledged %v): %s", round, label, st.acked, code)
			}
		}
		if impAcked[1] {
			replaceAck, replaceInflight = exRep.key, nil
		} else {
			replaceInflight = exRep.key
		}
		got, code := r.importedKey(replaceLabel, [][]byte{replaceAck, replaceInflight})
		switch {
		case got == 0:
		case got == 1:
			replaceAck = replaceInflight
			if !impAcked[1] {
				stats.unackedCommitted++
			}
		default:
			// Rejected.Conflict here was known issue 4: a Replace killed
			// between creating the new key and destroying the old one
			// left both under the label.
			t.Errorf("round %d: %q after an interrupted Replace: %s (evidence: %s)", round, replaceLabel, code, evidence())
		}

		stats.labelsSettled += r.checkLabelsSettled(t, round, devObjs, imports, replaceLabel, evidence)
	}

	// Every acknowledged request is in the audit log, and its chain holds
	// across the kills.
	p.stop(t)
	if out, errOut, err := r.run("audit", "verify", auditLogFile(r.home)); err != nil || !strings.Contains(out, "chain intact") {
		t.Errorf("audit verify after %d kills: %v\n%s%s", stats.kills, err, out, errOut)
	}
	auditLog, _ := os.ReadFile(auditLogFile(r.home))
	missing := 0
	for _, id := range L.requestIDs {
		if !bytes.Contains(auditLog, []byte(`"`+id+`"`)) {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged requests are missing from the audit log", missing, len(L.requestIDs))
	}
	t.Logf("crash: %d serve kills and %d importer kills survived, invariants held; %d writes acknowledged, %d keys, %d versions of the rotated key, %d alias writes acknowledged, %d pending deletions, %d blobs decrypted after every restart, %d imports acknowledged, %d unacknowledged writes found committed, %d orphaned version objects (each in flight at a kill), %d labels left with more than one key and settled by their next lookup, %d half-made object files (%d truncated); %v",
		stats.kills, stats.importKills, L.acked, len(L.keys), len(L.versions), L.aliasWrites, len(L.pending), len(L.blobs),
		stats.importAcked, stats.unackedCommitted, len(orphans), stats.labelsSettled, len(halfMade), stats.truncated, time.Since(start).Round(time.Millisecond))
}

// checkLabelsSettled checks the device token after the import checks: a
// kill may leave a label with a pending key, or with the old and the new
// key, and the lookups just made (importer Encrypt) settle every such
// label, so each label now names one secret key (the one checked) or none
// (an import that never happened). before is the listing made after the
// kill; it returns how many labels held more than one key there.
func (r *relRig) checkLabelsSettled(t *testing.T, round int, before []tokenObject, imports map[string]*importState, replaceLabel string, evidence func() string) int {
	t.Helper()
	unsettled := 0
	for label, n := range secretKeysByLabel(before) {
		if label != "" && n > 1 {
			unsettled++
			t.Logf("round %d: the kill left %d secret keys labelled %q; its lookup settled it", round, n, label)
		}
	}
	after, err := r.listObjects("device")
	if err != nil {
		t.Fatal(err)
	}
	perLabel := secretKeysByLabel(after)
	for label, n := range perLabel {
		want := 0
		if imports[label] != nil || label == replaceLabel {
			want = 1
		}
		if label != "" && n != want { // unlabelled ones are half-made (checked above)
			t.Errorf("round %d: %d secret keys labelled %q after its lookup, want %d (evidence: %s)", round, n, label, want, evidence())
		}
	}
	for label := range imports {
		if perLabel[label] != 1 {
			t.Errorf("round %d: imported key %q is not in the device token after its lookup (evidence: %s)", round, label, evidence())
		}
	}
	return unsettled
}

// secretKeysByLabel counts the secret keys pkcs11-tool listed, by label.
func secretKeysByLabel(objs []tokenObject) map[string]int {
	n := map[string]int{}
	for _, o := range objs {
		if o.Kind == "Secret Key Object" {
			n[o.Label]++
		}
	}
	return n
}

type importState struct {
	key   []byte
	acked bool
}

// importedKey encrypts with the device key labelled label (the importer
// CLI) and returns the index of the candidate key that opens the result,
// or -1 and the error code (or "MISMATCH").
func (r *relRig) importedKey(label string, candidates [][]byte) (int, string) {
	out, errOut, err := r.run("--token=pkcs11:token=device", "importer", "Encrypt", "--KeyLabel", label,
		"--Plaintext", base64.StdEncoding.EncodeToString([]byte("crash check")), "--AAD", base64.StdEncoding.EncodeToString([]byte("crash aad")))
	if err != nil {
		var e struct{ Code, Message string }
		if json.Unmarshal([]byte(errOut), &e) == nil && e.Code != "" {
			return -1, e.Code
		}
		return -1, fmt.Sprintf("%v %s", err, errOut)
	}
	var enc struct{ CiphertextBlob string }
	json.Unmarshal([]byte(out), &enc)
	blob, _ := base64.StdEncoding.DecodeString(enc.CiphertextBlob)
	for i, k := range candidates {
		if k == nil || len(blob) < 12+16 {
			continue
		}
		b, _ := aes.NewCipher(k)
		gcm, _ := cipher.NewGCM(b)
		if pt, err := gcm.Open(nil, blob[:12], blob[12:], []byte("crash aad")); err == nil && string(pt) == "crash check" {
			return i, ""
		}
	}
	return -1, "MISMATCH: the key labelled " + label + " is none of the expected keys"
}

// crashCheckKMS checks, through a restarted server, everything the ledger
// holds, and folds into it the unacknowledged writes found committed.
// The SDK client is not safe for concurrent use (it keeps request headers
// in the client), so parallel checks get a client each from mk.
func crashCheckKMS(c *alikms.Client, mk func() *alikms.Client, L *crashLedger, rot string, round int) error {
	L.mu.Lock()
	defer L.mu.Unlock()
	// Keys: every acknowledged key is there, PendingDeletion exactly when
	// its deletion was acknowledged (or in flight and committed).
	ids := make([]string, 0, len(L.keys))
	for id := range L.keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	states := make([]string, len(ids))
	if err := parallel(len(ids), mk, func(c *alikms.Client, i int) error {
		d, err := c.DescribeKey(&alikms.DescribeKeyRequest{KeyId: tea.String(ids[i])})
		if err != nil {
			return fmt.Errorf("acknowledged key %s: DescribeKey: %v", ids[i], err)
		}
		states[i] = tea.StringValue(d.Body.KeyMetadata.KeyState)
		return nil
	}); err != nil {
		return err
	}
	for i, id := range ids {
		switch {
		case L.pending[id] && states[i] != "PendingDeletion":
			return fmt.Errorf("key %s: deletion acknowledged but state %s", id, states[i])
		case L.scheduling[id] && states[i] == "PendingDeletion":
			L.pending[id] = true
		case !L.pending[id] && states[i] != "Enabled":
			return fmt.Errorf("key %s: state %s, want Enabled", id, states[i])
		}
	}
	clear(L.scheduling)
	// Versions: every acknowledged version is listed; at most one more
	// (the one in flight) appears per kill.
	vs, err := crashVersions(c, rot)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, v := range vs {
		listed[v] = true
	}
	extra := 0
	for v := range listed {
		if !L.versions[v] {
			extra++
			L.versions[v] = true
		}
	}
	for v := range L.versions {
		if !listed[v] {
			return fmt.Errorf("acknowledged version %s of %s is not listed (%d listed)", v, rot, len(vs))
		}
	}
	if extra > 1 || (extra == 1 && !L.inflightRotate) {
		return fmt.Errorf("%d unacknowledged versions of %s appeared (in flight: %v)", extra, rot, L.inflightRotate)
	}
	// Aliases: each points where the last acknowledged request said, or
	// where the one in flight at the kill said.
	names := map[string]bool{}
	for n := range L.aliasAck {
		names[n] = true
	}
	for n := range L.aliasInflight {
		names[n] = true
	}
	for n := range names {
		d, err := c.DescribeKey(&alikms.DescribeKeyRequest{KeyId: tea.String(n)})
		ack, hasAck := L.aliasAck[n]
		inflight, hasInflight := L.aliasInflight[n]
		switch {
		case err != nil && sdkCode(err) == "Forbidden.AliasNotFound" && !hasAck:
			// a CreateAlias that never happened
		case err != nil:
			return fmt.Errorf("alias %s (acknowledged -> %s, in flight -> %s): %v", n, ack, inflight, err)
		case tea.StringValue(d.Body.KeyMetadata.KeyId) == ack && hasAck:
		case tea.StringValue(d.Body.KeyMetadata.KeyId) == inflight && hasInflight:
			L.aliasAck[n] = inflight
		default:
			return fmt.Errorf("alias %s points at %s; the last acknowledged update said %s, the one in flight %s",
				n, tea.StringValue(d.Body.KeyMetadata.KeyId), ack, inflight)
		}
	}
	clear(L.aliasInflight)
	// Every CiphertextBlob ever returned decrypts to its plaintext.
	return parallel(len(L.blobs), mk, func(c *alikms.Client, i int) error {
		b := L.blobs[i]
		d, err := c.Decrypt(&alikms.DecryptRequest{CiphertextBlob: tea.String(b.blob), EncryptionContext: b.ctx})
		if err != nil {
			return fmt.Errorf("blob %d no longer decrypts: %v", i, err)
		}
		if tea.StringValue(d.Body.Plaintext) != b.plaintext {
			return fmt.Errorf("blob %d decrypts to another plaintext", i)
		}
		return nil
	})
}

// crashListKeys returns every key id the server lists.
func crashListKeys(c *alikms.Client) (map[string]bool, error) {
	ids := map[string]bool{}
	for page := int32(1); ; page++ {
		lk, err := c.ListKeys(&alikms.ListKeysRequest{PageNumber: tea.Int32(page), PageSize: tea.Int32(100)})
		if err != nil {
			return nil, err
		}
		for _, k := range lk.Body.Keys.Key {
			ids[tea.StringValue(k.KeyId)] = true
		}
		if len(lk.Body.Keys.Key) < 100 {
			return ids, nil
		}
	}
}

// crashVersions returns a key's version ids.
func crashVersions(c *alikms.Client, keyID string) ([]string, error) {
	var out []string
	for page := int32(1); ; page++ {
		lv, err := c.ListKeyVersions(&alikms.ListKeyVersionsRequest{KeyId: tea.String(keyID), PageNumber: tea.Int32(page), PageSize: tea.Int32(100)})
		if err != nil {
			return nil, fmt.Errorf("ListKeyVersions %s: %v", keyID, err)
		}
		for _, v := range lv.Body.KeyVersions.KeyVersion {
			out = append(out, tea.StringValue(v.KeyVersionId))
		}
		if len(lv.Body.KeyVersions.KeyVersion) < 100 {
			return out, nil
		}
	}
}

// parallel runs fn(0..n-1) on 8 goroutines, each with its own client
// from mk, and returns the first error.
func parallel(n int, mk func() *alikms.Client, fn func(c *alikms.Client, i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mk()
			for i := range next {
				if err := fn(c, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
