package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/p11kms/p11kms/hsm"
)

// Home is p11kms's embedded default: a SoftHSM2 environment in a directory
// ($P11KMS_HOME, default ./.p11kms) with the user PIN in user.pin and the SO
// PIN in so.pin (both mode 0600). Every token of a home shares these PINs.
type Home struct {
	*Env
	UserPINFile string
	SOPINFile   string
}

// DefaultTokenLabel is the label of the token `p11kms init` makes.
const DefaultTokenLabel = "kms"

// HomeDir returns $P11KMS_HOME, or ./.p11kms.
func HomeDir() string {
	if h := os.Getenv("P11KMS_HOME"); h != "" {
		return h
	}
	return ".p11kms"
}

// OpenHome returns the home in dir; it must have been initialised.
func OpenHome(dir string) (*Home, error) {
	if _, err := os.Stat(filepath.Join(dir, "softhsm2.conf")); err != nil {
		return nil, fmt.Errorf("softhsm: no p11kms home in %s (run `p11kms init` first, or set P11KMS_HOME): %w", dir, err)
	}
	e, err := NewEnv(dir)
	if err != nil {
		return nil, err
	}
	return &Home{Env: e, UserPINFile: filepath.Join(e.Dir, "user.pin"), SOPINFile: filepath.Join(e.Dir, "so.pin")}, nil
}

// InitResult says what InitHome made.
type InitResult struct {
	Home         *Home
	CreatedHome  bool // the directory, softhsm2.conf and PIN files are new
	TokenLabel   string
	TokenSlot    uint
	TokenCreated bool // false when the token already existed
}

// InitHome creates the home in dir if needed (softhsm2.conf, tokens/, random
// PINs in user.pin and so.pin) and a token labelled label in it if absent.
// It never overwrites an existing PIN file.
func InitHome(dir, label string) (*InitResult, error) {
	if label == "" {
		label = DefaultTokenLabel
	}
	res := &InitResult{TokenLabel: label}
	if _, err := os.Stat(filepath.Join(dir, "softhsm2.conf")); errors.Is(err, os.ErrNotExist) {
		res.CreatedHome = true
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("softhsm: %w", err)
	}
	e, err := NewEnv(dir)
	if err != nil {
		return nil, err
	}
	h := &Home{Env: e, UserPINFile: filepath.Join(e.Dir, "user.pin"), SOPINFile: filepath.Join(e.Dir, "so.pin")}
	res.Home = h
	for _, f := range []string{h.UserPINFile, h.SOPINFile} {
		if err := writeNewSecret(f, RandomPIN()); err != nil {
			return nil, err
		}
	}
	if err := h.Activate(); err != nil {
		return nil, err
	}
	exists, slot, err := h.tokenSlot(label)
	if err != nil {
		return nil, err
	}
	if exists {
		res.TokenSlot = slot
		return res, nil
	}
	userPIN, err := readSecret(h.UserPINFile)
	if err != nil {
		return nil, err
	}
	soPIN, err := readSecret(h.SOPINFile)
	if err != nil {
		return nil, err
	}
	slot, err = h.CreateToken(label, soPIN, userPIN)
	if err != nil {
		return nil, err
	}
	res.TokenSlot, res.TokenCreated = slot, true
	return res, nil
}

func (h *Home) tokenSlot(label string) (bool, uint, error) {
	lib, err := hsm.LoadLibrary(h.ModulePath)
	if err != nil {
		return false, 0, err
	}
	defer lib.Close()
	slots, err := lib.Slots()
	if err != nil {
		return false, 0, err
	}
	for _, s := range slots {
		if strings.TrimRight(s.Token.Label, " \x00") == label {
			return true, s.ID, nil
		}
	}
	return false, 0, nil
}

// writeNewSecret writes a 0600 file unless it exists.
func writeNewSecret(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("softhsm: %w", err)
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("softhsm: %w", err)
	}
	return f.Close()
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("softhsm: %s is empty", path)
	}
	return s, nil
}

// ResolveToken turns a token selection into an hsm.Config. An empty uri
// means the home's token "kms". A URI without module-path (or module-name)
// uses the home's SoftHSM2 module and activates the home's configuration; a
// URI without a PIN uses the home's user.pin.
func ResolveToken(uri, homeDir string) (hsm.Config, error) {
	if uri == "" {
		uri = "pkcs11:token=" + DefaultTokenLabel
	}
	cfg, err := hsm.ParseURI(uri)
	if err != nil {
		return cfg, err
	}
	needHome := cfg.ModulePath == "" || (cfg.PIN == "" && cfg.PINFile == "" && cfg.PINEnv == "")
	if !needHome {
		return cfg, cfg.Validate()
	}
	h, err := OpenHome(homeDir)
	if err != nil {
		return cfg, err
	}
	if cfg.ModulePath == "" {
		if err := h.Activate(); err != nil {
			return cfg, err
		}
		cfg.ModulePath = h.ModulePath
	}
	if cfg.PIN == "" && cfg.PINFile == "" && cfg.PINEnv == "" {
		cfg.PINFile = h.UserPINFile
	}
	return cfg, cfg.Validate()
}
